"""Pure math on feature tensors: normal scores, CCA, CKA, Gaussian IB, simplex ETF, probes
(docs/math.md).

Tensors in, frozen dataclasses of tensors out; no Lightning, no logging, no I/O. Every result
carries ``warnings: tuple[str, ...]`` (each also emitted as a :class:`RuntimeWarning`).
:class:`PairAnalysis` orchestrates one analysis epoch of a seed pair with caching.
"""

from .cca import (
    CCAResult,
    CovarianceBlocks,
    canonical_correlations,
    canonical_correlations_from_factors,
    cca_from_covariance,
    cross_covariance,
)
from .cka import linear_cka, linear_cka_from_covariance
from .classifier import ClassifierStats, classifier_stats
from .copula import normal_scores, normal_scores_train_test
from .copula_cca import (
    CopulaCCAResult,
    copula_cca,
    copula_cca_from_covariance,
    copula_cca_from_factors,
)
from .etf import (
    ClassMeans,
    ETFStats,
    NC1Result,
    class_means,
    nc1,
    nc4_agreement,
    ncc_loo_accuracy,
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
from .heldout_gib import (
    HeldoutCorrelations,
    HeldoutGIBResult,
    HeldoutGIBSummary,
    heldout_correlations,
    heldout_gaussian_ib,
    heldout_gib_from_cca,
    heldout_gib_from_correlations,
    heldout_gib_summary,
)
from .ib_dimension import IBDimensionPoint, dimension_grid, ib_dimension_curve, k_prime
from .identifiability import (
    IdentifiabilityResult,
    heldout_from_cca,
    heldout_identifiability,
    identifiability,
    identifiability_from_cca,
)
from .intervals import HeldoutIntervals, Interval, IntervalSettings
from .moments import MomentSums, class_centred_moments
from .pair import FEATURES, SPACES, PairAnalysis
from .probe import ProbeResult, fit_logistic_probe

__all__ = [
    "FEATURES",
    "SPACES",
    "CCAResult",
    "ClassMeans",
    "ClassifierStats",
    "CopulaCCAResult",
    "CovarianceBlocks",
    "ETFStats",
    "GIBResult",
    "HeldoutCorrelations",
    "HeldoutGIBResult",
    "HeldoutGIBSummary",
    "HeldoutIntervals",
    "Interval",
    "IntervalSettings",
    "MomentSums",
    "IBRepresentation",
    "IBDimensionPoint",
    "IdentifiabilityResult",
    "InformationCurve",
    "NC1Result",
    "PairAnalysis",
    "ProbeResult",
    "canonical_correlations",
    "canonical_correlations_from_factors",
    "cca_from_covariance",
    "class_centred_moments",
    "class_means",
    "classifier_stats",
    "copula_cca",
    "copula_cca_from_covariance",
    "copula_cca_from_factors",
    "cross_covariance",
    "fit_logistic_probe",
    "gaussian_ib",
    "gib_from_cca",
    "gib_from_covariance",
    "heldout_correlations",
    "dimension_grid",
    "heldout_from_cca",
    "heldout_gaussian_ib",
    "heldout_gib_from_cca",
    "heldout_gib_from_correlations",
    "heldout_gib_summary",
    "heldout_identifiability",
    "ib_dimension_curve",
    "ib_representation",
    "identifiability",
    "identifiability_from_cca",
    "k_prime",
    "linear_cka",
    "linear_cka_from_covariance",
    "nc1",
    "nc4_agreement",
    "ncc_loo_accuracy",
    "ncc_predict",
    "normal_scores",
    "normal_scores_train_test",
    "simplex_etf_stats",
]
