"""A crash-test hook, kept apart from the modules it is called in.

The kill tests (tests/rundir/test_resume.py, tests/test_planted_bugs.py) set ``NCIB_FAULT`` to stop a
real run at a chosen point, as a preempted job is stopped; without it nothing happens.
"""

from __future__ import annotations

import os
import signal

__all__ = ["fault_point"]


def fault_point(name: str, epoch: int) -> None:
    """With ``NCIB_FAULT=<name>:<epoch>`` in the environment the process kills itself
    (SIGKILL) here, as a preempted job would be killed. Nothing happens otherwise."""
    if os.environ.get("NCIB_FAULT") == f"{name}:{int(epoch)}":
        os.kill(os.getpid(), signal.SIGKILL)
