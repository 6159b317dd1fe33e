"""Canonical correlation analysis by Cholesky whitening (docs/math.md §3, "linear identifiability").

Centre A and B, form ``Σ_aa, Σ_bb, Σ_ab`` (population, divisor N) in one pass, add the ridge
``ε·tr(Σ)/d·I`` to ``Σ_aa`` and ``Σ_bb``, factorise ``L_a L_aᵀ = Σ_aa``, ``L_b L_bᵀ = Σ_bb`` and
take the SVD ``L_a⁻¹ Σ_ab L_b⁻ᵀ = U diag(ρ) Vᵀ`` (triangular solves only, no inverses, no
eigendecomposition square roots). Canonical directions ``W_a = L_a⁻ᵀ U``, ``W_b = L_b⁻ᵀ V``
satisfy ``W_aᵀ Σ_aa W_a = I`` and ``W_aᵀ Σ_ab W_b = diag(ρ)`` (Hotelling 1936; the paper uses the
mean of the K leading ρ as linear identifiability, Fig. 2, after Raghu et al. 2017).

The covariance blocks are a separate step (:func:`cross_covariance`) so that the Gaussian
information bottleneck (:mod:`ncib.analysis.gib`) reuses them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from ._checks import WarningLog, check_matrix
from ._linalg import _chunk_rows, covariance_blocks, no_tf32, regularised_cholesky
from .moments import class_centred_moments

__all__ = [
    "CCAResult",
    "CovarianceBlocks",
    "canonical_correlations",
    "canonical_correlations_from_factors",
    "cca_from_covariance",
    "covariance_from_moments",
    "cross_covariance",
]


@dataclass(frozen=True)
class CovarianceBlocks:
    """Means and population covariance blocks (divisor N) of paired features, float64.

    Attributes:
        mean_a: ``(d_a,)``; mean_b: ``(d_b,)``.
        cov_aa: ``(d_a, d_a)``; cov_bb: ``(d_b, d_b)``; cov_ab: ``(d_a, d_b)``.
        n: number of samples N.
        warnings: degenerate-input diagnostics (constant columns, N <= d).
        scale_a, scale_b: the ridge scale of each side: ``tr(Σ_W)/d`` for class-centred
            moments (:mod:`ncib.analysis.moments`), None for ``tr(Σ)/d`` (docs/math.md §9).
        resolution_a, resolution_b: the smallest variance each side's covariance resolves
            (None: not known); directions below it are named in the CCA's warnings.
    """

    mean_a: Tensor
    mean_b: Tensor
    cov_aa: Tensor
    cov_bb: Tensor
    cov_ab: Tensor
    n: int
    warnings: tuple[str, ...] = ()
    scale_a: float | None = None
    scale_b: float | None = None
    resolution_a: float | None = None
    resolution_b: float | None = None

    def swapped(self) -> CovarianceBlocks:
        """The same blocks with the roles of A and B exchanged (``cov_ab`` transposed)."""
        return replace(
            self,
            mean_a=self.mean_b,
            mean_b=self.mean_a,
            cov_aa=self.cov_bb,
            cov_bb=self.cov_aa,
            cov_ab=self.cov_ab.T,
            scale_a=self.scale_b,
            scale_b=self.scale_a,
            resolution_a=self.resolution_b,
            resolution_b=self.resolution_a,
        )


def _constant_columns(var: Tensor, mean: Tensor, dtype: torch.dtype) -> int:
    """Columns whose spread is below the input dtype's resolution of their magnitude."""
    eps = torch.finfo(dtype).eps
    floor = eps**2 * (mean.square() + var.max().clamp_min(0))
    return int((var <= floor).sum())


