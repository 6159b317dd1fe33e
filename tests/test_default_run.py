"""The README's default run (digits), as a new user runs it, and the science it must show."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from ncib.engine.plan import ANALYSIS_GROUPS
from ncib.metrics import MEMBERS, keys
from ncib.rundir.records import read_records


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("default_run")
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "ncib.run", f"hydra.run.dir={root / 'run'}"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=1200,
        env={**__import__("os").environ, "WANDB_MODE": "offline"},
    )
    elapsed = time.monotonic() - start
    print(f"\ndefault digits run: {elapsed:.0f} s wall")
    assert proc.returncode == 0, proc.stderr[-4000:]
    return root / "run"


def test_default_run_analyses_at_least_six_epochs_with_every_documented_key(default_run):
    records = read_records(default_run / "analysis.jsonl")
    assert len(records) >= 6
    for r in records:
        for group in ANALYSIS_GROUPS:
            assert set(r[group]["scalars"]) == set(keys(group)), (r["epoch"], group)
    assert (default_run / "report.md").exists() and (default_run / "linear_eval.json").exists()
    assert len(list((default_run / "figures").glob("*.png"))) == 5


def test_default_run_shows_the_science(default_run):
    records = read_records(default_run / "analysis.jsonl")
    first, last = records[0]["simplex_etf"]["scalars"], records[-1]["simplex_etf"]["scalars"]
    target = -1.0 / (records[-1]["num_classes"] - 1)
    for m in MEMBERS:
        # the K-dimensional IB representation keeps (nearly) all the raw probe's accuracy
        assert last[f"probe/test_acc/tk/{m}"] >= 0.95 * last[f"probe/test_acc/raw/{m}"]
        # class means inside T_K form a simplex: mean cosine close to -1/(K-1)
        assert abs(last[f"etf/cos_mean/tk/{m}"] - target) <= 0.02
        # on the raw features the class means become more equinormed and more equiangular
        assert last[f"etf/equinorm/raw/{m}"] < first[f"etf/equinorm/raw/{m}"]
        assert last[f"etf/angle_std_deg/raw/{m}"] < first[f"etf/angle_std_deg/raw/{m}"]


def _numbers(node, path=""):
    """Every number of a record (by path), skipping the timing."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k != "seconds":
                yield from _numbers(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _numbers(v, f"{path}[{i}]")
    elif isinstance(node, int | float) and not isinstance(node, bool):
        yield path, float(node)


def test_reanalysis_of_the_saved_checkpoints_reproduces_the_training_records(default_run):
    proc = subprocess.run(
        [sys.executable, "-m", "ncib.analyse", str(default_run), "--name", "same"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    trained = read_records(default_run / "analysis.jsonl")
    again = read_records(default_run / "analysis-same.jsonl")
    assert [r["epoch"] for r in again] == [r["epoch"] for r in trained]
    for a, b in zip(trained, again, strict=True):
        left, right = dict(_numbers(a)), dict(_numbers(b))
        assert left.keys() == right.keys()
        for path, value in left.items():
            assert abs(value - right[path]) <= 1e-6 * max(1.0, abs(value)), (
                a["epoch"],
                path,
                value,
                right[path],
            )
    assert (default_run / "report-same.md").exists()


def test_reanalysis_with_another_k_writes_a_second_records_file_and_report(default_run):
    before = (default_run / "analysis.jsonl").read_bytes()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ncib.analyse",
            str(default_run),
            "analysis.k=5",
            "--epochs",
            "1",
            "60",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = sorted(default_run.glob("analysis-[0-9]*.jsonl"))
    assert len(records) == 1
    k5 = read_records(records[0])
    assert [r["epoch"] for r in k5] == [1, 60] and all(r["k"] == 5 for r in k5)
    assert len(k5[-1]["gib"]["feature_scaling/m0"]) == 5
    report = default_run / records[0].name.replace("analysis", "report").replace(".jsonl", ".md")
    assert "analysis.k=5" in report.read_text()
    assert (default_run / "analysis.jsonl").read_bytes() == before  # never overwritten
