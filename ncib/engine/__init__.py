"""The analysis engine: feature extraction and the per-epoch analysis of a pair, usable with or
without a Trainer (training callbacks, ``python -m ncib.analyse``, zero-shot transfer)."""

from ncib.engine.epoch import AnalysisSettings, PairEpochAnalysis
from ncib.engine.features import (
    Collective,
    PairFeatures,
    SingleProcess,
    analysis_rows,
    extract_pair_features,
    member_features,
)

__all__ = [
    "AnalysisSettings",
    "Collective",
    "PairEpochAnalysis",
    "PairFeatures",
    "SingleProcess",
    "analysis_rows",
    "extract_pair_features",
    "member_features",
]
