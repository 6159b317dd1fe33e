"""The README's default run (digits), as a new user runs it, and the science it must show.

The default tests read the session's shared run (``digits_run`` in tests/conftest.py: the
README's recipe over 20 of its 60 epochs); the tests that write into it (the re-analyses) work
on a copy. The README's command itself, all 60 epochs, runs in the slow tests."""

from __future__ import annotations

import pytest

from ncib.engine.plan import DEFAULT_GROUPS
from ncib.metrics import MEMBERS, keys
from ncib.rundir.records import read_records
from tests.conftest import compose_config
from tests.helpers.app import ncib, run_app


@pytest.fixture
def default_run(digits_run, tmp_path):
    """A copy of the shared run, to write into."""
    return digits_run.copy_to(tmp_path / "run")


def test_the_default_run_plans_at_least_six_analysis_epochs():
    cfg = compose_config([])  # python -m ncib.run, as the README runs it
    assert len([e for e in cfg.analysis.epochs if e <= cfg.trainer.max_epochs]) >= 6


def assert_every_documented_key_and_the_files(run_dir):
    records = read_records(run_dir / "analysis.jsonl")
    for r in records:
        for group in DEFAULT_GROUPS:
            assert set(r[group]["scalars"]) == set(keys(group)), (r["epoch"], group)
    assert (run_dir / "report.md").exists() and (run_dir / "linear_eval.json").exists()
    assert len(list((run_dir / "figures").glob("*.png"))) == 5
    return records


def test_default_run_analyses_its_epochs_with_every_documented_key(digits_run):
    records = assert_every_documented_key_and_the_files(digits_run.path)
    assert [r["epoch"] for r in records] == list(digits_run.analysed) and len(records) >= 5


def test_default_run_shows_the_science(digits_run):
    assert_the_science(read_records(digits_run.path / "analysis.jsonl"))


@pytest.mark.slow
def test_the_readme_command_analyses_six_epochs_and_shows_the_science(tmp_path):
    proc = run_app(f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    records = assert_every_documented_key_and_the_files(tmp_path / "run")
    assert len(records) >= 6
    assert_the_science(records)


def assert_the_science(records):
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


def test_reanalysis_of_the_saved_checkpoints_reproduces_the_training_records(default_run, tmp_path):
    proc = ncib("ncib.analyse", default_run, "--name", "same", cwd=tmp_path)
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


def test_reanalysis_with_another_k_writes_a_second_records_file_and_report(
    digits_run, default_run, tmp_path
):
    before = (default_run / "analysis.jsonl").read_bytes()
    last = digits_run.max_epochs
    # no intervals: the test reads none (the re-analysis above computes and compares them)
    again = ["analysis.k=5", "analysis.intervals=null", "--epochs", 1, last]
    proc = ncib("ncib.analyse", default_run, *again, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = sorted(default_run.glob("analysis-[0-9]*.jsonl"))
    assert len(records) == 1
    k5 = read_records(records[0])
    assert [r["epoch"] for r in k5] == [1, last] and all(r["k"] == 5 for r in k5)
    assert len(k5[-1]["gib"]["feature_scaling/m0"]) == 5
    report = default_run / records[0].name.replace("analysis", "report").replace(".jsonl", ".md")
    assert "analysis.k=5" in report.read_text()
    assert (default_run / "analysis.jsonl").read_bytes() == before  # never overwritten
