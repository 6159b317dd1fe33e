"""The analysis on CUDA agrees with the CPU (deselected by default: ``-m gpu``)."""

from __future__ import annotations

import math

import pytest
import torch

from ncib.analysis import PairAnalysis, normal_scores
from ncib.metrics.outputs import all_outputs

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_pair_analysis_on_cuda_matches_cpu(make_collapsed_pair, dtype):
    (z0, z1), (t0, t1), y, y_test = make_collapsed_pair(0, n=2000, n_test=500, d=64, k=5)
    cast = [x.to(dtype) for x in (z0, z1, t0, t1)]
    cpu = all_outputs(PairAnalysis(cast[:2], cast[2:], y, y_test, num_classes=5))[0]
    dev = [x.cuda() for x in cast]
    pa = PairAnalysis(dev[:2], dev[2:], y.cuda(), y_test.cuda(), num_classes=5)
    gpu = all_outputs(pa)[0]
    assert pa.cca("raw").rho.is_cuda and pa.tk(0).features.is_cuda
    assert set(gpu) == set(cpu)
    tol = 1e-6 if dtype == torch.float64 else 2e-3
    for key, value in cpu.items():
        if "acc" in key or "nc4" in key or "both_correct" in key:
            assert abs(gpu[key] - value) <= 0.01, key  # argmax near ties may flip
        elif math.isfinite(value):
            assert gpu[key] == pytest.approx(value, rel=tol, abs=tol), key


def test_normal_scores_on_cuda_equal_cpu():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(3000, 40, generator=g).round(decimals=1)
    ref = torch.randn(500, 40, generator=g)
    # the counting is exact on both devices; Φ⁻¹ itself may differ in the last bit
    torch.testing.assert_close(normal_scores(z.cuda()).cpu(), normal_scores(z), rtol=0, atol=1e-6)
    torch.testing.assert_close(
        normal_scores(z.cuda(), ref.cuda()).cpu(), normal_scores(z, ref), rtol=0, atol=1e-6
    )


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_a_sharded_analysis_on_cuda_equals_one_cuda_process(dtype):
    # the sharded code on CUDA tensors (thread ranks; the collectives copy through the host):
    # every metric equals one CUDA process's (float64 to 1e-6; float32 within what float32
    # resolves here, 1e-4 — CUDA's reductions sum in another order than the CPU's)
    from tests.analysis.test_shards import N_TEST, K, N, every_metric, planted
    from tests.helpers.ranks import ThreadRanks, thread_shard

    train, test, y, y_test, rows = planted()
    train, test = [tuple(z.to(dtype).cuda() for z in split) for split in (train, test)]
    y, y_test, rows = y.cuda(), y_test.cuda(), [r.to(dtype).cuda() for r in rows]

    def analysis(shard=None, test_shard=None):  # both splits sharded, as the engine does
        def pick(z, part):
            return z if part is None else z[part.rows.cuda()]

        return PairAnalysis(
            tuple(pick(z, shard) for z in train),
            tuple(pick(z, test_shard) for z in test),
            pick(y, shard),
            pick(y_test, test_shard),
            K,
            k=5,
            classifier=rows,
            shard=shard,
            test_shard=test_shard,
        )

    whole = every_metric(analysis())
    ranks = ThreadRanks(2)
    tol = 1e-6 if dtype == torch.float64 else 1e-4
    for got in ranks.run(
        lambda r: every_metric(analysis(thread_shard(ranks, r, N), thread_shard(ranks, r, N_TEST)))
    ):
        assert got.keys() == whole.keys()
        for key, want in whole.items():
            if math.isfinite(want):
                assert got[key] == pytest.approx(want, rel=tol, abs=1e-9), key
