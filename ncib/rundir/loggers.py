"""Loggers that continue a resumed run instead of starting over.

:class:`ContinuingCSVLogger` is Lightning's ``CSVLogger`` except that an existing
``metrics.csv`` is kept and appended to (Lightning's deletes it when the logger starts, even
if the resume then fails). Rows logged after the checkpoint a run resumes from are removed
first by :func:`drop_csv_rows` (they are logged again), so the file reads as one run.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Callable
from pathlib import Path

from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter

from ncib.rundir.records import atomic_write_bytes

__all__ = ["ContinuingCSVLogger", "drop_csv_rows", "read_csv_rows"]
log = logging.getLogger("ncib.rundir.resume")


class _ContinuingWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as f:
                header = next(csv.reader(f), [])
            self.metrics_keys = sorted(header)

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        # Lightning rewrites the file in place: a kill in between left it truncated, and a torn
        # row (a kill mid-append) made the rewrite fail at the end of a resumed run
        _, rows, _ = read_csv_rows(self.metrics_file_path)
        _write_rows(Path(self.metrics_file_path), fieldnames, rows)


class ContinuingCSVLogger(CSVLogger):
    """``CSVLogger`` that appends to an existing ``metrics.csv`` (same arguments)."""

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ContinuingWriter(log_dir=self.log_dir)
        return self._experiment


def read_csv_rows(path: str | Path) -> tuple[list[str], list[dict], int]:
    """``(header, complete rows, torn rows)`` of a ``metrics.csv``. A row is torn when a kill
    cut it: the file's last line without its newline, or a row with more or fewer fields than
    the header."""
    raw = Path(path).read_bytes().decode("utf-8", errors="replace")
    reader = csv.DictReader(io.StringIO(raw, newline=""))
    fields, rows = list(reader.fieldnames or []), list(reader)
    torn = 0
    if rows and raw and not raw.endswith("\n"):
        rows.pop()
        torn += 1
    whole = [r for r in rows if None not in r and None not in r.values()]
    return fields, whole, torn + len(rows) - len(whole)


def _write_rows(path: Path, fields: list[str], rows: list[dict]) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, out.getvalue().encode())


def drop_csv_rows(path: str | Path, drop: Callable[[dict], bool]) -> int:
    """Rewrite ``metrics.csv`` without the rows ``drop`` selects and without torn rows (a
    warning names those), atomically; returns how many rows ``drop`` selected."""
    path = Path(path)
    if not path.is_file():
        return 0
    fields, rows, torn = read_csv_rows(path)
    kept = [r for r in rows if not drop(r)]
    if torn:
        log.warning(
            "%s: removed %d torn row(s) (a write cut by a kill); the complete rows are kept",
            path,
            torn,
        )
    if torn or len(kept) != len(rows):
        _write_rows(path, fields, kept)
    return len(rows) - len(kept)
