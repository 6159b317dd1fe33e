"""The app in a child process, as a user runs it: ``python -m ncib.<module> <args>``.

Every test that starts a command of the app goes through here: the child runs the code under
test (``tests/helpers/processes.py::ncib_process``, also under mutmut), W&B is offline and
silent, the output is captured, and one default timeout bounds a run that hangs.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tests.helpers.processes import ncib_process

TIMEOUT = 900  # seconds: the longest full run a default test makes, with room for a busy machine


class Finished(subprocess.CompletedProcess):
    """A finished command; ``output`` is its stdout and stderr together (the run's log lines
    go to stdout, its errors and warnings to stderr)."""

    @property
    def output(self):
        return self.stdout + self.stderr


def command(module: str, *args: Any) -> list[str]:
    """The command line of ``python -m module args`` in this interpreter."""
    return [sys.executable, "-m", module, *map(str, args)]


def child(cwd: str | Path, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``env`` and ``cwd`` keyword arguments of ``subprocess`` for a child that runs the code
    under test: ``env`` added to this process's environment, W&B offline and silent unless
    ``env`` says otherwise. The child starts in ``cwd`` (under mutmut, in mutmut's directory,
    which its mutated code reads: give such a child absolute paths)."""
    kwargs = ncib_process(**{"WANDB_MODE": "offline", "WANDB_SILENT": "true", **(env or {})})
    # not this process's W&B service (set once a test here called wandb.init): a child killed
    # mid-run would leave its run id held there, as ncib.run itself guards against
    kwargs["env"].pop("WANDB_SERVICE", None)
    if kwargs["cwd"] is None:
        kwargs["cwd"] = str(cwd)
    return kwargs


def ncib(
    module: str,
    *args: Any,
    cwd: str | Path,
    timeout: float = TIMEOUT,
    env: Mapping[str, str] | None = None,
    check: bool = False,
    text: bool = True,
) -> Finished:
    """Run ``python -m module args`` in ``cwd`` and wait for it: its output captured (decoded
    unless ``text=False``), ``check=True`` raises on a non-zero exit."""
    proc = subprocess.run(
        command(module, *args),
        capture_output=True,
        text=text,
        timeout=timeout,
        check=check,
        **child(cwd, env),
    )
    return Finished(proc.args, proc.returncode, proc.stdout, proc.stderr)


def run_app(*overrides: Any, cwd: str | Path, **kwargs: Any) -> Finished:
    """``python -m ncib.run overrides`` (a training run, or whatever the overrides make it);
    the keyword arguments of :func:`ncib`."""
    return ncib("ncib.run", *overrides, cwd=cwd, **kwargs)


def start(
    module: str,
    *args: Any,
    cwd: str | Path,
    env: Mapping[str, str] | None = None,
    **popen: Any,
) -> subprocess.Popen:
    """Start ``python -m module args`` in ``cwd`` without waiting (``popen``: the output
    streams and the like of ``subprocess.Popen``)."""
    return subprocess.Popen(command(module, *args), **child(cwd, env), **popen)


def in_process(main: Callable[[list[str]], None], *args: Any) -> Finished:
    """``main(args)`` of a command, in this process, as its ``python -m`` would run it but for
    the interpreter's start-up: its exit status (``SystemExit``'s code, 0 when it returns) and
    what it printed. For the commands' quick refusals (argparse errors, exit 2); a command that
    trains runs in its own process (:func:`ncib`)."""
    argv = list(map(str, args))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    return Finished(argv, code, out.getvalue(), err.getvalue())
