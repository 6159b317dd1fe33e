"""The app as a user runs it: ``python -m ncib.run ...`` in a fresh directory."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
import time

import pytest
import torch
from omegaconf import OmegaConf

from ncib.engine.plan import ANALYSIS_GROUPS
from ncib.metrics import keys
from ncib.rundir.records import read_records


def run_app(*overrides, cwd, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "ncib.run", *overrides],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_two_epochs_on_digits_leave_a_complete_run_directory(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_app("trainer.max_epochs=2", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]

    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    assert cfg.dataset.name == "digits" and list(cfg.seed_pair) == [0, 1]

    with open(run_dir / "csv" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/loss/m0")]
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    for name in ("train/loss/m0", "train/loss/m1"):
        assert float(rows[1][name]) < float(rows[0][name]), name

    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    # both epochs, ceil(1437 / 256) = 6 steps each (the last one partial)
    assert ckpt["global_step"] == 2 * math.ceil(1437 / 256)
    assert any(k.startswith("members.1.encoder") for k in ckpt["state_dict"])

    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and any(offline[0].glob("*.wandb"))

    # analysis at the listed epochs that were reached (digits: [1, 2, 5, ...])
    records = read_records(run_dir / "analysis.jsonl")
    assert [r["epoch"] for r in records] == [1, 2]
    for r in records:
        for group in ANALYSIS_GROUPS:
            assert set(r[group]["scalars"]) == set(keys(group)), group
    evaluation = json.loads((run_dir / "linear_eval.json").read_text())
    assert (
        0.5 < evaluation["test_acc/m0"] <= 1
        and evaluation["both_correct"] <= evaluation["test_acc/m1"]
    )
    report = (run_dir / "report.md").read_text()
    assert "Table 1" in report and "Table 2" in report
    assert len(list((run_dir / "figures").glob("*.png"))) == 5

    # the report's tables and figures went to the (offline) W&B run too
    media = offline[0] / "files" / "media"
    assert len(list((media / "images" / "report").glob("*.png"))) == 5
    assert {p.name.split("_")[0] for p in (media / "table" / "report").glob("*.table.json")} >= {
        "table1",
        "table2",
    }

    # the linear evaluation again, standalone, from the last checkpoint: it reproduces Table 1,
    # and never overwrites it silently
    again = subprocess.run(
        [sys.executable, "-m", "ncib.linear_eval", str(run_dir)], capture_output=True, text=True
    )
    assert again.returncode != 0 and "linear_eval.json exists" in again.stderr
    again = subprocess.run(
        [sys.executable, "-m", "ncib.linear_eval", str(run_dir), "--output", "again.json"],
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((run_dir / "again.json").read_text()) == evaluation

    # the report is made from the records alone
    (run_dir / "report.md").unlink()
    regen = subprocess.run(
        [sys.executable, "-m", "ncib.report", str(run_dir)], capture_output=True, text=True
    )
    assert regen.returncode == 0, regen.stderr
    assert (run_dir / "report.md").read_text() == report


@pytest.mark.parametrize("value", ["[3,3]", "[1]", "[0,1,2]", "[a,b]", "7"])
def test_bad_seed_pair_fails_fast_naming_the_key(tmp_path, value):
    start = time.monotonic()
    proc = run_app(f"seed_pair={value}", cwd=tmp_path)
    elapsed = time.monotonic() - start
    assert proc.returncode != 0
    assert "seed_pair" in proc.stderr
    assert elapsed < 10, f"took {elapsed:.1f}s"
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").rglob("*.ckpt"))


def test_equal_seeds_message_says_what_is_allowed(tmp_path):
    proc = run_app("seed_pair=[3,3]", cwd=tmp_path)
    assert "two different integers" in proc.stderr and "[3, 3]" in proc.stderr


def test_unknown_dataset_lists_the_options(tmp_path):
    proc = run_app("dataset=cifar9", cwd=tmp_path)
    assert proc.returncode != 0
    assert "Available options in 'dataset'" in proc.stderr and "digits" in proc.stderr


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_trains_and_analyses_each_sample_once(tmp_path):
    run_dir = tmp_path / "run"
    proc = run_app(
        "cluster.gpus_per_node=2",  # two CPU processes, gloo DDP (conf/trainer/cpu.yaml)
        "trainer.max_epochs=3",
        "logger=csv",
        "linear_eval.epochs=5",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(run_dir / "csv" / "metrics.csv") as f:
        losses = [float(r["train/loss/m0"]) for r in csv.DictReader(f) if r.get("train/loss/m0")]
    assert losses[-1] < losses[0] - 0.5  # the global-batch loss really trains
    records = read_records(run_dir / "analysis.jsonl")
    assert [r["epoch"] for r in records] == [1, 2]
    assert all(r["num_train"] == 1437 and r["num_test"] == 360 for r in records)
