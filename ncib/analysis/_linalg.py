"""Shared numerics of :mod:`ncib.analysis` (DESIGN §5).

* :func:`no_tf32` — TF32 (and reduced-precision float32 matmuls) off inside the analysis.
* :func:`check_matrix` / :func:`check_labels` — input validation with actionable messages.
* :func:`covariance_blocks` — means and covariances of one or more ``(N, d_m)`` matrices in one
  pass over row chunks: float32 inputs are centred with a float64 mean, multiplied in float32
  and accumulated in float64 (with the exact correction for the float32-rounded mean);
  float64 inputs stay float64 throughout.
* :func:`regularised_cholesky` — ``L Lᵀ = Σ + ε·tr(Σ)/d·I`` with rank diagnostics.
* :class:`WarningLog` — collects warnings for a result's ``warnings`` field and emits each one
  as a :class:`RuntimeWarning`.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import warnings
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

__all__ = [
    "WarningLog",
    "check_labels",
    "check_matrix",
    "covariance_blocks",
    "no_tf32",
    "regularised_cholesky",
    "row_chunks",
    "work_dtype",
]

_CHUNK_BYTES = 64 * 2**20  # rows per chunk: about 64 MiB of one input matrix


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


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _caller_stacklevel() -> int:
    """``stacklevel`` for ``warnings.warn`` (called one frame below here) that points at the
    first frame outside ``ncib.analysis`` and ``contextlib`` (the caller of the analysis)."""
    frame = sys._getframe(2)
    level = 2
    while frame is not None:
        filename = os.path.abspath(frame.f_code.co_filename)
        if not (filename.startswith(_PACKAGE_DIR) or filename == contextlib.__file__):
            break
        frame = frame.f_back
        level += 1
    return level


class WarningLog:
    """Ordered, de-duplicated warnings of one result; :meth:`warn` also emits them."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._items: dict[str, None] = {}

    def warn(self, message: str) -> None:
        text = f"{self.source}: {message}"
        if text not in self._items:
            self._items[text] = None
            warnings.warn(text, RuntimeWarning, stacklevel=_caller_stacklevel())

    def extend(self, items: Sequence[str]) -> None:
        """Adopt already-emitted warnings of an intermediate result (not re-emitted)."""
        for item in items:
            self._items.setdefault(item, None)

    def as_tuple(self) -> tuple[str, ...]:
        return tuple(self._items)


