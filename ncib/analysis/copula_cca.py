"""How far the Gaussian copula is from the raw features: CCA of Z and its normal scores.

The meta-Gaussian analyses (normal-score CCA, the GIB) replace each feature column by its
normal score ``g = Φ⁻¹(rank/(N+1))`` (:mod:`ncib.analysis.copula`). The canonical correlations
between the raw features ``Z (N, d)`` of one member and its own normal scores ``G (N, d)``
measure what that monotone, per-column transform does to the linear geometry: all ``ρ_i = 1``
when every column is already Gaussian up to an affine map (G is then an affine image of Z,
up to the discreteness of ranks); for independent columns ``z_j = f_j(g_j)`` each ``ρ_i`` is
one of the per-column correlations ``corr(f_j(g), g)`` (e.g. ``σ/sqrt(e^{σ²} − 1)`` for
``f(g) = exp(σg)``, g standard normal; ``3/sqrt(15)`` for ``f(g) = g³``); ρ near 0 marks directions of Z that the ranks do not keep
linearly. Computed on the training split, with the CCA of :mod:`ncib.analysis.cca`.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from ._checks import WarningLog, check_matrix
from ._linalg import cholesky_warnings
from .cca import (
    CovarianceBlocks,
    canonical_correlations_from_factors,
    cca_from_covariance,
    cross_covariance,
)
from .copula import normal_scores

__all__ = [
    "CopulaCCAResult",
    "copula_cca",
    "copula_cca_from_covariance",
    "copula_cca_from_factors",
]


@dataclass(frozen=True)
class CopulaCCAResult:
    """Canonical correlations between raw features and their normal scores (float64).

    Attributes:
        rho: ``(d,)`` canonical correlations, descending.
        k: number of leading correlations summarised in ``mean_k``.
        mean_k: 0-dim mean of the k leading ρ; mean_all: 0-dim mean of all ρ.
        min_all: 0-dim smallest ρ.
        warnings: diagnostics of the covariance and the CCA.
    """

    rho: Tensor
    k: int
    mean_k: Tensor
    mean_all: Tensor
    min_all: Tensor
    warnings: tuple[str, ...] = ()


def _check_k(k: int, r: int) -> int:
    if isinstance(k, bool) or int(k) != k or not 1 <= k <= r:
        raise ValueError(f"k={k} is out of range: k must be an integer with 1 <= k <= d = {r}")
    return int(k)


def _summary(rho: Tensor, k: int, warnings: tuple[str, ...]) -> CopulaCCAResult:
    k = _check_k(k, rho.shape[0])
    return CopulaCCAResult(rho, k, rho[:k].mean(), rho.mean(), rho.min(), warnings)


def copula_cca_from_covariance(
    cov: CovarianceBlocks, k: int, ridge: float = 1e-6
) -> CopulaCCAResult:
    """From covariance blocks with a = raw features, b = their normal scores (same columns)."""
    if cov.cov_aa.shape != cov.cov_bb.shape:
        raise ValueError(
            f"raw features and normal scores must have the same columns, got blocks "
            f"{tuple(cov.cov_aa.shape)} and {tuple(cov.cov_bb.shape)}"
        )
    cca = cca_from_covariance(cov, ridge)
    return _summary(cca.rho, k, cca.warnings)


def copula_cca_from_factors(
    cov_zg: Tensor,
    raw: tuple,
    normal: tuple,
    k: int,
    ridge: float = 1e-6,
) -> CopulaCCAResult:
    """The same result from factors already at hand (:class:`ncib.analysis.PairAnalysis` reuses
    those of the raw and normal-score CCAs of the pair): only two triangular solves and the
    singular values of ``L_z⁻¹ Σ_zg L_g⁻ᵀ`` (no singular vectors).

    Args:
        cov_zg: ``(d, d)`` cross covariance of the raw features Z and their normal scores G.
        raw: ``(Σ_zz, L_z, reg_z)``: covariance, Cholesky factor of ``Σ_zz + reg_z·I`` and the
            absolute ridge, as :func:`ncib.analysis._linalg.regularised_cholesky` returns them
            for ``ridge``, optionally followed by the ridge scale and the resolution of Σ_zz
            (:class:`ncib.analysis.CovarianceBlocks`' ``scale_*``, ``resolution_*``);
            normal: the same for G.
        k, ridge: as in :func:`copula_cca` (the ridge the factors were made with).
    """
    (cov_zz, chol_z, reg_z, *extra_z), (cov_gg, chol_g, reg_g, *extra_g) = raw, normal
    if cov_zz.shape != cov_gg.shape or cov_zg.shape != cov_zz.shape:
        raise ValueError(
            f"raw features and normal scores must have the same columns, got blocks "
            f"{tuple(cov_zz.shape)}, {tuple(cov_gg.shape)} and cross {tuple(cov_zg.shape)}"
        )
    _check_k(k, cov_zz.shape[0])
    log = WarningLog("canonical_correlations")  # the warnings the full CCA would give
    cholesky_warnings(cov_zz, chol_z, reg_z, ridge, "Σ_aa", log, *extra_z)
    cholesky_warnings(cov_gg, chol_g, reg_g, ridge, "Σ_bb", log, *extra_g)
    rho = canonical_correlations_from_factors(cov_zg, chol_z, chol_g, log)
    return _summary(rho, k, log.as_tuple())


def copula_cca(
    raw: Tensor,
    k: int,
    normal: Tensor | None = None,
    ridge: float = 1e-6,
    labels: Tensor | None = None,
) -> CopulaCCAResult:
    """CCA between ``raw (N, d)`` and its normal scores ``normal (N, d)`` (computed when None).

    Args:
        raw: features of one member.
        k: number of leading ρ averaged into ``mean_k``.
        normal: ``normal_scores(raw)``, when already at hand.
        ridge: relative ridge of the CCA.
        labels: ``(N,)`` class labels: class-centred moments (as :func:`cross_covariance`).
    """
    check_matrix("raw", raw, min_rows=2)
    if normal is None:
        normal = normal_scores(raw)
    elif normal.shape != raw.shape:
        raise ValueError(
            f"normal has shape {tuple(normal.shape)} but raw {tuple(raw.shape)}; pass the "
            "normal scores of raw itself"
        )
    return copula_cca_from_covariance(cross_covariance(raw, normal, labels), k, ridge)
