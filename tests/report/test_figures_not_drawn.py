"""A figure the records cannot feed is not silently left out: the report lists it under its
figures with the registered keys the records lack (and only those)."""

from __future__ import annotations

from omegaconf import OmegaConf

from ncib.metrics.registry import metric_of
from ncib.report import build_report
from ncib.report.aggregate import Recipe
from ncib.report.jobs import FINISHED, Job
from ncib.rundir.records import append_record
from tests.report.registry_records import complete_record


def test_the_run_report_names_each_figure_not_drawn_and_the_keys_it_lacked(tmp_path):
    for epoch in (0, 5):  # no GIB, no transfer: what a run without those callbacks records
        record = complete_record(epoch, set(), groups=("identifiability", "simplex_etf"))
        append_record(tmp_path / "analysis.jsonl", record)
    report = build_report(tmp_path)
    assert set(report.figures) == {"fig2_nc1_vs_identifiability", "fig3_etf_in_tk"}
    assert set(report.not_drawn) == {
        "fig4b_feature_scaling",
        "information_curve",
        "compression_generalisation",
    }  # the transfer figures (4A, 4C) are not expected of a training run
    # the probes are there: only the GIB's key is named
    assert report.not_drawn["compression_generalisation"] == (
        "no analysis record holds `gib/i_ty_frac_tk`"
    )
    assert report.not_drawn["information_curve"] == (
        "the last analysis record lacks `information_curve`"
    )
    assert "`feature_scaling/m0`, `feature_scaling/m1`" in report.not_drawn["fig4b_feature_scaling"]
    named = [w.strip("`,") for why in report.not_drawn.values() for w in why.split() if "`" in w]
    assert named and all(metric_of(k) is not None for k in named)  # registered keys only
    figures = report.markdown[report.markdown.index("## Figures") :]
    assert "Not drawn (3):" in figures
    for name, why in report.not_drawn.items():
        assert f"- `{name}`: {why}." in figures
    assert "- `fig3_etf_in_tk`" not in figures


def test_a_transfer_run_names_its_transfer_figures_not_drawn(tmp_path):
    record = complete_record(0, set(), groups=("identifiability", "simplex_etf"))
    record["transfer"] = {"scalars": {}}  # a transfer record that lacks its grid and scalings
    append_record(tmp_path / "analysis.jsonl", record)
    report = build_report(tmp_path)
    assert {"fig4a_dimension_sweep", "fig4c_feature_scaling_k_prime"} <= set(report.not_drawn)
    assert "`transfer/grid`" in report.not_drawn["fig4a_dimension_sweep"]


def test_a_report_without_analysis_records_says_so_for_each_figure(tmp_path):
    (tmp_path / "linear_eval.json").write_text(
        '{"test_acc/m0": 0.9, "test_acc/m1": 0.9, "train_acc/m0": 1.0, "train_acc/m1": 1.0, '
        '"both_correct": 0.85}'
    )
    report = build_report(tmp_path)
    assert not report.figures and set(report.not_drawn.values()) == {"no analysis record"}
    assert "## Figures" in report.markdown and "Not drawn (5):" in report.markdown


def test_the_sweep_report_names_each_figure_not_drawn(tmp_path, monkeypatch):
    from ncib.report.sweep import build_sweep_report

    jobs = [
        Job(
            num,
            [],
            status=FINISHED,
            config=OmegaConf.create({"seed_pair": [2 * num, 2 * num + 1]}),
            records=[complete_record(e, set(), groups=("identifiability", "gib")) for e in (0, 5)],
        )
        for num in range(2)
    ]
    recipe = Recipe("digits · convnet", "digits", "convnet", [], jobs)
    (tmp_path / "multirun.yaml").write_text("hydra: {}\n")
    monkeypatch.setattr("ncib.report.sweep.collect_jobs", lambda sweep_dir: jobs)
    monkeypatch.setattr("ncib.report.sweep.group_recipes", lambda jobs: [recipe])
    report = build_sweep_report(tmp_path)
    assert set(report.figures[recipe.label]) == {"identifiability_information"}
    why = report.not_drawn[recipe.label]
    assert why["fig3"] == "no analysis record holds `etf/equinorm/tk/m0`, `etf/equinorm/tk/m1`"
    assert why["fig2"] == "no analysis record holds `nc1/raw/m0`, `nc1/raw/m1`"
    assert f"- {recipe.label} — `fig3`: {why['fig3']}." in report.markdown