def check_matrix(name: str, x: object, min_rows: int = 1) -> Tensor:
    """Validate a feature matrix: a floating-point ``(N, d)`` tensor with N >= ``min_rows``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, d), got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, d), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if x.shape[0] < min_rows or x.shape[1] < 1:
        raise ValueError(
            f"{name} has shape {tuple(x.shape)}; need at least {min_rows} rows and 1 column"
        )
    return x


def check_labels(name: str, y: object, n: int, num_classes: int) -> Tensor:
    """Validate integer labels ``(N,)`` in ``[0, num_classes)``; returns them as int64."""
    if not isinstance(y, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N,), got {type(y).__name__}")
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(
            f"{name} must have shape ({n},) to match the features, got {tuple(y.shape)}"
        )
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class labels, got {y.dtype}")
    if num_classes < 2:
        raise ValueError(
            f"num_classes={num_classes}: need at least two classes for class-mean geometry "
            "and classification"
        )
    if n > 0:
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(
                f"{name} has labels in [{lo}, {hi}], outside [0, num_classes={num_classes})"
            )
    return y.long()


def work_dtype(x: Tensor) -> torch.dtype:
    """float64 for float64 inputs, else float32 (the dtype of the big products)."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def row_chunks(n: int, d: int, itemsize: int = 4) -> Iterator[slice]:
    """Row slices of about ``_CHUNK_BYTES`` of a ``(n, d)`` matrix."""
    step = max(256, _CHUNK_BYTES // max(1, d * itemsize))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def _sym_gram(c: Tensor) -> Tensor:
    """``cᵀ c`` of a ``(n, d)`` chunk from its upper tiles only (up to 4×4 tiles: ≈35% fewer
    flops than one full product for d >= 2048; torch has no symmetric rank-k update)."""
    d = c.shape[1]
    tiles = max(1, min(4, d // 512))
    if tiles == 1:
        return c.T @ c
    edges = [round(i * d / tiles) for i in range(tiles + 1)]
    g = torch.empty(d, d, dtype=c.dtype, device=c.device)
    for i in range(tiles):
        rows = slice(edges[i], edges[i + 1])
        for j in range(i, tiles):
            cols = slice(edges[j], edges[j + 1])
            g[rows, cols] = c[:, rows].T @ c[:, cols]
            if j != i:
                g[cols, rows] = g[rows, cols].T
    return g


def covariance_blocks(
    mats: Sequence[Tensor], pairs: Sequence[tuple[int, int]]
) -> tuple[list[Tensor], dict[tuple[int, int], Tensor]]:
    """Column means and population covariances (divisor N) of row-aligned matrices.

    Args:
        mats: matrices ``(N, d_m)`` sharing N (already validated), on one device.
        pairs: the blocks ``(i, j)`` to form, ``Σ_ij = (1/N) Σ_n (x_in − μ_i)(x_jn − μ_j)ᵀ``.

    Returns:
        ``(means, blocks)``: float64 means ``(d_m,)`` and float64 blocks ``(d_i, d_j)``.

    One pass for the means and one for the products: each row chunk is centred with the
    float64 mean rounded to the working dtype, multiplied in that dtype (float32 unless the
    input is float64) and accumulated in float64; the residual mean of the rounded centring is
    removed exactly at the end (``G − N δ_i δ_jᵀ``). The stacked ``Σ d_m``-square covariance
    is never formed.
    """
    n = mats[0].shape[0]
    dev = mats[0].device
    wdt = torch.float64 if all(m.dtype == torch.float64 for m in mats) else torch.float32
    itemsize = 8 if wdt == torch.float64 else 4
    width = sum(m.shape[1] for m in mats)
    f64 = torch.float64
    sums = [torch.zeros(m.shape[1], dtype=f64, device=dev) for m in mats]
    for sl in row_chunks(n, width, itemsize):
        for s, m in zip(sums, mats, strict=True):
            s += m[sl].sum(0, dtype=f64)
    means = [s / n for s in sums]
    shift = [mu.to(wdt) for mu in means]
    resid = [torch.zeros_like(s) for s in sums]
    grams = {p: None for p in pairs}
    needed = sorted({i for p in pairs for i in p})
    with no_tf32():
        for sl in row_chunks(n, width, itemsize):
            cen = {i: mats[i][sl].to(wdt) - shift[i] for i in needed}
            for i in needed:
                resid[i] += cen[i].sum(0, dtype=f64)
            for i, j in pairs:
                prod = _sym_gram(cen[i]) if i == j else cen[i].T @ cen[j]
                prod = prod.to(f64)
                grams[(i, j)] = prod if grams[(i, j)] is None else grams[(i, j)].add_(prod)
    blocks = {}
    for i, j in pairs:
        g = grams[(i, j)]
        g.sub_(torch.outer(resid[i], resid[j]) / n).div_(n)
        blocks[(i, j)] = g
    return means, blocks


def regularised_cholesky(
    cov: Tensor, ridge: float, what: str, log: WarningLog
) -> tuple[Tensor, float]:
    """Cholesky factor ``L`` (lower) of ``Σ + ε·tr(Σ)/d·I`` (DESIGN §4), float64.

    Returns ``(L, reg)`` with ``reg = ε·tr(Σ)/d`` the absolute ridge actually added. Warns when
    Σ is numerically rank deficient — a squared Cholesky pivot keeps less than
    ``max(min(10ε, 1e-4), 100·d·eps)`` of its regularised diagonal (duplicated or collinear
    columns, N <= d) — and escalates the ridge when the factorisation fails (only possible for
    ``ridge`` ≈ 0).
    """
    if ridge < 0 or not math.isfinite(ridge):
        raise ValueError(f"ridge={ridge} must be a finite number >= 0")
    d = cov.shape[0]
    scale = float(cov.diagonal().sum()) / d
    if not math.isfinite(scale):
        raise ValueError(f"{what} is not finite: the features contain NaN or inf")
    if scale <= 0.0:
        log.warn(f"{what} is zero (every column constant); using a unit ridge scale")
        scale = 1.0
    eps = torch.finfo(torch.float64).eps
    reg = ridge * scale
    eye = torch.eye(d, dtype=cov.dtype, device=cov.device)
    chol, info = torch.linalg.cholesky_ex(cov + reg * eye)
    if int(info) != 0:
        reg = max(reg, d * eps * scale)
        while int(info) != 0:
            reg *= 10.0
            chol, info = torch.linalg.cholesky_ex(cov + reg * eye)
        log.warn(
            f"{what} is not positive definite with ridge={ridge}; used an absolute ridge "
            f"{reg:.3e} (= {reg / scale:.1e}·tr/d) to factorise it"
        )
    ratio = chol.diagonal().square() / (cov.diagonal() + reg)
    tol = max(min(10.0 * ridge, 1e-4), 100.0 * d * eps)
    deficient = int((ratio < tol).sum())
    if deficient:
        log.warn(
            f"{what} is numerically rank deficient: {deficient} of {d} directions keep less "
            f"than {tol:.0e} of their variance after the preceding columns (duplicated or "
            f"collinear columns, or N <= d); the ridge {ridge:g}·tr(Σ)/d regularises them"
        )
    return chol, reg
