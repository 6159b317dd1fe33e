"""Thin Lightning adapters: the analysis callback over :mod:`ncib.engine`, checkpoints that
survive kills, and the divergence guard."""

from ncib.callbacks.analysis import PairAnalysisCallback
from ncib.callbacks.checkpoint import (
    AtomicCheckpointIO,
    DivergenceGuard,
    EpochCheckpoint,
    TrainingDivergedError,
)
from ncib.callbacks.progress import ProgressLines

__all__ = [
    "AtomicCheckpointIO",
    "DivergenceGuard",
    "EpochCheckpoint",
    "PairAnalysisCallback",
    "ProgressLines",
    "TrainingDivergedError",
]
