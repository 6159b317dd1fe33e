"""The analysis engine: feature extraction and the per-epoch analysis of a pair, usable with or
without a Trainer (the training callback, ``python -m ncib.analyse``, zero-shot transfer), and
the analysis plan they all read (:mod:`ncib.engine.plan`).

The names below are imported on first use: the plan and the settings need neither Lightning
nor the feature extraction, so ``ncib.config`` checks a command line in seconds."""

from importlib import import_module

_WHERE = {
    "AnalysisPlan": "plan",
    "AnalysisSchedule": "plan",
    "analysis_plan": "plan",
    "plan_of_run": "plan",
    "AnalysisSettings": "settings",
    "PairEpochAnalysis": "epoch",
    "Collective": "features",
    "PairFeatures": "features",
    "SingleProcess": "features",
    "analysis_rows": "features",
    "extract_pair_features": "features",
    "member_features": "features",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'ncib.engine' has no attribute {name!r}")
    return getattr(import_module(f"ncib.engine.{_WHERE[name]}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
