"""Thin Lightning adapters: the analysis callback over :mod:`ncib.engine`, checkpoints that
survive kills, the divergence guard, and the analysis's memory check."""

from ncib.callbacks.analysis import PairAnalysisCallback
from ncib.callbacks.checkpoint import (
    AtomicCheckpointIO,
    DivergenceGuard,
    EpochCheckpoint,
    TrainingDivergedError,
)
from ncib.callbacks.memory import AnalysisMemoryCheck
from ncib.callbacks.progress import ProgressLines

__all__ = [
    "AnalysisMemoryCheck",
    "AtomicCheckpointIO",
    "DivergenceGuard",
    "EpochCheckpoint",
    "PairAnalysisCallback",
    "ProgressLines",
    "TrainingDivergedError",
]