def cross_covariance(
    a: Tensor, b: Tensor, labels: Tensor | None = None, num_classes: int | None = None
) -> CovarianceBlocks:
    """Means and covariance blocks of ``a (N, d_a)`` and ``b (N, d_b)`` in one pass.

    float32 inputs: chunked float32 products accumulated in float64 (docs/math.md §9); float64 inputs
    stay float64. The stacked ``(d_a+d_b)``-square covariance is never formed. With ``labels
    (N,)`` (in ``[0, num_classes)``, default ``max + 1``) rows are centred by class before the
    products (:mod:`ncib.analysis.moments`: right in the terminal phase) and the blocks carry
    the within-class ridge scale; without, by the global mean.
    """
    check_matrix("a", a, min_rows=2)
    check_matrix("b", b, min_rows=2)
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"a and b must have the same number of rows (paired samples), got {a.shape[0]} "
            f"and {b.shape[0]}"
        )
    if a.device != b.device:
        raise ValueError(f"a is on {a.device} but b on {b.device}")
    if labels is None:
        (mean_a, mean_b), blocks = covariance_blocks([a, b], list(_PAIR_BLOCKS))
        return covariance_from_moments(a, b, mean_a, mean_b, *(blocks[p] for p in _PAIR_BLOCKS))
    classes = int(labels.max()) + 1 if num_classes is None else int(num_classes)
    sums = class_centred_moments([a, b], list(_PAIR_BLOCKS), labels, classes)
    (mean_a, mean_b), blocks, within = sums.moments()
    return covariance_from_moments(
        a,
        b,
        mean_a,
        mean_b,
        *(blocks[p] for p in _PAIR_BLOCKS),
        scales=(within[0] / a.shape[1], within[1] / b.shape[1]),
        resolutions=tuple(sums.resolution),
    )


_PAIR_BLOCKS = ((0, 0), (1, 1), (0, 1))


def covariance_from_moments(
    a: Tensor,
    b: Tensor,
    mean_a: Tensor,
    mean_b: Tensor,
    cov_aa: Tensor,
    cov_bb: Tensor,
    cov_ab: Tensor,
    scales: tuple[float | None, float | None] = (None, None),
    resolutions: tuple[float | None, float | None] | None = None,
    n: int | None = None,
) -> CovarianceBlocks:
    """:class:`CovarianceBlocks` of ``a (N, d_a)``, ``b (N, d_b)`` from moments already formed
    (by :func:`ncib.analysis._linalg.covariance_blocks` or
    :func:`ncib.analysis.moments.class_centred_moments`, which give ``scales`` (the within-class
    ridge scales) and ``resolutions``), with the checks and warnings of
    :func:`cross_covariance`. Without ``resolutions`` those of globally centred float32
    products are used (:func:`globally_centred_resolution`). ``n``: the rows the moments are
    over (default ``a``'s; a rank of a sharded analysis holds fewer)."""
    log = WarningLog("cross_covariance")
    if not bool(torch.isfinite(cov_aa.diagonal()).all() & torch.isfinite(cov_bb.diagonal()).all()):
        raise ValueError("the features contain NaN or inf; covariances need finite values")
    n = a.shape[0] if n is None else int(n)
    for name, x, mean, cov in (("a", a, mean_a, cov_aa), ("b", b, mean_b, cov_bb)):
        const = _constant_columns(cov.diagonal(), mean, x.dtype)
        if const:
            log.warn(f"{const} of {x.shape[1]} columns of {name} are constant (zero variance)")
        if n <= x.shape[1]:
            log.warn(
                f"N={n} samples <= d={x.shape[1]} columns of {name}: its covariance is "
                "singular and the canonical correlations rely on the ridge"
            )
    if resolutions is None:
        resolutions = (
            globally_centred_resolution(cov_aa, mean_a, a.dtype, a.shape[1], b.shape[1]),
            globally_centred_resolution(cov_bb, mean_b, b.dtype, a.shape[1], b.shape[1]),
        )
    return CovarianceBlocks(
        mean_a, mean_b, cov_aa, cov_bb, cov_ab, n, log.as_tuple(), *scales, *resolutions
    )


