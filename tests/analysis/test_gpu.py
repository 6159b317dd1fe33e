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
