"""Shared fixtures: hermetic runs (tmp cwd, W&B offline, seeded) and composed configs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra

from ncib.config import register

REPO_ROOT = Path(__file__).resolve().parent.parent
CONF_MODULE = "ncib.conf"  # what python -m ncib.run reads (pkg://ncib.conf)
register()
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
