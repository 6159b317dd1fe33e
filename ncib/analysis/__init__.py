"""Pure math on feature tensors: normal scores, CCA, Gaussian IB, simplex ETF, probes (DESIGN §4).

Tensors in, frozen dataclasses of tensors out; no Lightning, no logging, no I/O. Every result
carries ``warnings: tuple[str, ...]`` (each also emitted as a :class:`RuntimeWarning`).
:class:`PairAnalysis` orchestrates one analysis epoch of a seed pair with caching.
"""

from .cca import (
    CCAResult,
    CovarianceBlocks,
    canonical_correlations,
    cca_from_covariance,
    cross_covariance,
)
from .copula import normal_scores, normal_scores_train_test
from .etf import (
    ClassMeans,
    ETFStats,
    NC1Result,
    class_means,
    nc1,
    nc4_agreement,
    ncc_predict,
    simplex_etf_stats,
)
from .gib import (
    GIBResult,
    IBRepresentation,
    InformationCurve,
    gaussian_ib,
    gib_from_cca,
    gib_from_covariance,
    ib_representation,
)
from .identifiability import (
    IdentifiabilityResult,
    heldout_from_cca,
    heldout_identifiability,
    identifiability,
    identifiability_from_cca,
)
from .pair import PairAnalysis
from .probe import ProbeResult, fit_linear_probe

__all__ = [
    "CCAResult",
    "ClassMeans",
    "CovarianceBlocks",
    "ETFStats",
    "GIBResult",
    "IBRepresentation",
    "IdentifiabilityResult",
    "InformationCurve",
    "NC1Result",
    "PairAnalysis",
    "ProbeResult",
    "canonical_correlations",
    "cca_from_covariance",
    "class_means",
    "cross_covariance",
    "fit_linear_probe",
    "gaussian_ib",
    "gib_from_cca",
    "gib_from_covariance",
    "heldout_from_cca",
    "heldout_identifiability",
    "ib_representation",
    "identifiability",
    "identifiability_from_cca",
    "nc1",
    "nc4_agreement",
    "ncc_predict",
    "normal_scores",
    "normal_scores_train_test",
    "simplex_etf_stats",
]
