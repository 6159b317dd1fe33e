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
from .cca import CCAResult, CovarianceBlocks, cca_from_covariance, cross_covariance
from .copula import normal_scores

__all__ = ["CopulaCCAResult", "copula_cca", "copula_cca_from_covariance"]


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


def _summary(cca: CCAResult, k: int) -> CopulaCCAResult:
    r = cca.rho.shape[0]
    if isinstance(k, bool) or int(k) != k or not 1 <= k <= r:
        raise ValueError(f"k={k} is out of range: k must be an integer with 1 <= k <= d = {r}")
    log = WarningLog("copula_cca")
    log.extend(cca.warnings)
    rho = cca.rho
    return CopulaCCAResult(rho, int(k), rho[: int(k)].mean(), rho.mean(), rho.min(), log.as_tuple())


def copula_cca_from_covariance(
    cov: CovarianceBlocks, k: int, ridge: float = 1e-6
) -> CopulaCCAResult:
    """From covariance blocks with a = raw features, b = their normal scores (same columns)."""
    if cov.cov_aa.shape != cov.cov_bb.shape:
        raise ValueError(
            f"raw features and normal scores must have the same columns, got blocks "
            f"{tuple(cov.cov_aa.shape)} and {tuple(cov.cov_bb.shape)}"
        )
    return _summary(cca_from_covariance(cov, ridge), k)


def copula_cca(
    raw: Tensor, k: int, normal: Tensor | None = None, ridge: float = 1e-6
) -> CopulaCCAResult:
    """CCA between ``raw (N, d)`` and its normal scores ``normal (N, d)`` (computed when None).

    Args:
        raw: features of one member.
        k: number of leading ρ averaged into ``mean_k``.
        normal: ``normal_scores(raw)``, when already at hand.
        ridge: relative ridge of the CCA.
    """
    check_matrix("raw", raw, min_rows=2)
    if normal is None:
        normal = normal_scores(raw)
    elif normal.shape != raw.shape:
        raise ValueError(
            f"normal has shape {tuple(normal.shape)} but raw {tuple(raw.shape)}; pass the "
            "normal scores of raw itself"
        )
    return copula_cca_from_covariance(cross_covariance(raw, normal), k, ridge)
