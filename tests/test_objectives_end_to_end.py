"""Each objective trains a digits pair end to end through ``python -m ncib.run objective=<name>``
with its complete report; the classifier objectives collapse (issue: beyond SupCon)."""

from __future__ import annotations

import pytest

from ncib.metrics import MEMBERS
from ncib.objectives import OBJECTIVES
from ncib.report import build_report
from ncib.rundir.records import read_records
from tests.helpers.app import run_app

# the digits recipe of each objective as the README runs it, without the intervals (their own
# resamples: minutes, and nothing here reads them)
COMMAND = ("analysis.intervals=null", "logger=csv")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_an_objective_trains_a_pair_end_to_end_with_its_complete_report(name, tmp_path):
    run_dir = tmp_path / "run"
    proc = run_app(f"objective={name}", *COMMAND, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = build_report(run_dir)
    assert report.not_drawn == {}, report.not_drawn  # every figure of a run drawn
    expected = {"table1", "table2", "identifiability", "information"}
    if OBJECTIVES[name].classifier:
        expected.add("classifier")
    assert expected <= set(report.tables) and f"digits, {name}, seed pair" in report.markdown
    records = read_records(run_dir / "analysis.jsonl")
    if not OBJECTIVES[name].classifier:
        assert all("classifier" not in r for r in records)
        return
    first, last = records[0], records[-1]
    assert first["epoch"] == 0  # the initialisation, for the comparison below
    for m in MEMBERS:
        nc1 = [r["simplex_etf"]["scalars"][f"nc1/raw/{m}"] for r in (first, last)]
        nc3 = [r["classifier"]["scalars"][f"nc3/{m}"] for r in (first, last)]
        assert nc1[1] < 0.25 * nc1[0], (m, nc1)  # within-class variability collapses
        assert nc3[1] < 0.5 * nc3[0], (m, nc3)  # the classifier aligns with the class means
