"""The W&B dashboard (a report built with wandb-workspaces), built offline."""

from __future__ import annotations

import pytest

pytest.importorskip("wandb_workspaces", reason="pip install 'ncib[dashboard]'")

from ncib import dashboard  # noqa: E402
from ncib.metrics import GROUPS, keys, logged_name  # noqa: E402
from ncib.tracking.dashboard import (  # noqa: E402
    PANELS,
    Panel,
    build_dashboard,
    logged_names,
    metric,
    panel_keys,
)
from tests.helpers.app import ncib  # noqa: E402


def unknown_keys(report) -> list[tuple[str, str]]:
    """(chart title, key) for every key of the report that no run logs."""
    known = logged_names()
    return [(title, k) for title, names in panel_keys(report) for k in names if k not in known]


def test_every_panel_refers_to_a_key_the_runs_log():
    report = build_dashboard("entity", "project")
    charts = panel_keys(report)
    assert len(charts) == len(PANELS) >= 15
    assert unknown_keys(report) == []


def test_a_planted_wrong_key_is_found():
    wrong = Panel("Fig. 2", "planted", ("analysis/nc1/raw",))  # no member: not a logged key
    report = build_dashboard("entity", "project", panels=(*PANELS, wrong))
    assert unknown_keys(report) == [("planted", "analysis/nc1/raw")]
    off_axis = Panel("Fig. 2", "planted x", (metric("gib/mi_xy"),), x="analysis/step")
    assert unknown_keys(build_dashboard("e", "p", panels=(off_axis,))) == [
        ("planted x", "analysis/step")
    ]


def test_the_known_names_are_the_registry_with_its_prefixes():
    names = logged_names()
    assert {
        "analysis/epoch",
        "epoch",
        "analysis/nc1/raw/m0",
        "linear_eval/test_acc/m1",
        "train/loss/m0",
    } <= names
    assert len(names) == 2 + sum(len(keys(g)) for g in GROUPS)
    assert all(n.startswith(("analysis/", "linear_eval/", "train/")) or n == "epoch" for n in names)


def test_keys_come_from_the_registry():
    assert metric("nc1/{space}/{member}", space="tk", member="m1") == "analysis/nc1/tk/m1"
    assert metric("both_correct") == logged_name("linear_eval", "both_correct")
    with pytest.raises(KeyError, match="not a registered metric"):
        metric("nc1/{space}")
    with pytest.raises(ValueError):
        metric("nc1/{space}/{member}", space="normal", member="m0")  # NC is measured in raw, tk


def test_the_paper_sections_and_their_axes():
    report = build_dashboard("entity", "project", group="digits/single")
    titles = [b.text for b in report.blocks if type(b).__name__ == "H2"]
    assert [t.split(" —")[0] for t in titles[:2]] == ["Fig. 2", "Fig. 3"]
    assert any("Identifiability" in t for t in titles) and any("Information" in t for t in titles)
    assert any("Tables 1 and 2" in t for t in titles)
    fig3 = [p for p in PANELS if p.section.startswith("Fig. 3")]
    assert [p.title[:2] for p in fig3] == ["A.", "B.", "C.", "D."]
    for p in fig3:  # T_K against raw, both members
        assert {k.split("/")[-2] for k in p.y} == {"tk", "raw"} and len(p.y) == 4
    info = next(p for p in PANELS if "I(X;Y)" in p.title)
    assert info.y[0] == "analysis/gib/mi_xy"  # the held-out headline, its interval, in-sample
    assert set(info.y[1:]) == {
        "analysis/gib/mi_xy_lo",
        "analysis/gib/mi_xy_hi",
        "analysis/gib/insample/mi_xy",
    }
    grids = [b for b in report.blocks if hasattr(b, "runsets")]
    for grid in grids:
        rs = grid.runsets[0]
        assert rs.groupby == ["group"] and "digits/single" in rs.filters
        # finished training runs only: no crashed or running run, no sweep summary
        assert "Metric(\"State\") == 'finished'" in rs.filters
        assert "Metric(\"JobType\") != 'sweep-summary'" in rs.filters
        for chart in grid.panels:
            assert chart.groupby_aggfunc == "mean" and chart.groupby_rangefunc == "stddev"
            if hasattr(chart, "x"):
                assert chart.x in {"analysis/epoch", "epoch"} or chart.x.startswith("analysis/")
    # every chart serialises as W&B would save it (no network for panels)
    for grid in grids:
        for chart in grid.panels:
            assert chart._to_model() is not None


