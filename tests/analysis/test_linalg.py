"""Shared numerics: TF32 guard, tiled Gram products, warnings pointing at the caller."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from ncib.analysis import canonical_correlations
from ncib.analysis._linalg import _tiled_gram, concurrently, covariance_blocks, intra_op_threads


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("d", [300, 700, 1500])
def test_gram_products_equal_plain_product(seed, d):
    c = torch.randn(64, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    torch.testing.assert_close(_tiled_gram(c), c.T @ c, rtol=1e-12, atol=1e-10)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("sorted_rows", [False, True])
def test_covariance_of_float32_with_large_offset(seed, sorted_rows):
    """Centring with a shift close to the mean (and the exact residual-mean correction) keeps
    float32 covariances accurate when the mean dwarfs the spread, whatever the row order."""
    g = torch.Generator().manual_seed(seed)
    x64 = torch.randn(9000, 5, generator=g, dtype=torch.float64) * 0.01 + 1000.0
    if sorted_rows:
        x64 = x64[x64[:, 0].argsort()]
    x32 = x64.float()
    (mean,), blocks = covariance_blocks([x32], [(0, 0)])
    ref = torch.cov(x32.double().T, correction=0)
    torch.testing.assert_close(blocks[(0, 0)], ref, rtol=1e-4, atol=1e-12)
    torch.testing.assert_close(mean, x32.double().mean(0), rtol=1e-12, atol=0)


_TF32_SCRIPT = """
import torch
from ncib.analysis._linalg import no_tf32

{setup}

def state():
    out = []
    for read in (lambda: torch.backends.cuda.matmul.allow_tf32, torch.get_float32_matmul_precision):
        try:
            out.append(read())
        except RuntimeError:
            out.append("mixed-api error")
    return out + [torch.backends.cuda.matmul.fp32_precision, torch.backends.mkldnn.matmul.fp32_precision]

before = state()
with no_tf32():
    inside = (torch.backends.cuda.matmul.fp32_precision, torch.backends.mkldnn.matmul.fp32_precision)
assert all(p in ("ieee", "none") for p in inside), inside
assert state() == before, (before, state())
print("OK", before)
"""

_TF32_SETUPS = {
    "default": "",
    "legacy allow_tf32": "torch.backends.cuda.matmul.allow_tf32 = True",
    "legacy medium": "torch.backends.cuda.matmul.allow_tf32 = True\n"
    "torch.set_float32_matmul_precision('medium')",
    "new api": "torch.backends.cuda.matmul.fp32_precision = 'tf32'\n"
    "torch.backends.mkldnn.matmul.fp32_precision = 'bf16'",
}


@pytest.mark.skipif(
    not hasattr(torch.backends.cuda.matmul, "fp32_precision"), reason="torch < 2.9 API"
)
@pytest.mark.parametrize("setup", list(_TF32_SETUPS))
def test_no_tf32_disables_and_restores_without_mixing_apis(setup):
    """Run in a subprocess: precision flags are process-global and mixing APIs is sticky."""
    script = _TF32_SCRIPT.format(setup=_TF32_SETUPS[setup])
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=repo
    )
    assert done.returncode == 0 and done.stdout.startswith("OK"), done.stderr[-2000:]


def test_warnings_point_at_the_caller():
    a = torch.randn(50, 3, dtype=torch.float64)
    a[:, 0] = 1.0
    with pytest.warns(RuntimeWarning, match="constant") as caught:
        canonical_correlations(a, torch.randn(50, 2, dtype=torch.float64))
    if "mutmut.__main__" not in sys.modules:  # mutmut's trampolines add frames
        assert caught[0].filename == __file__


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_one_pass_over_several_matrices_equals_separate_passes(dtype, monkeypatch):
    """Blocks formed in one pass over four matrices (PairAnalysis.covariances) are exactly those
    of the separate passes: the chunking depends on the widest matrix only."""
    import ncib.analysis._linalg as linalg

    # 600 (float32) or 300 (float64) rows per chunk, the last one partial; a chunking by the
    # total width of the matrices would cut the four-matrix pass elsewhere
    monkeypatch.setattr(linalg, "_CHUNK_BYTES", 2 * 40 * 4 * 600)
    g = torch.Generator().manual_seed(0)
    z0, z1 = (torch.randn(3100, 40, generator=g, dtype=torch.float64).to(dtype) + 3 for _ in "ab")
    g0, g1 = z0.exp(), z1.square()
    mats = [z0, z1, g0, g1]
    pairs = [(0, 0), (1, 1), (0, 1), (2, 2), (3, 3), (2, 3), (0, 2), (1, 3)]
    means, blocks = covariance_blocks(mats, pairs)
    raw_means, raw = covariance_blocks([z0, z1], [(0, 0), (1, 1), (0, 1)])
    normal_means, normal = covariance_blocks([g0, g1], [(0, 0), (1, 1), (0, 1)])
    for m in range(2):
        assert torch.equal(means[m], raw_means[m]) and torch.equal(means[2 + m], normal_means[m])
        _, cross = covariance_blocks([mats[m], mats[2 + m]], [(0, 1)])
        assert torch.equal(blocks[(m, 2 + m)], cross[(0, 1)])
    for (i, j), ref in [((0, 0), raw[(0, 0)]), ((1, 1), raw[(1, 1)]), ((0, 1), raw[(0, 1)])]:
        assert torch.equal(blocks[(i, j)], ref)
        assert torch.equal(blocks[(i + 2, j + 2)], normal[(i, j)])
    # and every block is the plain float64 covariance (to float32 rounding for float32 inputs)
    ref = torch.cov(torch.cat([x.double() for x in mats], 1).T, correction=0)
    tol = 1e-10 if dtype == torch.float64 else 1e-4
    for i, j in pairs:
        block = ref[40 * i : 40 * (i + 1), 40 * j : 40 * (j + 1)]
        torch.testing.assert_close(blocks[(i, j)], block, rtol=tol, atol=tol * block.abs().max())


CPU = torch.device("cpu")


def test_concurrently_runs_jobs_side_by_side_sharing_the_threads():
    """Two jobs that each wait for the other can only finish if they run at the same time;
    inside, torch has one thread, nested calls run serially, results keep the jobs' order and
    the thread count is restored (also after a failing job)."""
    with intra_op_threads(2):
        meet = threading.Barrier(2, timeout=30)  # broken (an error) if the jobs ran serially
        seen = []

        def job(i):
            meet.wait()
            seen.append((torch.get_num_threads(), threading.get_ident()))
            return concurrently([lambda: 10 * i, lambda: 10 * i + 1], CPU)  # nested: serial

        assert concurrently([lambda i=i: job(i) for i in range(2)], CPU) == [[0, 1], [10, 11]]
        assert [threads for threads, _ in seen] == [1, 1]  # 2 threads, 2 jobs
        assert threading.get_ident() not in {ident for _, ident in seen}
        assert torch.get_num_threads() == 2
        with pytest.raises(ZeroDivisionError):
            concurrently([lambda: 1, lambda: 1 / 0], CPU)
        assert torch.get_num_threads() == 2
    with intra_op_threads(4):  # more cores than jobs: the threads are shared out
        assert concurrently([torch.get_num_threads] * 2, CPU) == [2, 2]
    with intra_op_threads(1):  # one thread: the jobs run in the calling thread, in order
        idents = concurrently([threading.get_ident, threading.get_ident], CPU)
        assert idents == [threading.get_ident()] * 2


def test_intra_op_threads_restores_the_count():
    before = torch.get_num_threads()
    with intra_op_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
