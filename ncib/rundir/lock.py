"""One process per run directory (docs/design.md §4, "One process per run directory").

Every command that writes into a run directory — ``python -m ncib.run`` (rank zero),
``ncib.analyse``, ``ncib.linear_eval`` — holds ``<run_dir>/.ncib/lock`` for its lifetime with
``fcntl.flock``. The kernel releases the lock when its holder dies, SIGKILL included, so a
requeued job takes a killed job's lock over by itself; a second live process is refused at once
with :class:`RunDirBusyError`, which names the holder from the JSON the holder wrote into the
file (host, PID, since when, which command). Where the file system refuses ``flock`` (some NFS
mounts) a warning says so and the command goes on unlocked.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ncib.rundir import RunDirError
from ncib.rundir.records import STATE_DIR

__all__ = ["LOCK_FILE", "RunDirBusyError", "holder_of", "holding_run_dir"]
log = logging.getLogger("ncib.lock")

LOCK_FILE = f"{STATE_DIR}/lock"

try:
    import fcntl
except ImportError:  # Windows: no flock
    fcntl = None


class RunDirBusyError(RunDirError):
    """Another live process holds the run directory."""


def holder_of(run_dir: str | Path) -> dict | None:
    """What the lock file says about its last holder (``host``, ``pid``, ``since``,
    ``command``), or None. It says nothing about whether that holder still runs."""
    try:
        entry = json.loads((Path(run_dir) / LOCK_FILE).read_text() or "null")
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) else None


def _describe(run_dir: Path, holder: dict | None) -> str:
    if not holder:
        return f"another process holds {run_dir / LOCK_FILE}"
    return (
        f"process {holder.get('pid')} on {holder.get('host')} has held it since "
        f"{holder.get('since')} ({holder.get('command')})"
    )


@contextmanager
def holding_run_dir(run_dir: str | Path, command: str | None = None) -> Iterator[None]:
    """Hold ``run_dir`` for the enclosed work, or raise :class:`RunDirBusyError` naming the
    process that holds it. ``command`` says what this process does (shown to the next one)."""
    run_dir = Path(run_dir)
    if fcntl is None:
        log.warning("no fcntl on this system: %s is not locked against a second process", run_dir)
        yield
        return
    path = run_dir / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                what = _describe(run_dir, holder_of(run_dir))
                training = "python -m ncib.run" in what
                raise RunDirBusyError(
                    f"{run_dir} is in use: {what}"
                    + (" — the run is still training" if training else "")
                    + ". Wait for it to end, stop that process, or use another directory"
                    " (hydra.run.dir=...); a killed holder's lock is released by itself"
                ) from None
            log.warning(
                "%s cannot be locked here (%s): a second process in this run directory would "
                "not be stopped",
                path,
                err,
            )
            yield
            return
        entry = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": command or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300],
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(entry) + "\n").encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # released: nothing left to name
    finally:
        os.close(fd)  # closing the descriptor releases the flock
