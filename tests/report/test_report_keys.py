"""The run report, the sweep report and their figures read metrics only under registered names
(ncib/metrics/registry.py): every key they look up in a record or in Table 1 is noted, on
records that hold every registered key, and each must be one the registry holds."""

from __future__ import annotations

import pytest

from ncib.metrics.registry import GROUPS, keys
from ncib.report import build_report
from ncib.report.aggregate import Recipe, sweep_nc3_table, sweep_table1, sweep_table2
from ncib.report.catalogue import COMPARISON_FIGURES, RUN_FIGURES, SWEEP_FIGURES
from ncib.report.jobs import FINISHED, Job
from ncib.report.sweep import comparison_figures, sweep_figures
from ncib.report.tables import classifier_table
from tests.report.registry_records import RECORD_GROUPS, complete_evaluation, complete_record

REGISTERED = {k for g in GROUPS for scalars in (True, False) for k in keys(g, scalars)}
STRUCTURE = {"scalars"}  # a group's part holds its logged scalars under this name
TABLE1_FIELDS = {"protocol", "num_test", "seeds"}  # what linear_eval.json says besides metrics


def _unregistered(log: set[str], allowed=frozenset()) -> list[str]:
    return sorted(log - REGISTERED - STRUCTURE - set(allowed))


@pytest.fixture
def reads():
    """The keys read from records and from Table 1."""
    return {"records": set(), "table1": set()}


def test_the_run_report_reads_only_registered_keys(tmp_path, monkeypatch, reads):
    records = [complete_record(e, reads["records"]) for e in (0, 5, 10)]
    evaluation = complete_evaluation(reads["table1"])
    (tmp_path / "analysis.jsonl").touch()
    (tmp_path / "linear_eval.json").touch()
    monkeypatch.setattr("ncib.report.report.read_records", lambda path: records)
    monkeypatch.setattr("ncib.report.report.read_linear_eval", lambda path: evaluation)
    report = build_report(tmp_path)
    # every figure and table was made, so every reading path ran
    assert set(report.figures) == {f.name for f in RUN_FIGURES} and not report.not_drawn
    assert {"table1", "table2", "table2_per_epoch", "table3", "information"} <= set(report.tables)
    # the notes work: keys of every group were read
    for name in ("nc1/raw/m0", "cca/mean_k_lo/raw", "gib/mi_xy", "information_curve"):
        assert name in reads["records"], name
    assert {"transfer/grid", "transfer/tolerance", "test_acc/m0"} <= reads["records"] | reads[
        "table1"
    ]
    assert _unregistered(reads["records"]) == []
    assert _unregistered(reads["table1"], TABLE1_FIELDS) == []


def test_the_sweep_report_reads_only_registered_keys(tmp_path, reads):
    jobs = [
        Job(
            num,
            [],
            status=FINISHED,
            records=[complete_record(e, reads["records"]) for e in (0, 5, 10)],
            evaluation=complete_evaluation(reads["table1"]),
        )
        for num in range(2)
    ]
    recipe = Recipe("digits · convnet", "digits", "convnet", [], jobs)
    assert sweep_table1([recipe]) and sweep_table2([recipe])
    drawn, not_drawn = sweep_figures(recipe, tmp_path)
    assert set(drawn) == {f.name for f in SWEEP_FIGURES} and not not_drawn
    assert {"nc1/raw/m1", "etf/cos_mean/tk/m0", "cka/normal"} <= reads["records"]
    assert _unregistered(reads["records"]) == []
    assert _unregistered(reads["table1"], TABLE1_FIELDS) == []


def test_the_objectives_comparison_reads_only_registered_keys(tmp_path, reads):
    """The NC3 table and the figures with the recipes on the same axes, over a SupCon recipe
    and a cross-entropy one whose records hold the ``classifier`` group."""

    def jobs(groups):
        return [
            Job(
                num,
                [],
                status=FINISHED,
                records=[complete_record(e, reads["records"], groups) for e in (0, 5, 10)],
                evaluation=complete_evaluation(reads["table1"]),
            )
            for num in range(2)
        ]

    recipes = [
        Recipe("digits · convnet · supcon", "digits", "convnet", [], jobs(RECORD_GROUPS)),
        Recipe(
            "digits · convnet · ce",
            "digits",
            "convnet",
            [],
            jobs((*RECORD_GROUPS, "classifier")),
            objective="ce",
        ),
    ]
    nc3 = sweep_nc3_table(recipes)
    assert [row[1] for row in nc3.rows] == [None, 0, 10]
    drawn, not_drawn = comparison_figures(recipes, tmp_path)
    assert set(drawn["digits"]) == {f.name for f in COMPARISON_FIGURES} and not not_drawn
    assert {"nc3/m1", "classifier/equinorm/m0", "nc3/cos_mean/m1"} <= reads["records"]
    assert _unregistered(reads["records"]) == []


def test_the_notes_catch_an_unregistered_key(reads):
    """The check itself: a read of a name the registry does not hold is reported."""
    from ncib.report.tables import scalar

    record = complete_record(1, reads["records"])
    assert scalar(record, "gib/mi_xy_lower") is None
    assert _unregistered(reads["records"]) == ["gib/mi_xy_lower"]


def test_the_classifier_table_is_in_a_report_whose_records_hold_the_classifier_group(tmp_path):
    log: set[str] = set()
    with_classifier = [complete_record(e, log) for e in (1, 2)]
    table = classifier_table(with_classifier)
    assert table is not None and [row[0] for row in table.rows] == [1, 2]
    assert {"nc3/m0", "nc3/m1", "classifier/equinorm/m0"} <= log
    without = [
        complete_record(e, set(), groups=("identifiability", "gib", "simplex_etf")) for e in (1, 2)
    ]
    assert classifier_table(without) is None  # SupCon and SimCLR: no classifier, no table
