"""Environments for tests that start Python processes."""

from __future__ import annotations

import os

import ncib

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(ncib.__file__)))


def ncib_env(**extra: str) -> dict[str, str]:
    """``os.environ`` plus ``extra``, with the folder of the ``ncib`` this process imported first
    on ``PYTHONPATH``: a child process then runs the same code (under mutmut, the mutated copy)
    whether or not, and wherever, ncib is installed."""
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_ROOT, env.get("PYTHONPATH")]))
    return env
