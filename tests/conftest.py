"""Shared fixtures: hermetic runs (tmp cwd, W&B offline, seeded), composed configs and the
finished digits run that every test reading a finished run shares."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from ncib.config import register

REPO_ROOT = Path(__file__).resolve().parent.parent
CONF_MODULE = "ncib.conf"  # what python -m ncib.run reads (pkg://ncib.conf)
register()
if os.environ.get("PYTEST_XDIST_WORKER"):
    # a pytest-xdist worker (-n): the workers share the cores already, so each worker and every
    # command it starts computes on one thread (two each would only contend for the cores)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
MUTMUT_HOME: str | None = None  # where mutmut runs, when it does (tests/helpers/processes.py)
# under mutmut (experiments/mutation.sh), whose trampolines add stack frames to every call
UNDER_MUTMUT = "mutmut.__main__" in sys.modules

if UNDER_MUTMUT:
    # mutmut reads its configuration from the working directory on first use, in this process
    # and in every process torch.multiprocessing spawns (which re-runs mutmut's main module in
    # the parent's working directory); the tests below change directory, so read it now, and
    # spawn from where mutmut started
    import torch.multiprocessing  # noqa: F401  (loads torch.multiprocessing.spawn)
    from mutmut.configuration import config as _mutmut_config

    _spawn = sys.modules["torch.multiprocessing.spawn"]  # the module (the name is a function)

    _mutmut_config()
    MUTMUT_HOME, _start_processes = os.getcwd(), _spawn.start_processes

    def _start_processes_from_mutmut_home(*args, **kwargs):
        here = os.getcwd()
        os.chdir(MUTMUT_HOME)
        try:
            return _start_processes(*args, **kwargs)
        finally:
            os.chdir(here)

    _spawn.start_processes = _start_processes_from_mutmut_home


# files that run the app end to end, longest first (their durations under -n 2): collected
# first, so that pytest-xdist (--dist loadfile) starts them first and no worker begins one of
# them while the others are finishing; the other files follow in their usual order
FILES_FIRST = (
    "rundir/test_resume.py",
    "tracking/test_wandb.py",  # trains the shared digits run while the resume tests run
    "test_run_reliability.py",
    "test_transfer.py",
    "test_default_run.py",
    "rundir/test_rundir_lock.py",
    "test_packaging.py",
    "test_run.py",
    "test_untrusted_commands.py",
    "rundir/test_untrusted_files.py",
    "test_validation.py",
)


def pytest_collection_modifyitems(config, items):
    first = {name: i for i, name in enumerate(FILES_FIRST)}
    tests = Path(__file__).parent

    def rank(item) -> int:
        return first.get(item.path.relative_to(tests).as_posix(), len(first))

    items.sort(key=rank)  # stable: each file's tests stay together and in order


@pytest.fixture(autouse=True)
def _hermetic(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("NCIB_DATA_DIR", str(tmp_path / "data"))
    torch.manual_seed(0)
    yield
    GlobalHydra.instance().clear()


def compose_config(overrides=(), output_dir=None, hydra_config=False):
    """The composed run config, as ``python -m ncib.run <overrides>`` would see it."""
    GlobalHydra.instance().clear()
    extra = [] if output_dir is None else [f"paths.output_dir={output_dir}"]
    with initialize_config_module(config_module=CONF_MODULE, version_base="1.3"):
        return compose(
            config_name="config",
            overrides=[*overrides, *extra],
            return_hydra_config=hydra_config,
        )


@pytest.fixture
def cfg_factory(tmp_path):
    return lambda *overrides, **kw: compose_config(overrides, output_dir=tmp_path, **kw)


# -- one finished run of the app, shared by the session ---------------------------------------

# the README's default run (the digits recipe: the linear evaluation, the report, CSV and
# offline W&B logs) over 20 epochs instead of 60, analysed at the recipe's epochs it reaches,
# with a W&B tag of the user's (tests/tracking/test_wandb.py); the README's own command
# (60 epochs) runs in the slow tests (tests/test_default_run.py)
DIGITS_RUN = ("trainer.max_epochs=20", "analysis.epochs=[1,2,5,10,20]", "tags=[paper]")


@dataclass(frozen=True)
class FinishedRun:
    """A finished run of ``python -m ncib.run *overrides``, shared by every test that reads
    it: read it, never write into it (``copy_to`` gives a test its own copy to change)."""

    path: Path  # the run directory
    overrides: tuple[str, ...]  # its command line but hydra.run.dir
    output: bytes  # what the command printed, stdout then stderr, as the bytes it wrote
    max_epochs: int
    analysed: tuple[int, ...]  # the epochs it analysed

    def command(self, run_dir: Path | None = None) -> list[str]:
        """Its overrides, in ``run_dir`` (the same command resumes a copy there)."""
        return [*self.overrides, f"hydra.run.dir={run_dir or self.path}"]

    def copy_to(self, destination: Path) -> Path:
        return Path(shutil.copytree(self.path, destination, symlinks=True))


def _listing(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.lstat().st_size, p.lstat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture(scope="session")
def digits_run(request, tmp_path_factory):
    """The shared digits run (``DIGITS_RUN``), trained once per session (about 45 s on 2 quiet
    cores) when a selected test asks for it — once for all pytest-xdist workers, the first to
    ask training it under a file lock; at the end of the session its directory must be as the
    run left it."""
    from filelock import FileLock

    from tests.helpers.app import run_app

    if hasattr(request.config, "workerinput"):  # an xdist worker: the session's shared folder
        shared = tmp_path_factory.getbasetemp().parent
    else:
        shared = tmp_path_factory.mktemp("shared")
    root = shared / "digits_run"
    run_dir = root / "run"
    done = root / "finished.json"  # the run's exit status; its output beside it
    with FileLock(str(shared / "digits_run.lock")):
        if not done.exists():
            root.mkdir(parents=True, exist_ok=True)
            env = {
                "WANDB_DATA_DIR": str(root / "wandb-data"),
                "WANDB_CACHE_DIR": str(root / "wandb-cache"),
                "NCIB_DATA_DIR": str(root / "data"),
            }
            start = time.monotonic()
            proc = run_app(*DIGITS_RUN, f"hydra.run.dir={run_dir}", cwd=root, env=env, text=False)
            print(f"\nthe shared digits run: {time.monotonic() - start:.0f} s wall")
            (root / "stdout").write_bytes(proc.stdout)
            (root / "stderr").write_bytes(proc.stderr)
            done.write_text(json.dumps({"returncode": proc.returncode}))
    returncode = json.loads(done.read_text())["returncode"]
    stdout, stderr = (root / "stdout").read_bytes(), (root / "stderr").read_bytes()
    assert returncode == 0, stderr.decode(errors="replace")[-4000:]
    cfg = compose_config(DIGITS_RUN, output_dir=run_dir)
    run = FinishedRun(
        path=run_dir,
        overrides=DIGITS_RUN,
        output=stdout + stderr,
        max_epochs=cfg.trainer.max_epochs,
        # the listed epochs it reaches
        analysed=tuple(e for e in cfg.analysis.epochs if e <= cfg.trainer.max_epochs),
    )
    as_left = _listing(run_dir)
    yield run
    changed = sorted(set(as_left.items()) ^ set(_listing(run_dir).items()))
    assert not changed, f"a test wrote into the shared run {run_dir}: {changed[:10]}"
