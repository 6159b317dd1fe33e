"""The paper's tables and figures from records: ``python -m ncib.report <run_dir>`` for a run,
``python -m ncib.report <multirun_dir>`` for a sweep (one report over its seed pairs)."""

from ncib.report.report import Report, build_report, write_report
from ncib.report.sweep import SweepReport, build_sweep_report, is_sweep_dir, write_sweep_report

__all__ = [
    "Report",
    "SweepReport",
    "build_report",
    "build_sweep_report",
    "is_sweep_dir",
    "write_report",
    "write_sweep_report",
]