def test_dry_run_prints_the_panels_and_saving_needs_a_login(tmp_path, monkeypatch, capsys):
    dashboard.main(["--entity", "e", "--project", "p", "--group", "g", "--dry-run"])
    out = capsys.readouterr().out
    assert "## Fig. 2" in out and "analysis/nc1/raw/m0" in out and "linear_eval/both_correct" in out
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    env = {
        "HOME": str(tmp_path),
        "NETRC": str(tmp_path / "none"),
        "WANDB_CONFIG_DIR": str(tmp_path),
    }
    proc = ncib("ncib.dashboard", "--entity", "e", "--project", "p", cwd=tmp_path, env=env)
    assert proc.returncode == 2 and "needs a login" in proc.stderr


def test_the_figure_panels_are_the_figure_specs_charts(monkeypatch):
    """A metric shown in a report figure reaches the dashboard through the figure's own spec
    (ncib/report/catalogue.py): one declaration, no second list here."""
    from dataclasses import replace

    from ncib.report import catalogue
    from ncib.tracking import dashboard as board

    charts = catalogue.dashboard_charts()
    figure_panels = [p for p in PANELS if p.section not in (board.TABLES, board.TRAIN)]
    assert [(p.section, p.title) for p in figure_panels] == [(c.section, c.title) for c in charts]
    assert {c.section for c in charts} >= {catalogue.FIG2, catalogue.FIG3}
    # a chart added to Fig. 3's spec is on the dashboard, under the logged name of its key
    added = catalogue.Chart(catalogue.FIG3, "E. NC1", ("nc1/tk/m0",))
    fig3 = next(f for f in catalogue.RUN_FIGURES if f.name == "fig3_etf_in_tk")
    figures = tuple(
        replace(f, charts=(*f.charts, added)) if f is fig3 else f for f in catalogue.RUN_FIGURES
    )
    monkeypatch.setattr(catalogue, "RUN_FIGURES", figures)
    panel = next(p for p in board._panels() if p.title == "E. NC1")
    assert panel.y == ("analysis/nc1/tk/m0",) and panel.x == "analysis/epoch"


def _grids(report) -> list:
    return [b for b in report.blocks if hasattr(b, "runsets")]


def test_the_objectives_are_separated(capsys):
    """Each objective its own groups (the recipe names it); ``--objective`` keeps one
    objective's runs, SupCon's including the runs made before the key existed."""
    (grid, *_) = _grids(build_dashboard("e", "p", objective="ce"))
    assert "Config(\"objective\") == 'ce'" in grid.runsets[0].filters
    assert grid.runsets[0].name == "objective=ce"
    supcon = build_dashboard("e", "p", group="digits/convnet-1a2b3c4d", objective="supcon")
    (grid, *_) = _grids(supcon)
    # not "== 'supcon'": a run without the key is a SupCon run
    assert "Config(\"objective\") not in ['simclr', 'ce', 'mse']" in grid.runsets[0].filters
    assert "objective=supcon" in supcon.title and "digits/convnet-1a2b3c4d" in supcon.title
    everything = build_dashboard("e", "p")
    assert all("objective" not in g.runsets[0].filters for g in _grids(everything))
    with pytest.raises(ValueError, match="'sgd' is not an objective: one of supcon"):
        build_dashboard("e", "p", objective="sgd")
    dashboard.main(["--entity", "e", "--project", "p", "--objective", "mse", "--dry-run"])
    assert "Config(\"objective\") == 'mse'" in capsys.readouterr().out
    loss = next(p for p in PANELS if p.y == ("train/loss/m0", "train/loss/m1"))
    assert "SupCon" not in loss.title.split("(")[0]  # every objective logs its loss there
