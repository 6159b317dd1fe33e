"""Python processes started by tests run the code under test."""

from __future__ import annotations

import os
from typing import Any

import ncib

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(ncib.__file__)))


def ncib_process(**env: str) -> dict[str, Any]:
    """Keyword arguments for ``subprocess.run`` of a Python child that imports ncib: the folder of
    the ``ncib`` this process imported first on ``PYTHONPATH`` (so the child runs the same code
    whether or not, and wherever, ncib is installed) and ``env`` added to ``os.environ``.

    Under mutmut the child runs the mutated copy, whose functions read mutmut's configuration
    from the working directory: the child starts in mutmut's directory (``tests/conftest.py``).
    """
    from tests.conftest import MUTMUT_HOME

    child = dict(os.environ, **env)
    child["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_ROOT, child.get("PYTHONPATH")]))
    return {"env": child, "cwd": MUTMUT_HOME}
