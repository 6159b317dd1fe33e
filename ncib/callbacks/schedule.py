"""Moved: :class:`AnalysisSchedule` lives in :mod:`ncib.engine.plan` with the rest of the
analysis plan; this name stays for code that imported it from here."""

from ncib.engine.plan import AnalysisSchedule

__all__ = ["AnalysisSchedule"]