def globally_centred_resolution(
    cov: Tensor, mean: Tensor, dtype: torch.dtype, *widths: int
) -> float:
    """The smallest variance a covariance of globally centred products resolves
    (docs/math.md §9): ``eps·sqrt(rows per chunk)·max_j Σ_jj + eps²·max_j μ_j²``, eps of the
    working dtype (float32 unless the input is float64)."""
    wdt = torch.float64 if dtype == torch.float64 else torch.float32
    eps = torch.finfo(wdt).eps
    rows = _chunk_rows(list(widths), 8 if wdt == torch.float64 else 4)
    top = float(cov.diagonal().max()) if cov.numel() else 0.0
    scale = float(mean.abs().max()) if mean.numel() else 0.0
    return eps * math.sqrt(rows) * max(top, 0.0) + (eps * scale) ** 2


@dataclass(frozen=True)
class CCAResult:
    """Canonical correlations and directions (float64).

    Attributes:
        rho: ``(r,)`` canonical correlations, descending, clamped to [0, 1]; r = min(d_a, d_b).
        directions_a: ``(d_a, r)`` ``W_a = L_a⁻ᵀ U``; column i maps centred A to variate i.
        directions_b: ``(d_b, r)`` ``W_b = L_b⁻ᵀ V``.
        mean_a, mean_b: ``(d_a,)``, ``(d_b,)`` centring means (training means).
        chol_a, chol_b: Cholesky factors of the regularised ``Σ_aa``, ``Σ_bb`` (lower).
        ridge: relative ridge ε; reg_a, reg_b: absolute ridges ``ε·tr(Σ)/d`` added.
        n: samples the fit used; warnings: diagnostics (including those of the covariance).
    """

    rho: Tensor
    directions_a: Tensor
    directions_b: Tensor
    mean_a: Tensor
    mean_b: Tensor
    chol_a: Tensor
    chol_b: Tensor
    ridge: float
    reg_a: float
    reg_b: float
    n: int
    warnings: tuple[str, ...] = ()

    def swapped(self) -> CCAResult:
        """The same CCA with the roles of A and B exchanged (no recomputation)."""
        return replace(
            self,
            directions_a=self.directions_b,
            directions_b=self.directions_a,
            mean_a=self.mean_b,
            mean_b=self.mean_a,
            chol_a=self.chol_b,
            chol_b=self.chol_a,
            reg_a=self.reg_b,
            reg_b=self.reg_a,
        )


def cca_from_covariance(cov: CovarianceBlocks, ridge: float = 1e-6) -> CCAResult:
    """CCA from precomputed :class:`CovarianceBlocks` (see module docstring).

    Args:
        cov: blocks from :func:`cross_covariance`.
        ridge: relative ridge ε; ``ε·tr(Σ)/d·I`` is added to ``Σ_aa`` and ``Σ_bb``.
    """
    with no_tf32():
        log = WarningLog("canonical_correlations")
        log.extend(cov.warnings)
        chol_a, reg_a = regularised_cholesky(
            cov.cov_aa, ridge, "Σ_aa", log, cov.scale_a, cov.resolution_a
        )
        chol_b, reg_b = regularised_cholesky(
            cov.cov_bb, ridge, "Σ_bb", log, cov.scale_b, cov.resolution_b
        )
        solve = torch.linalg.solve_triangular
        u, s, vh = torch.linalg.svd(_whitened(cov.cov_ab, chol_a, chol_b), full_matrices=False)
        # a deterministic sign: the largest-magnitude entry of each column of U is positive
        pivot = u.abs().argmax(dim=0)
        sign = torch.sign(u.gather(0, pivot[None, :])).squeeze(0)
        sign[sign == 0] = 1.0
        u, vh = u * sign, vh * sign[:, None]
        if float(s.max()) > 1.0 + 1e-6:
            log.warn(f"largest canonical correlation {float(s.max()):.6f} > 1 clamped to 1")
        rho = s.clamp(0.0, 1.0)
        w_a = solve(chol_a.T, u, upper=True)
        w_b = solve(chol_b.T, vh.T, upper=True)
        return CCAResult(
            rho=rho,
            directions_a=w_a,
            directions_b=w_b,
            mean_a=cov.mean_a,
            mean_b=cov.mean_b,
            chol_a=chol_a,
            chol_b=chol_b,
            ridge=ridge,
            reg_a=reg_a,
            reg_b=reg_b,
            n=cov.n,
            warnings=log.as_tuple(),
        )


