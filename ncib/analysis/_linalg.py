"""Shared numerics of :mod:`ncib.analysis` (docs/math.md §9).

* :func:`no_tf32` — TF32 (and reduced-precision float32 matmuls) off inside the analysis.
* :func:`covariance_blocks` — means and covariances of one or more ``(N, d_m)`` matrices in one
  pass over row chunks: float32 inputs are centred (with a shift close to the mean, corrected
  exactly afterwards), multiplied in float32 and accumulated in float64; float64 inputs stay
  float64 throughout.
* :func:`regularised_cholesky` — ``L Lᵀ = Σ + ε·tr(Σ)/d·I`` with rank diagnostics.
* :func:`intra_op_threads`, :func:`concurrently` — thread counts: independent jobs (the two
  members' decompositions, probes, normal scores) run side by side on one thread each.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch
from torch import Tensor

from ._checks import WarningLog

__all__ = [
    "cholesky_warnings",
    "concurrently",
    "covariance_blocks",
    "intra_op_threads",
    "no_tf32",
    "regularised_cholesky",
    "row_chunks",
    "work_dtype",
]

_CHUNK_BYTES = 64 * 2**20  # rows per chunk: about 64 MiB of one input matrix
_T = TypeVar("_T")
_IN_JOB = threading.local()  # set inside a job of concurrently(): nested calls run serially


def _precision_of(backend_path: str) -> str | None:
    """``fp32_precision`` of a backend (torch >= 2.9 API), None when torch predates it."""
    obj = torch.backends
    for part in backend_path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return getattr(obj, "fp32_precision", None)


@contextlib.contextmanager
def no_tf32() -> Iterator[None]:
    """Full float32 precision for matmuls inside the block (no TF32 on CUDA, no bf16/TF32 on
    oneDNN), then the previous settings restored exactly.

    torch >= 2.9 tracks whether precision was set through the legacy API
    (``allow_tf32``, ``set_float32_matmul_precision``) or the ``fp32_precision`` API and raises
    on reads after mixing them, so each flag is changed and restored through the API it was set
    with. Usable as ``with no_tf32():`` or as a decorator ``@no_tf32()``.
    """
    restore: list = []
    try:
        precision = torch.get_float32_matmul_precision()  # consistent legacy state
    except RuntimeError:
        precision = None
    if precision is not None:
        onednn = _precision_of("mkldnn.matmul")
        if precision != "highest" and onednn not in ("ieee", "none"):
            # set through set_float32_matmul_precision (or torch < 2.9): undo the same way
            torch.set_float32_matmul_precision("highest")
            restore.append(lambda: torch.set_float32_matmul_precision(precision))
        elif torch.backends.cuda.matmul.allow_tf32:
            torch.backends.cuda.matmul.allow_tf32 = False
            restore.append(lambda: setattr(torch.backends.cuda.matmul, "allow_tf32", True))
    else:  # set through the fp32_precision API: stay with it
        for backend in (torch.backends.cuda.matmul, torch.backends.mkldnn.matmul):
            old = backend.fp32_precision
            if old not in ("ieee", "none"):
                backend.fp32_precision = "ieee"
                restore.append(lambda b=backend, o=old: setattr(b, "fp32_precision", o))
    try:
        yield
    finally:
        for undo in reversed(restore):
            undo()


@contextlib.contextmanager
def intra_op_threads(n: int) -> Iterator[None]:
    """``torch.set_num_threads(n)`` inside the block, the previous count restored after
    (process-wide, like every torch thread setting; nothing is changed when it already is n).

    Why it matters on a CPU: a BLAS level-1 call (``Tensor.dot``) or a LAPACK routine made of
    thousands of small parallel steps (the bidiagonalisation of an SVD) synchronises its
    threads at every step; when the other cores are busy each synchronisation can wait for a
    scheduler slice. Measured on 2 shared cores: a 20k-element ``dot`` ~10 ms with 2 threads
    against 9 µs with one; a 2048² float64 SVD 44 s against 7.7 s."""
    old = torch.get_num_threads()
    if n == old:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def concurrently(jobs: Sequence[Callable[[], _T]], device: torch.device) -> list[_T]:
    """Results of independent ``jobs``, run side by side, the intra-op threads shared out.

    On a CPU with ``torch.get_num_threads() >= 2`` the jobs run in a pool of at most that many
    Python threads (torch releases the GIL inside its operations) with torch set to
    ``threads // jobs`` threads (one each on 2 cores),
    so that no job synchronises threads inside its decompositions (:func:`intra_op_threads`);
    TF32 is off around the whole pool (:func:`no_tf32`, whose flags are process-wide, is then a
    no-op inside the jobs). Elsewhere — on CUDA, with one thread, inside another job — they
    run one after the other. Each job gives the result it gives alone, up to the rounding of
    single- against multi-threaded BLAS. An exception of a job is raised after all finish.
    """
    workers = min(torch.get_num_threads(), len(jobs))
    if device.type != "cpu" or workers < 2 or getattr(_IN_JOB, "active", False):
        return [job() for job in jobs]

    def run(job: Callable[[], _T]) -> _T:
        _IN_JOB.active = True
        try:
            return job()
        finally:
            _IN_JOB.active = False

    # the cores are shared out: one thread per job on 2 cores, 16 per job on 32
    per_job = max(1, torch.get_num_threads() // workers)
    with no_tf32(), intra_op_threads(per_job), ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(run, job) for job in jobs]
        return [f.result() for f in futures]


def work_dtype(x: Tensor) -> torch.dtype:
    """float64 for float64 inputs, else float32 (the dtype of the big products)."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def row_chunks(n: int, d: int, itemsize: int = 4) -> Iterator[slice]:
    """Row slices of about ``_CHUNK_BYTES`` of a ``(n, d)`` matrix."""
    step = max(256, _CHUNK_BYTES // max(1, d * itemsize))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def _tiled_gram(c: Tensor, out: Tensor | None = None) -> Tensor:
    """``cᵀ c`` from its upper tiles only (up to 4×4 tiles: ≈35% fewer flops than one product
    for d >= 2048; torch has no symmetric rank-k update). ``out``: optional ``(d, d)`` buffer
    of c's dtype, overwritten (each tile is a product written in place, no temporaries)."""
    d = c.shape[1]
    g = torch.empty(d, d, dtype=c.dtype, device=c.device) if out is None else out
    tiles = max(1, min(4, d // 512))
    if tiles == 1:
        return torch.mm(c.T, c, out=g)
    edges = [round(i * d / tiles) for i in range(tiles + 1)]
    for i in range(tiles):
        rows = slice(edges[i], edges[i + 1])
        for j in range(i, tiles):
            cols = slice(edges[j], edges[j + 1])
            g[rows, cols].addmm_(c[:, rows].T, c[:, cols], beta=0)
            if j != i:
                g[cols, rows] = g[rows, cols].T
    return g


def _chunk_rows(widths: Sequence[int], itemsize: int) -> int:
    """Rows per chunk of :func:`covariance_blocks`: about ``_CHUNK_BYTES`` for two matrices as
    wide as the widest one (at least 256). It depends on the widest matrix only, so a pass over
    more matrices cuts the rows exactly where a pass over fewer would, and forms bit-identical
    blocks."""
    return max(256, _CHUNK_BYTES // max(1, 2 * max(widths) * itemsize))


def covariance_blocks(
    mats: Sequence[Tensor], pairs: Sequence[tuple[int, int]]
) -> tuple[list[Tensor], dict[tuple[int, int], Tensor]]:
    """Column means and population covariances (divisor N) of row-aligned matrices.

    Args:
        mats: matrices ``(N, d_m)`` sharing N (already validated), on one device.
        pairs: the blocks ``(i, j)`` to form, ``Σ_ij = (1/N) Σ_n (x_in − μ_i)(x_jn − μ_j)ᵀ``.

    Returns:
        ``(means, blocks)``: float64 means ``(d_m,)`` and float64 blocks ``(d_i, d_j)``.

    A single pass over the rows: each row chunk is centred with a shift in the working dtype
    (float32 unless every input is float64) — the mean of ≤ 4096 rows spread evenly over the
    data, so it is close to the mean whatever the row order — multiplied in that dtype and
    accumulated in float64. The residual mean δ of the shifted data is then removed exactly
    (``Σ = G/N − δ_i δ_jᵀ``, mean ``= shift + δ``), so the shift only needs to be close to the
    mean to keep float32 products accurate. Column sums are products with a ones vector (a
    reduction with a float64 accumulator is ~20× slower on CPU). The stacked
    ``Σ d_m``-square covariance is never formed. Each block depends only on its own two
    matrices (the chunking depends on the widest matrix only), so one pass over several
    matrices gives exactly the blocks of separate passes. The centred chunks and the products
    live in buffers allocated once (fresh large tensors cost page faults on every chunk).
    """
    n = mats[0].shape[0]
    dev = mats[0].device
    wdt = torch.float64 if all(m.dtype == torch.float64 for m in mats) else torch.float32
    itemsize = 8 if wdt == torch.float64 else 4
    f64 = torch.float64
    step = _chunk_rows([m.shape[1] for m in mats], itemsize)
    rows = min(n, step)
    ones = torch.ones(1, rows, dtype=wdt, device=dev)

    def column_sums(chunk: Tensor, out: Tensor | None = None) -> Tensor:
        m = chunk.shape[0]
        row = ones[:, :m] if m <= rows else torch.ones(1, m, dtype=wdt, device=dev)
        return torch.mm(row, chunk, out=out)[0]

    needed = sorted({i for pair in pairs for i in pair} | set(range(len(mats))))
    stride = max(1, n // 4096)
    grams: dict[tuple[int, int], Tensor] = {
        (i, j): torch.zeros(mats[i].shape[1], mats[j].shape[1], dtype=f64, device=dev)
        for i, j in pairs
    }
    with no_tf32():
        shift = {}
        for i in needed:
            sample = mats[i][::stride].to(wdt)
            shift[i] = (column_sums(sample).to(f64) / sample.shape[0]).to(wdt)
        resid = {i: torch.zeros(mats[i].shape[1], dtype=f64, device=dev) for i in needed}
        cen_buf = {i: torch.empty(rows, mats[i].shape[1], dtype=wdt, device=dev) for i in needed}
        sums = {i: torch.empty(1, mats[i].shape[1], dtype=wdt, device=dev) for i in needed}
        shapes = {grams[p].shape for p in pairs}  # one product (and f64 copy) buffer per shape
        prod = {sh: torch.empty(sh, dtype=wdt, device=dev) for sh in shapes}
        wide = {sh: torch.empty(sh, dtype=f64, device=dev) for sh in shapes if wdt != f64}
        for start in range(0, n, step):
            sl = slice(start, min(n, start + step))
            m = sl.stop - sl.start
            cen = {}
            for i in needed:
                if mats[i].dtype == wdt:
                    cen[i] = torch.sub(mats[i][sl], shift[i], out=cen_buf[i][:m])
                else:
                    cen[i] = cen_buf[i][:m].copy_(mats[i][sl]).sub_(shift[i])
                resid[i] += column_sums(cen[i], sums[i]).to(f64)
            for i, j in pairs:
                out = prod[grams[(i, j)].shape]
                if i == j:
                    _tiled_gram(cen[i], out)
                else:
                    torch.mm(cen[i].T, cen[j], out=out)
                if wdt == f64:
                    grams[(i, j)] += out
                else:  # f64 += f32 would allocate a converted copy on every chunk
                    grams[(i, j)] += wide[out.shape].copy_(out)
    means = [shift[i].to(f64) + resid[i] / n for i in needed]
    for i, j in pairs:
        grams[(i, j)].sub_(torch.outer(resid[i], resid[j]) / n).div_(n)
    return means, grams


def regularised_cholesky(
    cov: Tensor,
    ridge: float,
    what: str,
    log: WarningLog,
    scale: float | None = None,
    resolution: float | None = None,
) -> tuple[Tensor, float]:
    """Cholesky factor ``L`` (lower) of ``Σ + ε·s·I`` (docs/math.md §3, §9), float64.

    ``s`` is ``scale`` when given and positive — the within-class variance per dimension
    ``tr(Σ_W)/d`` of class-centred moments (:mod:`ncib.analysis.moments`), the scale of the
    finest structure Σ must resolve in the terminal phase — else ``tr(Σ)/d``.
    Returns ``(L, reg)`` with ``reg = ε·s`` the absolute ridge actually added. Warns when
    Σ is numerically rank deficient — a squared Cholesky pivot keeps less than
    ``max(min(10ε, 1e-4), 100·d·eps)`` of its regularised diagonal (duplicated or collinear
    columns, N <= d) — when directions lie below ``resolution`` (the smallest variance the
    computation of Σ resolves), and escalates the ridge when the factorisation fails (only
    possible for ``ridge`` ≈ 0).
    """
    unit = _ridge_scale(cov, ridge, what, scale)
    d = cov.shape[0]
    eps = torch.finfo(torch.float64).eps
    reg = ridge * unit
    eye = torch.eye(d, dtype=cov.dtype, device=cov.device)
    chol, info = torch.linalg.cholesky_ex(cov + reg * eye)
    if int(info) != 0:
        reg = max(reg, d * eps * unit)
        while int(info) != 0:
            reg *= 10.0
            chol, info = torch.linalg.cholesky_ex(cov + reg * eye)
    cholesky_warnings(cov, chol, reg, ridge, what, log, scale, resolution)
    return chol, reg


def _ridge_scale(cov: Tensor, ridge: float, what: str, scale: float | None = None) -> float:
    """``scale`` when it is given and positive, else ``tr(Σ)/d`` (1 when Σ = 0), validating
    the ridge and Σ."""
    if ridge < 0 or not math.isfinite(ridge):
        raise ValueError(f"ridge={ridge} must be a finite number >= 0")
    total = float(cov.diagonal().sum()) / cov.shape[0]
    if not math.isfinite(total):
        raise ValueError(f"{what} is not finite: the features contain NaN or inf")
    if scale is not None and math.isfinite(scale) and scale > 0.0:
        return float(scale)
    return total if total > 0.0 else 1.0


def cholesky_warnings(
    cov: Tensor,
    chol: Tensor,
    reg: float,
    ridge: float,
    what: str,
    log: WarningLog,
    scale: float | None = None,
    resolution: float | None = None,
) -> None:
    """The warnings :func:`regularised_cholesky` gives for ``chol``, its factor of ``cov`` with
    the absolute ridge ``reg`` (for a factor reused by another analysis: O(d), no
    refactorisation)."""
    d = cov.shape[0]
    eps = torch.finfo(torch.float64).eps
    if not float(cov.diagonal().sum()) / d > 0.0:
        log.warn(f"{what} is zero (every column constant); using a unit ridge scale")
    given = scale if scale is not None and math.isfinite(scale) and scale > 0.0 else None
    scale = _ridge_scale(cov, ridge, what, scale)
    if resolution is not None and resolution > 0.0:
        _resolution_warning(cov, chol, reg, what, resolution, log)
    if reg != ridge * scale:
        log.warn(
            f"{what} is not positive definite with ridge={ridge}; used an absolute ridge "
            f"{reg:.3e} (= {reg / scale:.1e}·{'tr' if given is None else 'tr(Σ_W)'}/d) to "
            "factorise it"
        )
    tol = max(min(10.0 * ridge, 1e-4), 100.0 * d * eps)
    if given is None:  # relative to each column's own variance
        ratio = chol.diagonal().square() / (cov.diagonal() + reg)
        what_of, unit = "of their variance", "tr(Σ)/d"
    else:  # class-centred: relative to the within-class variance (collapse is not deficiency)
        ratio = (chol.diagonal().square() - reg) / scale
        what_of, unit = "of the within-class variance per dimension", "tr(Σ_W)/d"
    deficient = int((ratio < tol).sum())
    if deficient:
        log.warn(
            f"{what} is numerically rank deficient: {deficient} of {d} directions keep less "
            f"than {tol:.0e} {what_of} after the preceding columns (duplicated or "
            f"collinear columns, or N <= d); the ridge {ridge:g}·{unit} regularises them"
        )


def _resolution_warning(
    cov: Tensor, chol: Tensor, reg: float, what: str, resolution: float, log: WarningLog
) -> None:
    """Warn when directions of Σ have a variance (the squared Cholesky pivot less the ridge:
    what a column keeps after the preceding ones) below 10× ``resolution``, the smallest
    variance the computation of Σ resolves — columns that are not constant themselves (those
    are reported as constant). Along them the canonical correlations, GIB eigenvalues and T_K
    are rounding, not data; the condition number named is ``max pivot² / min pivot²``."""
    pivots = chol.diagonal().square()
    kept = pivots - reg
    floor = 10.0 * resolution
    low = int(((kept < floor) & (cov.diagonal() > floor)).sum())
    if low:
        kappa = float(pivots.max() / pivots.min().clamp_min(torch.finfo(torch.float64).tiny))
        log.warn(
            f"{what}: {low} of {cov.shape[0]} directions have a variance below the resolution "
            f"of its computation (≈{resolution:.1e}; condition number ≈{kappa:.1e}): canonical "
            "correlations, GIB eigenvalues and T_K along them are rounding, not data "
            "(docs/math.md §9)"
        )
