"""``python -m ncib.analyse``: what it refuses, quickly and clearly (the full re-analysis of a
trained run is tested on the default run, tests/test_default_run.py)."""

from __future__ import annotations

import time

import pytest

from tests.helpers.app import ncib


def analyse(*args, cwd):
    start = time.monotonic()
    proc = ncib("ncib.analyse", *args, cwd=cwd)
    return proc, time.monotonic() - start


def test_a_missing_run_directory_fails_in_seconds_naming_it(tmp_path):
    proc, elapsed = analyse(tmp_path / "nowhere", cwd=tmp_path)
    assert (
        proc.returncode == 2
        and str(tmp_path / "nowhere") in proc.stderr
        and "does not exist" in proc.stderr
    )
    assert elapsed < 15


def test_a_foreign_directory_fails_naming_what_was_expected(tmp_path):
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("hi")
    proc, elapsed = analyse(tmp_path / "foreign", cwd=tmp_path)
    assert proc.returncode == 2 and ".hydra/config.yaml" in proc.stderr and "foreign" in proc.stderr
    assert elapsed < 15


@pytest.fixture
def run_dir_without_checkpoints(tmp_path):
    from omegaconf import OmegaConf

    from tests.conftest import compose_config

    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    cfg = compose_config([], output_dir=run)
    (run / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    return run


def test_a_run_without_analysis_checkpoints_says_so(run_dir_without_checkpoints, tmp_path):
    proc, _ = analyse(run_dir_without_checkpoints, cwd=tmp_path)
    assert proc.returncode == 2 and "checkpoints/analysis" in proc.stderr


def test_an_override_of_a_key_the_run_does_not_have_is_an_error(
    run_dir_without_checkpoints, tmp_path
):
    proc, _ = analyse(run_dir_without_checkpoints, "analysis.kk=5", cwd=tmp_path)
    assert proc.returncode == 2 and "analysis.kk" in proc.stderr.replace("'", "")
