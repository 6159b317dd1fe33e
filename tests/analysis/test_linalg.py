"""Shared numerics and checks: the TF32 guard, tiled Gram products (and their flops), the
covariance pass (chunk rows, working dtype, device), ridge and rank warnings, warnings pointing
at the caller, messages naming the value, and the job pool."""

from __future__ import annotations

import functools
import math
import os
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode

from ncib.analysis import canonical_correlations, class_means
from ncib.analysis._checks import _PACKAGE_DIR, WarningLog, _caller_stacklevel
from ncib.analysis._linalg import (
    _precision_of,
    _ridge_scale,
    _tiled_gram,
    cholesky_warnings,
    concurrently,
    covariance_blocks,
    intra_op_threads,
    regularised_cholesky,
)
from tests.conftest import UNDER_MUTMUT


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
    if not UNDER_MUTMUT:  # mutmut's trampolines add frames
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


EPS = torch.finfo(torch.float64).eps

# a chain of `depth` frames whose code lies in the package directory (as the analysis' own
# frames do), then a call of fn
_NS: dict = {}
exec(
    compile(
        "def nested(fn, depth):\n    return fn() if depth == 0 else nested(fn, depth - 1)\n",
        os.path.join(_PACKAGE_DIR, "_frames_of_the_package.py"),
        "exec",
    ),
    _NS,
)
_nested = _NS["nested"]


# --- checks and warnings ------------------------------------------------------------------


def test_bad_features_and_labels_are_named_with_their_values():
    h = torch.randn(1, 3, dtype=torch.float64)
    with pytest.raises(TypeError, match=r"^h must be a torch.Tensor of shape \(N, d\), got list$"):
        class_means([[1.0, 2.0]], torch.tensor([0]), 3)
    # one sample: its label is checked too
    with pytest.raises(
        ValueError, match=r"^y has labels in \[5, 5\], outside \[0, num_classes=3\)$"
    ):
        class_means(h, torch.tensor([5]), 3)
    with pytest.raises(
        ValueError, match=r"^y has labels in \[-1, -1\], outside \[0, num_classes=3\)$"
    ):
        class_means(h, torch.tensor([-1]), 3)
    message = (
        r"^num_classes=1: need at least two classes for class-mean geometry and classification$"
    )
    with pytest.raises(ValueError, match=message):
        class_means(h, torch.tensor([0]), 1)


def test_stacklevel_counts_every_frame_of_the_package():
    """Each frame of the package between the caller and the warning adds one level. Not under
    mutmut: its trampolines add frames of their own, so these mutants are checked by planting."""
    if UNDER_MUTMUT:
        pytest.skip("mutmut's trampolines change the stack")
    levels = [_nested(_caller_stacklevel, depth) for depth in range(4)]
    assert levels == [2 + depth for depth in range(4)]  # 2: warnings.warn's caller's caller


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_warning_log_warns_once_at_the_caller(depth):
    log = WarningLog("cca")
    with pytest.warns(RuntimeWarning) as caught:
        _nested(functools.partial(log.warn, "Σ_aa is zero"), depth)
        _nested(functools.partial(log.warn, "Σ_aa is zero"), depth)  # a repeat is not re-emitted
    assert [str(w.message) for w in caught] == ["cca: Σ_aa is zero"]
    assert log.as_tuple() == ("cca: Σ_aa is zero",)
    assert not os.path.abspath(caught[0].filename).startswith(_PACKAGE_DIR)
    if not UNDER_MUTMUT:
        assert caught[0].filename == __file__


# --- ridge and rank warnings -----------------------------------------------------------------


def test_bad_ridges_and_covariances_are_named():
    cov = torch.eye(3, dtype=torch.float64)
    for ridge in (-1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match=rf"^ridge={ridge} must be a finite number >= 0$"):
            regularised_cholesky(cov, ridge, "Σ_aa", WarningLog("cca"))
    cov[1, 1] = math.nan
    with pytest.raises(ValueError, match=r"^Σ_bb is not finite: the features contain NaN or inf$"):
        regularised_cholesky(cov, 1e-6, "Σ_bb", WarningLog("cca"))


