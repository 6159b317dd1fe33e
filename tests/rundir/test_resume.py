"""Runs that survive: kill a real run (SIGKILL), re-run the same command in the same run
directory, and get what an uninterrupted run gets."""

from __future__ import annotations

import csv
import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from ncib.rundir.records import read_records
from tests.helpers.app import run_app, start

COMMAND = [
    "trainer.max_epochs=6",
    "analysis.epochs=[0,2,4,6]",
    # the intervals are a function of the features and their own seed, whatever the resumes
    "analysis.intervals=null",
    "linear_eval.epochs=3",
    "dataset.datamodule.batch_size=128",
]
MAX_EPOCHS, ANALYSED = 6, [0, 2, 4, 6]  # COMMAND's


def run(run_dir, *extra, env=None, cwd):
    return run_app(*COMMAND, *extra, f"hydra.run.dir={run_dir}", cwd=cwd, env=env)


def numbers(record):
    return {k: v for k, v in record.items() if k != "seconds"}


def outcome(run_dir):
    records = [numbers(r) for r in read_records(run_dir / "analysis.jsonl")]
    weights = torch.load(
        run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True
    )["state_dict"]
    table1 = json.loads((run_dir / "linear_eval.json").read_text())
    with open(run_dir / "csv" / "metrics.csv") as f:
        rows = [{k: v for k, v in r.items() if v} for r in csv.DictReader(f)]
    ids = {p.name.rsplit("-", 1)[-1] for p in (run_dir / "wandb").glob("offline-run-*")}
    return records, weights, table1, rows, ids


@pytest.fixture(scope="module")
def uninterrupted_run(tmp_path_factory):
    """``COMMAND`` run to its end without a stop: read it, never write into it."""
    root = tmp_path_factory.mktemp("uninterrupted")
    proc = run(root / "run", cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root / "run"


@pytest.fixture(scope="module")
def uninterrupted(uninterrupted_run):
    return outcome(uninterrupted_run)


def assert_same_run(resumed, reference):
    records, weights, table1, rows, ids = resumed
    ref_records, ref_weights, ref_table1, ref_rows, _ = reference
    assert [r["epoch"] for r in records] == ANALYSED
    assert records == ref_records  # every value, bit for bit (deterministic CPU)
    assert weights.keys() == ref_weights.keys()
    for name in weights:
        assert torch.equal(weights[name], ref_weights[name]), name
    assert table1 == ref_table1
    assert rows == ref_rows  # one continuous metrics.csv
    assert len(ids) == 1  # one W&B run


@pytest.fixture(scope="module")
def killed_twice(tmp_path_factory):
    """One run killed twice and resumed to its end, shared by the kill tests: SIGKILL right
    after epoch 4's analysis record (``NCIB_FAULT``), then the same command again, killed by the
    test half way through what is left, then the same command once more."""
    root = tmp_path_factory.mktemp("killed_twice")
    run_dir = root / "run"
    killed = run(run_dir, env={"NCIB_FAULT": "after_record:4"}, cwd=root)
    before = read_records(run_dir / "analysis.jsonl")
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    epoch_at_kill = torch.load(ckpt, map_location="cpu", weights_only=True)["epoch"]
    proc = start(
        "ncib.run",
        *COMMAND,
        f"hydra.run.dir={run_dir}",
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # half way: the resumed process has trained and checkpointed an epoch of its own
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and proc.poll() is None:
            if torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)["epoch"] > (
                epoch_at_kill
            ):
                break
            time.sleep(0.2)
        alive = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        proc.kill()
    resumed = run(run_dir, cwd=root)
    return {
        "killed": killed,
        "before": before,
        "alive": alive,
        "halfway": proc.returncode,
        "resumed": resumed,
        "run_dir": run_dir,
    }


def test_a_kill_right_after_an_analysis_record_resumes_without_duplicates(
    uninterrupted, killed_twice
):
    run_dir = killed_twice["run_dir"]
    assert killed_twice["killed"].returncode == -signal.SIGKILL
    before = killed_twice["before"]
    assert [r["epoch"] for r in before] == [0, 2, 4]  # epoch 4's checkpoint was never written
    resumed = killed_twice["resumed"]
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_run(outcome(run_dir), uninterrupted)
    log = (run_dir / "run.log").read_text()
    assert "resuming from" in log and "dropped 1 analysis record" in log
    assert "resumed" in (run_dir / "report.md").read_text().lower()


def test_a_kill_half_way_resumes_to_the_same_result(uninterrupted, killed_twice):
    assert killed_twice["alive"], "the run finished before it could be killed"
    assert killed_twice["halfway"] == -signal.SIGKILL
    resumed = killed_twice["resumed"]
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_run(outcome(killed_twice["run_dir"]), uninterrupted)


def test_resume_with_another_config_names_the_keys_and_changes_nothing(uninterrupted_run, tmp_path):
    # a finished run of its own: the kill tests' uninterrupted one (a short linear evaluation)
    run_dir = Path(shutil.copytree(uninterrupted_run, tmp_path / "run", symlinks=True))
    same = [*COMMAND, f"hydra.run.dir={run_dir}"]
    records = (run_dir / "analysis.jsonl").read_bytes()
    changed = run_app(*same, "model.optimizer.lr=0.3", cwd=tmp_path)
    assert changed.returncode != 0 and "model.optimizer.lr: 0.1 → 0.3" in changed.stderr
    assert (run_dir / "analysis.jsonl").read_bytes() == records
    assert "model.optimizer.lr" not in (run_dir / ".hydra" / "overrides.yaml").read_text()
    fresh = run_app(*same, "resume=false", cwd=tmp_path)
    assert (
        fresh.returncode != 0 and "resume=false" in fresh.stderr and "already holds" in fresh.stderr
    )
    assert "resume=false" not in (run_dir / ".hydra" / "overrides.yaml").read_text()
    longer = [o for o in same if not o.startswith("trainer.max_epochs=")]
    longer = run_app(*longer, f"trainer.max_epochs={MAX_EPOCHS + 1}", cwd=tmp_path)
    assert longer.returncode == 0, longer.stderr[-3000:]  # max_epochs may change on resume
    analysed = [r["epoch"] for r in read_records(run_dir / "analysis.jsonl")]
    assert analysed == ANALYSED  # one epoch more, not one of analysis.epochs
