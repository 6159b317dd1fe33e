"""The README's default run (digits), as a new user runs it, and the science it must show."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from ncib.callbacks import GIBCallback, IdentifiabilityCallback, SimplexETFCallback
from ncib.records import read_records

MEMBERS = ("m0", "m1")


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("default_run")
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "ncib.run", f"hydra.run.dir={root / 'run'}"],
        cwd=root, capture_output=True, text=True, timeout=1200,
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
        for cls in (IdentifiabilityCallback, GIBCallback, SimplexETFCallback):
            assert set(cls.documented_keys()) <= set(r[cls.name]["scalars"]), (r["epoch"], cls.name)
    assert (default_run / "report.md").exists() and (default_run / "linear_probe.json").exists()
    assert len(list((default_run / "figures").glob("*.png"))) == 4


def test_default_run_shows_the_science(default_run):
    records = read_records(default_run / "analysis.jsonl")
    first, last = records[0]["simplex_etf"]["scalars"], records[-1]["simplex_etf"]["scalars"]
    target = -1.0 / (records[-1]["num_classes"] - 1)
    for m in MEMBERS:
        # the K-dimensional IB representation keeps (nearly) all the raw probe's accuracy
        assert last[f"probe/test_acc/tk/{m}"] >= 0.95 * last[f"probe/test_acc/raw/{m}"]
        # class means inside T_K form a simplex: mean cosine close to -1/(K-1)
        assert abs(last[f"etf/cos_mean/tk/{m}"] - target) <= 0.02
        # on the full features the class means become more equinormed and more equiangular
        assert last[f"etf/equinorm/full/{m}"] < first[f"etf/equinorm/full/{m}"]
        assert last[f"etf/angle_std_deg/full/{m}"] < first[f"etf/angle_std_deg/full/{m}"]
