"""Loggers that continue a resumed run instead of starting over.

:class:`ContinuingCSVLogger` is Lightning's ``CSVLogger`` except that an existing
``metrics.csv`` is kept and appended to (Lightning's deletes it when the logger starts, even
if the resume then fails). Rows logged after the checkpoint a run resumes from are removed
first by :func:`drop_csv_rows` (they are logged again), so the file reads as one run.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path

from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter

from ncib.records import atomic_write_bytes

__all__ = ["ContinuingCSVLogger", "drop_csv_rows"]


class _ContinuingWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as f:
                header = next(csv.reader(f), [])
            self.metrics_keys = sorted(header)


class ContinuingCSVLogger(CSVLogger):
    """``CSVLogger`` that appends to an existing ``metrics.csv`` (same arguments)."""

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuingWriter(log_dir=self.log_dir)
        return self._experiment


def drop_csv_rows(path: str | Path, drop: Callable[[dict], bool]) -> int:
    """Rewrite ``metrics.csv`` without the rows ``drop`` selects (atomically); returns how many."""
    path = Path(path)
    if not path.is_file():
        return 0
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames or [], list(reader)
    kept = [r for r in rows if not drop(r)]
    if len(kept) != len(rows):
        import io

        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept)
        atomic_write_bytes(path, out.getvalue().encode())
    return len(rows) - len(kept)
