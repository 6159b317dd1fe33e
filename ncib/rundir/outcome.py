"""How a job of ``python -m ncib.run`` ended, recorded by ncib itself for the sweep report.

Hydra catches the exception of a job in a sweep and hands it to the launcher, so a run
directory alone cannot tell a job that raised from one that was killed. Each start of
``python -m ncib.run`` therefore records its own end in ``<run_dir>/.hydra/ncib_outcome.json``
(beside Hydra's files of the same job; written atomically)::

    {"status": "failed", "error": "ConfigError: seed_pair must ...", "time": "2026-…"}

``status`` is ``completed``, ``failed`` (an exception) or ``interrupted`` (SIGTERM, Ctrl-C).
A job killed outright (SIGKILL, out of memory) records nothing: the sweep report then judges it
by the files it left. A new start removes the previous start's record. This replaces reading
submitit's result pickles, which would run code from a sweep folder (nothing is unpickled;
docs/design.md §9).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ncib.rundir.records import atomic_write_bytes

__all__ = ["OUTCOME_FILE", "read_outcome", "recording_outcome"]

OUTCOME_FILE = ".hydra/ncib_outcome.json"
COMPLETED, FAILED, INTERRUPTED = "completed", "failed", "interrupted"


def _write(run_dir: Path, status: str, error: str = "") -> None:

    entry = {"status": status, "error": error, "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    atomic_write_bytes(run_dir / OUTCOME_FILE, (json.dumps(entry) + "\n").encode())


@contextmanager
def recording_outcome(run_dir: str | Path, rank_zero: bool = True) -> Iterator[None]:
    """Record how the enclosed job ends in ``run_dir`` (see the module docstring); the
    exception, if any, goes on. Only rank zero clears the last record and records a completion;
    any rank records its failure."""
    run_dir = Path(run_dir)
    if rank_zero:
        (run_dir / OUTCOME_FILE).unlink(missing_ok=True)
    try:
        yield
    except Exception as err:
        _write(run_dir, FAILED, f"{type(err).__name__}: {err}")
        raise
    except BaseException as err:  # SIGTERM (Lightning raises SystemExit), Ctrl-C
        _write(run_dir, INTERRUPTED, type(err).__name__)
        raise
    if rank_zero:
        _write(run_dir, COMPLETED)


def read_outcome(run_dir: str | Path) -> dict | None:
    """The recorded end of the last start in ``run_dir``: ``{"status", "error", "time"}``, or
    None when there is none (never started, still running, killed outright) or the file is not
    such a record (then a warning names it)."""
    import logging

    path = Path(run_dir) / OUTCOME_FILE
    if not path.is_file():
        return None
    try:
        entry = json.loads(path.read_text())
    except (ValueError, OSError) as err:
        logging.getLogger("ncib.report").warning("ignoring %s: not readable JSON (%s)", path, err)
        return None
    if not isinstance(entry, dict) or entry.get("status") not in (COMPLETED, FAILED, INTERRUPTED):
        logging.getLogger("ncib.report").warning("ignoring %s: not a job outcome", path)
        return None
    return {
        "status": entry["status"],
        "error": str(entry.get("error", "")),
        "time": entry.get("time"),
    }
