"""The paper's tables and figures from a run's records: ``python -m ncib.report <run_dir>``."""

from ncib.report.report import Report, build_report, log_to_wandb, write_report

__all__ = ["Report", "build_report", "log_to_wandb", "write_report"]