@pytest.mark.parametrize("diagonal", [[0.0, 0.0, 0.0], [5e-324, 0.0, 0.0]])
def test_zero_covariance_uses_a_unit_ridge_scale_and_says_so(diagonal):
    """tr(Σ)/d = 0 (also when it underflows from a positive trace) → scale 1, one warning; the
    factor with the absolute ridge ridge·1 is then no escalation."""
    cov = torch.diag(torch.tensor(diagonal, dtype=torch.float64))
    assert _ridge_scale(cov, 0.25, "Σ_aa") == 1.0
    chol = torch.linalg.cholesky(cov + 0.25 * torch.eye(3, dtype=torch.float64))
    log = WarningLog("cca")
    with pytest.warns(RuntimeWarning):
        cholesky_warnings(cov, chol, 0.25, 0.25, "Σ_aa", log)
    assert log.as_tuple() == (
        "cca: Σ_aa is zero (every column constant); using a unit ridge scale",
    )


def test_positive_covariance_keeps_its_scale():
    cov = torch.diag(torch.tensor([1.0, 2.0, 6.0], dtype=torch.float64))
    assert _ridge_scale(cov, 0.0, "Σ_aa") == 3.0
    assert _ridge_scale(cov, 0.1, "Σ_aa") == 3.0


@pytest.mark.parametrize("d", [4, 9])
def test_rank_warning_threshold_is_100_d_eps_for_a_zero_ridge(d):
    """A squared pivot just above ``100·d·eps`` of its diagonal passes, just below it warns."""
    cov = torch.eye(d, dtype=torch.float64)
    tol = 100.0 * d * EPS
    for factor, warned in ((1.005, False), (0.995, True)):
        diag = torch.ones(d, dtype=torch.float64)
        diag[-1] = math.sqrt(factor * tol)
        chol = torch.diag(diag)
        log = WarningLog("cca")
        with pytest.warns(RuntimeWarning) if warned else warnings.catch_warnings(action="error"):
            cholesky_warnings(cov, chol, 0.0, 0.0, "Σ_aa", log)
        expected = (
            f"cca: Σ_aa is numerically rank deficient: 1 of {d} directions keep less than "
            f"{tol:.0e} of their variance after the preceding columns (duplicated or collinear "
            "columns, or N <= d); the ridge 0·tr(Σ)/d regularises them"
        )
        assert log.as_tuple() == ((expected,) if warned else ())


# --- TF32 guard -------------------------------------------------------------------------------


@pytest.mark.skipif(
    not hasattr(torch.backends.cuda.matmul, "fp32_precision"), reason="torch < 2.9 API"
)
def test_precision_of_reads_the_backend_flag():
    """In-process (the subprocess tests of no_tf32 are invisible to mutmut's coverage)."""
    assert _precision_of("mkldnn.matmul") == torch.backends.mkldnn.matmul.fp32_precision
    assert _precision_of("cuda.matmul") == torch.backends.cuda.matmul.fp32_precision
    assert _precision_of("mkldnn.matmul") in ("ieee", "none", "tf32", "bf16")
    assert _precision_of("no_such_backend.matmul") is None


# --- products -----------------------------------------------------------------------------------


