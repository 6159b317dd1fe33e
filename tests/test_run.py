"""The app as a user runs it: ``python -m ncib.run ...`` in a fresh directory."""

from __future__ import annotations

import csv
import json
import math
import time

import pytest
import torch
from omegaconf import OmegaConf

from ncib.engine.plan import DEFAULT_GROUPS
from ncib.linear_eval import main as linear_eval_main
from ncib.metrics import keys
from ncib.report.__main__ import main as report_main
from ncib.rundir.records import read_records
from tests.helpers.app import in_process, ncib, run_app


def test_a_finished_digits_run_leaves_a_complete_run_directory(digits_run):
    run_dir = digits_run.path
    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    assert cfg.dataset.name == "digits" and list(cfg.seed_pair) == [0, 1]

    with open(run_dir / "csv" / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/loss/m0")]
    assert [int(r["epoch"]) for r in rows] == list(range(digits_run.max_epochs))
    for name in ("train/loss/m0", "train/loss/m1"):
        assert float(rows[1][name]) < float(rows[0][name]), name
        assert float(rows[-1][name]) < float(rows[1][name]), name

    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    # every epoch, ceil(1437 / 256) = 6 steps each (the last one partial)
    assert ckpt["global_step"] == digits_run.max_epochs * math.ceil(1437 / 256)
    assert any(k.startswith("members.1.encoder") for k in ckpt["state_dict"])

    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and any(offline[0].glob("*.wandb"))

    # analysis at the listed epochs that were reached (digits: [1, 2, 5, ...])
    records = read_records(run_dir / "analysis.jsonl")
    assert [r["epoch"] for r in records] == list(digits_run.analysed)
    for r in records:
        for group in DEFAULT_GROUPS:
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


def test_the_linear_evaluation_again_and_the_report_again_reproduce_the_runs(digits_run, tmp_path):
    run_dir = digits_run.copy_to(tmp_path / "run")
    evaluation = json.loads((run_dir / "linear_eval.json").read_text())
    # the report names its run directory: this copy's
    report = (run_dir / "report.md").read_text().replace(str(digits_run.path), str(run_dir))
    # the linear evaluation again, standalone, from the last checkpoint: it reproduces Table 1,
    # and never overwrites it silently
    again = in_process(linear_eval_main, run_dir)  # refused before any work
    assert again.returncode != 0 and "linear_eval.json exists" in again.stderr
    again = ncib("ncib.linear_eval", run_dir, "--output", "again.json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((run_dir / "again.json").read_text()) == evaluation

    # the report is made from the records alone
    (run_dir / "report.md").unlink()
    regen = in_process(report_main, run_dir)
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
