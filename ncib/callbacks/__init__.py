"""Thin Lightning adapters over :mod:`ncib.analysis` (features extracted once per epoch)."""

from ncib.callbacks.base import AnalysisCallback
from ncib.callbacks.etf import SimplexETFCallback
from ncib.callbacks.gib import GIBCallback
from ncib.callbacks.identifiability import IdentifiabilityCallback

__all__ = ["AnalysisCallback", "GIBCallback", "IdentifiabilityCallback", "SimplexETFCallback"]