def _whitened(cov_ab: Tensor, chol_a: Tensor, chol_b: Tensor) -> Tensor:
    """``L_a⁻¹ Σ_ab L_b⁻ᵀ`` by two triangular solves."""
    solve = torch.linalg.solve_triangular
    left = solve(chol_a, cov_ab, upper=False)  # L_a⁻¹ Σ_ab
    return solve(chol_b, left.T, upper=False).T


def canonical_correlations_from_factors(
    cov_ab: Tensor, chol_a: Tensor, chol_b: Tensor, log: WarningLog
) -> Tensor:
    """The canonical correlations alone, ``(r,)`` descending in [0, 1], from the cross block
    ``Σ_ab (d_a, d_b)`` and Cholesky factors ``L_a``, ``L_b`` of the regularised ``Σ_aa``,
    ``Σ_bb`` (as in :class:`CCAResult`): the singular values of ``L_a⁻¹ Σ_ab L_b⁻ᵀ``
    (``torch.linalg.svdvals``; no singular vectors, about half the cost of the full SVD). Equal
    to ``cca_from_covariance(...).rho`` up to rounding; a largest value above 1 + 1e-6 is
    clamped with the same warning (on ``log``)."""
    with no_tf32():
        rho = torch.linalg.svdvals(_whitened(cov_ab, chol_a, chol_b))
        if float(rho.max()) > 1.0 + 1e-6:
            log.warn(f"largest canonical correlation {float(rho.max()):.6f} > 1 clamped to 1")
        return rho.clamp(0.0, 1.0)


def canonical_correlations(
    a: Tensor, b: Tensor, ridge: float = 1e-6, labels: Tensor | None = None
) -> CCAResult:
    """Canonical correlations between ``a (N, d_a)`` and ``b (N, d_b)`` (docs/math.md §3).

    Equivalent to ``cca_from_covariance(cross_covariance(a, b, labels), ridge)``; see
    :class:`CCAResult` for the fields. Computed on the inputs' device.
    """
    return cca_from_covariance(cross_covariance(a, b, labels), ridge)


def check_test_split(cca: CCAResult, a_test: Tensor, b_test: Tensor, min_rows: int = 2) -> None:
    """Check held-out features ``a_test (N_test, d_a)``, ``b_test (N_test, d_b)`` against a CCA
    fitted on the training split: paired rows, the fitted widths, one device (``min_rows``: 0
    for a rank's shard of the test split)."""
    check_matrix("a_test", a_test, min_rows=min_rows)
    check_matrix("b_test", b_test, min_rows=min_rows)
    d_a, d_b = cca.directions_a.shape[0], cca.directions_b.shape[0]
    if a_test.shape[1] != d_a or b_test.shape[1] != d_b:
        raise ValueError(
            f"test features have {a_test.shape[1]} and {b_test.shape[1]} columns but the CCA "
            f"was fitted on {d_a} and {d_b}"
        )
    if a_test.shape[0] != b_test.shape[0]:
        raise ValueError(
            f"a_test and b_test must be paired (same rows), got {a_test.shape[0]} and "
            f"{b_test.shape[0]}"
        )
    if a_test.device != b_test.device:
        raise ValueError(f"a_test is on {a_test.device} but b_test on {b_test.device}")
