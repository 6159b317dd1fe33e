"""Figures that survive short runs and read consistently: one analysis epoch still draws every
point, epoch axes carry whole epochs, accuracies are percentages, members that are equal by
construction are drawn once, and a report without Table 1 says why."""

from __future__ import annotations

import json

import matplotlib.pyplot as plt
import pytest

from ncib.report import build_report
from ncib.report import figures as F
from ncib.rundir.records import append_record
from tests.report.test_report import synthetic_record


@pytest.fixture
def kept_figures(monkeypatch):
    """The figures a call draws, kept open (the module closes them after saving)."""
    plt.close("all")
    monkeypatch.setattr(F.plt, "close", lambda *a, **k: None)
    yield lambda: [plt.figure(n) for n in plt.get_fignums()]
    monkeypatch.undo()
    plt.close("all")


def _points(ax):
    """(x, y) of every marker drawn on ``ax`` (lines with a marker, error-bar centres)."""
    out = []
    for line in ax.get_lines():
        if line.get_marker() not in (None, "None", "", " "):
            out += list(zip(line.get_xdata(), line.get_ydata()))
    return out


def _inside(ax, x, y) -> bool:
    (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
    return x0 < x < x1 and y0 < y < y1


def test_fig2_of_one_analysis_epoch_shows_its_point_in_both_panels(tmp_path, kept_figures):
    # the values of a real one-epoch digits run (python -m ncib.run debug=fast), on which
    # matplotlib's own limits collapsed to [y, y + 5e-16] and hid the point on the frame
    record = synthetic_record(1, 0.9)
    etf, cca = record["simplex_etf"]["scalars"], record["identifiability"]["scalars"]
    etf["nc1/raw/m0"], etf["nc1/raw/m1"] = 0.5794690625737922, 1.213457362711354
    cca |= {
        "cca/mean_k/raw": 0.968493931991181,
        "cca/var_k/raw": 0.0005330937973770189,
        "cca/std_k/raw": 0.023088824079563232,
        "cca/mean_k_lo/raw": 0.9638495888972907,
        "cca/mean_k_hi/raw": 0.9796605355744328,
    }
    assert F.fig2_nc1_vs_identifiability([record], tmp_path / "f.png")
    fig = kept_figures()[0]
    panels = [ax for ax in fig.axes if ax.get_xlabel()]  # not the colour bar
    assert len(panels) == 2
    for ax in panels:
        pts = _points(ax)
        assert pts and all(_inside(ax, x, y) for x, y in pts), (ax.get_xlabel(), pts)
    colorbar = [ax for ax in fig.axes if not ax.get_xlabel()][0]
    assert all(t == int(t) for t in colorbar.get_yticks())


@pytest.mark.parametrize("epochs", [[4], [0, 5, 10]])
def test_fig3_draws_every_series_with_markers_on_whole_epochs_in_percent(
    epochs, tmp_path, kept_figures
):
    records = [synthetic_record(e, 0.9) for e in epochs]
    assert F.fig3_etf_in_tk(records, 10, tmp_path / "f.png")
    axes = kept_figures()[0].axes
    for ax in axes:
        series = [ln for ln in ax.get_lines() if len(ln.get_xdata())]
        drawn = [ln for ln in series if ln.get_label().startswith(("T_K", "raw"))]
        assert len(drawn) == 4, ax.get_title()  # T_K and raw of both members
        assert all(ln.get_marker() not in (None, "None", "") for ln in drawn), ax.get_title()
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), (ax.get_title(), ticks)
        if len(epochs) == 1:
            assert ticks == epochs
    accuracy = axes[0]
    assert "%" in accuracy.get_title()
    values = [y for ln in accuracy.get_lines() for y in ln.get_ydata()]
    assert values and min(values) > 50  # 0.87–0.9 as percentages


def test_fig4b_draws_members_equal_by_construction_once(tmp_path, kept_figures):
    equal = synthetic_record(2, 0.9)
    equal["gib"]["feature_scaling/m1"] = list(equal["gib"]["feature_scaling/m0"])
    assert F.fig4b_feature_scaling(equal, tmp_path / "a.png")
    differ = synthetic_record(2, 0.9)  # made-up, unequal scalings: both drawn
    assert F.fig4b_feature_scaling(differ, tmp_path / "b.png")
    one, two = kept_figures()
    assert (
        len(one.axes[0].containers) == 1 and "both members" in one.axes[0].containers[0].get_label()
    )
    assert len(two.axes[0].containers) == 2


def test_a_report_without_table_1_says_why(tmp_path):
    append_record(tmp_path / "analysis.jsonl", synthetic_record(1, 0.9))
    report = build_report(tmp_path)
    assert "table1" not in report.tables
    assert "Table 1 (the offline linear evaluation) is not in this report" in report.markdown
    assert "python -m ncib.linear_eval" in report.markdown
    (tmp_path / "linear_eval.json").write_text(
        json.dumps(
            {
                "test_acc/m0": 0.9,
                "test_acc/m1": 0.9,
                "train_acc/m0": 1.0,
                "train_acc/m1": 1.0,
                "both_correct": 0.85,
                "num_test": 50,
            }
        )
    )
    report = build_report(tmp_path)
    assert "table1" in report.tables and "is not in this report" not in report.markdown
