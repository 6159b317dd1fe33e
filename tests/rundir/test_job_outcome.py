"""How a job ended, recorded by ncib itself (ncib/rundir/outcome.py), for the sweep report."""

from __future__ import annotations

import json

import pytest

from ncib.rundir.outcome import OUTCOME_FILE, read_outcome, recording_outcome
from tests.helpers.app import run_app


def test_a_job_records_its_failure_completion_or_interruption(tmp_path):
    (tmp_path / ".hydra").mkdir()
    with pytest.raises(ValueError), recording_outcome(tmp_path):
        raise ValueError("seed_pair must hold two different integers")
    outcome = read_outcome(tmp_path)
    assert outcome["status"] == "failed"
    assert outcome["error"] == "ValueError: seed_pair must hold two different integers"
    with pytest.raises(SystemExit), recording_outcome(tmp_path):
        raise SystemExit  # what Lightning raises on SIGTERM
    assert read_outcome(tmp_path)["status"] == "interrupted"
    with recording_outcome(tmp_path):
        assert read_outcome(tmp_path) is None  # a new start clears the last one's record
    assert read_outcome(tmp_path)["status"] == "completed"


def test_only_rank_zero_records_a_completion_and_any_rank_a_failure(tmp_path):
    (tmp_path / ".hydra").mkdir()
    with recording_outcome(tmp_path, rank_zero=False):
        pass
    assert read_outcome(tmp_path) is None
    with pytest.raises(RuntimeError), recording_outcome(tmp_path, rank_zero=False):
        raise RuntimeError("NCCL timeout")
    assert read_outcome(tmp_path)["error"] == "RuntimeError: NCCL timeout"


@pytest.mark.parametrize(
    "content", ["", "{not json", "[1, 2]", json.dumps({"status": "exploded"}), "\x80\x04K."]
)
def test_a_foreign_outcome_file_is_ignored_with_a_warning_naming_it(tmp_path, content, caplog):
    (tmp_path / ".hydra").mkdir()
    (tmp_path / OUTCOME_FILE).write_text(content, errors="surrogateescape")
    assert read_outcome(tmp_path) is None
    assert str(tmp_path / OUTCOME_FILE) in caplog.text


def test_python_m_ncib_run_records_a_failed_start(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_app("seed_pair=[4,4]", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode != 0
    outcome = read_outcome(run_dir)
    assert outcome["status"] == "failed" and outcome["error"].startswith("ConfigError: seed_pair")