class _Products(TorchFunctionMode):
    """Records ``(M, K, N, dtype)`` of every matrix product (``torch.mm``, ``addmm(_)``) run
    inside it."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in ("mm", "addmm", "addmm_"):
            a, b = args[-2:]
            self.calls.append((a.shape[0], a.shape[1], b.shape[1], a.dtype))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("d, tiles", [(1024, 2), (1536, 3), (2048, 4)])
def test_tiled_gram_multiplies_only_the_upper_tiles(d, tiles):
    """t(t+1)/2 products of (d/t)² entries each, not the d² of the plain product."""
    n = 3
    c = torch.randn(n, d, generator=torch.Generator().manual_seed(d), dtype=torch.float64)
    with _Products() as products:
        g = _tiled_gram(c)
    side = d // tiles
    assert [(m, k, w) for m, k, w, _ in products.calls] == [(side, n, side)] * (
        tiles * (tiles + 1) // 2
    )
    torch.testing.assert_close(g, c.T @ c, rtol=1e-12, atol=1e-12)
    for i in range(tiles):  # the lower tiles are the upper ones transposed
        for j in range(i + 1, tiles):
            rows, cols = slice(i * side, (i + 1) * side), slice(j * side, (j + 1) * side)
            assert torch.equal(g[cols, rows], g[rows, cols].T)


@pytest.mark.parametrize(
    "dtypes, work, rows",
    [
        ((torch.float32, torch.float32), torch.float32, 600),
        ((torch.float32, torch.float64), torch.float32, 600),  # float32 unless all are float64
        ((torch.float64, torch.float64), torch.float64, 300),
    ],
)
def test_covariance_pass_chunks_and_working_dtype(dtypes, work, rows, monkeypatch):
    """Chunks of _CHUNK_BYTES for two matrices as wide as the widest (6 columns) in the working
    dtype's item size; products in the working dtype; blocks the float64 covariances."""
    import ncib.analysis._linalg as linalg

    monkeypatch.setattr(linalg, "_CHUNK_BYTES", 2 * 6 * 8 * 300)
    g = torch.Generator().manual_seed(0)
    x64 = [torch.randn(1000, w, generator=g, dtype=torch.float64) + 5.0 for w in (6, 3)]
    mats = [x.to(dt) for x, dt in zip(x64, dtypes)]
    pairs = [(0, 0), (1, 1), (0, 1)]
    with _Products() as products:
        means, blocks = covariance_blocks(mats, pairs)
    chunk = [min(rows, 1000 - start) for start in range(0, 1000, rows)]
    grams = [(m, k, dt) for m, k, _, dt in products.calls if m > 1]  # not the column sums
    assert grams == [(w, m, work) for m in chunk for w in (6, 3, 6)]
    assert all(dt == work for *_, dt in products.calls)
    ref = torch.cov(torch.cat([x.double() for x in mats], 1).T, correction=0)
    tol = 1e-12 if work == torch.float64 else 1e-5
    for (i, j), block in zip(pairs, [ref[:6, :6], ref[6:, 6:], ref[:6, 6:]]):
        assert blocks[(i, j)].dtype == torch.float64
        torch.testing.assert_close(blocks[(i, j)], block, rtol=tol, atol=tol)
    for mean, x in zip(means, mats):  # to the rounding of float32 chunk sums
        torch.testing.assert_close(mean, x.double().mean(0), rtol=tol, atol=tol)


def test_results_stay_on_the_inputs_device():
    """Every buffer follows the inputs (the meta device stands in for an accelerator: a buffer
    made on the CPU would not mix with it)."""
    meta = torch.device("meta")
    for d in (100, 1100):  # one product, tiles
        g = _tiled_gram(torch.empty(8, d, device=meta))
        assert g.device == meta and g.shape == (d, d)
    a = torch.empty(700, 5, device=meta)
    b = torch.empty(700, 3, device=meta, dtype=torch.float64)
    means, blocks = covariance_blocks([a, b], [(0, 0), (1, 1), (0, 1)])
    assert [(m.device, m.dtype, tuple(m.shape)) for m in means] == [
        (meta, torch.float64, (5,)),
        (meta, torch.float64, (3,)),
    ]
    assert {p: (v.device, v.dtype, tuple(v.shape)) for p, v in blocks.items()} == {
        (0, 0): (meta, torch.float64, (5, 5)),
        (1, 1): (meta, torch.float64, (3, 3)),
        (0, 1): (meta, torch.float64, (5, 3)),
    }


# --- jobs -----------------------------------------------------------------------------------------


def test_concurrently_runs_at_most_as_many_jobs_as_threads():
    """Four jobs on two threads: a pool of two (not one thread per job), results in order."""
    lock = threading.Lock()
    state = {"active": 0, "peak": 0}
    idents = []

    def job(i):
        with lock:
            state["active"] += 1
            state["peak"] = max(state["peak"], state["active"])
            idents.append(threading.get_ident())
        time.sleep(0.02)
        with lock:
            state["active"] -= 1
        return i

    with intra_op_threads(2):
        assert concurrently([functools.partial(job, i) for i in range(4)], CPU) == [0, 1, 2, 3]
    assert state["peak"] <= 2
    assert len(set(idents)) <= 2 and threading.get_ident() not in idents


def test_nested_concurrently_runs_in_the_jobs_thread():
    """With threads to spare inside each job (4 threads, 2 jobs: 2 each), a nested call still
    runs serially in the job's own thread."""

    def job():
        return (
            threading.get_ident(),
            torch.get_num_threads(),
            concurrently([threading.get_ident, threading.get_ident], CPU),
        )

    with intra_op_threads(4):
        results = concurrently([job, job], CPU)
    for ident, threads, nested in results:
        assert threads == 2
        assert nested == [ident, ident]
