"""The analysis engine: feature extraction and the per-epoch analysis of a pair, usable with or
without a Trainer (the training callback, ``python -m ncib.analyse``, zero-shot transfer), and
the analysis plan they all read (:mod:`ncib.engine.plan`)."""

from ncib.engine.epoch import AnalysisSettings, PairEpochAnalysis
from ncib.engine.features import (
    Collective,
    PairFeatures,
    SingleProcess,
    analysis_rows,
    extract_pair_features,
    member_features,
)
from ncib.engine.plan import AnalysisPlan, AnalysisSchedule, analysis_plan, plan_of_run

__all__ = [
    "AnalysisPlan",
    "AnalysisSchedule",
    "AnalysisSettings",
    "Collective",
    "PairEpochAnalysis",
    "PairFeatures",
    "SingleProcess",
    "analysis_plan",
    "analysis_rows",
    "extract_pair_features",
    "member_features",
    "plan_of_run",
]
