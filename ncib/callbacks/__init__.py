"""Thin Lightning adapters: the analysis callbacks over :mod:`ncib.engine`, checkpoints that
survive kills, and the divergence guard."""

from ncib.callbacks.base import AnalysisCallback
from ncib.callbacks.checkpoint import (
    AtomicCheckpointIO,
    DivergenceGuard,
    EpochCheckpoint,
    TrainingDivergedError,
)
from ncib.callbacks.etf import SimplexETFCallback
from ncib.callbacks.gib import GIBCallback
from ncib.callbacks.identifiability import IdentifiabilityCallback
from ncib.callbacks.progress import ProgressLines

__all__ = [
    "AnalysisCallback",
    "AtomicCheckpointIO",
    "DivergenceGuard",
    "EpochCheckpoint",
    "GIBCallback",
    "IdentifiabilityCallback",
    "ProgressLines",
    "SimplexETFCallback",
    "TrainingDivergedError",
]
