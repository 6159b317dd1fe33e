"""Jobs as SLURM runs them, on this machine: submitit's local launcher starts the tasks the way
SLURM does (``hydra/launcher=local``). Slow: each test runs real multi-process jobs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import torch

from ncib.rundir.records import read_records
from tests.helpers.app import ncib, run_app, start

pytestmark = pytest.mark.slow
COMMON = ["trainer=cpu", "linear_eval.epochs=2", "logger=csv"]


def sweep(*overrides, sweep_dir, cwd, wait=True):
    args = ["-m", "hydra/launcher=local", *COMMON, *overrides, f"hydra.sweep.dir={sweep_dir}"]
    if not wait:
        return start(
            "ncib.run", *args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    proc = run_app(*args, cwd=cwd, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _numbers(record):
    return {k: v for k, v in record.items() if k not in ("seconds", "warnings")}


def test_two_gloo_processes_train_and_analyse_each_sample_once(tmp_path):
    sweep(
        "cluster.gpus_per_node=2",
        "trainer.max_epochs=2",
        "analysis.epochs=[1,2]",
        sweep_dir=tmp_path / "sweep",
        cwd=tmp_path,
    )
    run_dir = tmp_path / "sweep" / "0_digits_seeds0-1"
    log = (run_dir / "run.log").read_text()
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in log and "Starting with 2 processes" in log
    records = read_records(run_dir / "analysis.jsonl")
    assert [r["epoch"] for r in records] == [1, 2]
    assert all(r["num_train"] == 1437 and r["num_test"] == 360 for r in records)
    # the features the two processes gathered are the features one process extracts from the
    # same weights: every row once, in order (a duplicated or missing row changes every value)
    again = ncib("ncib.analyse", run_dir, "--name", "one", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    for a, b in zip(records, read_records(run_dir / "analysis-one.jsonl"), strict=True):
        for group in ("identifiability", "gib", "simplex_etf"):
            for key, value in a[group]["scalars"].items():
                assert b[group]["scalars"][key] == pytest.approx(value, rel=1e-5, abs=1e-6), (
                    a["epoch"],
                    key,
                )


def test_a_preempted_job_requeues_itself_and_resumes_in_its_run_directory(tmp_path):
    args = ["trainer.max_epochs=6", "analysis.epochs=[2,4,6]"]
    reference = run_app(*COMMON, *args, f"hydra.run.dir={tmp_path / 'reference'}", cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr[-3000:]
    run_dir = tmp_path / "sweep" / "0_digits_seeds0-1"
    job = sweep(*args, sweep_dir=tmp_path / "sweep", cwd=tmp_path, wait=False)
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            ckpt = run_dir / "checkpoints" / "last.ckpt"
            if ckpt.exists() and torch.load(ckpt, weights_only=True, mmap=True)["epoch"] >= 1:
                break
            time.sleep(0.3)
        pid = json.loads((run_dir / ".ncib" / "process.json").read_text())["pid"]
        os.kill(pid, signal.SIGUSR2)  # what SLURM sends before the time limit or at preemption
        assert job.wait(900) == 0
    finally:
        job.kill()
    log = (run_dir / "run.log").read_text()
    assert "this job is preempted" in log and "Requeued job" in log and "resuming from" in log
    assert (
        json.loads((run_dir / ".ncib" / "process.json").read_text())["pid"] != pid
    )  # a new process
    resumed = [_numbers(r) for r in read_records(run_dir / "analysis.jsonl")]
    assert resumed == [_numbers(r) for r in read_records(tmp_path / "reference" / "analysis.jsonl")]
    ours = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    theirs = torch.load(tmp_path / "reference" / "checkpoints" / "last.ckpt", weights_only=True)[
        "state_dict"
    ]
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
