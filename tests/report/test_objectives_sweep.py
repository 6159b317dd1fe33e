"""The objectives compared in one sweep (issue 19 item 4): ``experiment=objectives``, the sweep
report's recipes, tables and figures per objective, the W&B groups."""

from __future__ import annotations

import statistics
import time

import pytest
from omegaconf import OmegaConf

from ncib.recipe import DEFAULT_OBJECTIVE, recipe_id, recipe_name, recipe_of
from ncib.report import figures, recipe_figures
from ncib.report.aggregate import group_recipes
from ncib.report.jobs import Job
from ncib.report.sweep import FINISHED, build_sweep_report
from ncib.rundir.records import append_record
from tests.conftest import compose_config
from tests.helpers.app import ncib, run_app
from tests.report.test_report import synthetic_record
from tests.report.test_sweep_report import EPOCHS, QUICK, fake_job

OBJECTIVES = ("supcon", "ce", "mse", "simclr")
PAIRS = ((0, 1), (2, 3))


# -- the experiment -------------------------------------------------------------------------


def test_the_experiment_sweeps_every_objective_over_named_seed_pairs():
    cfg = compose_config(["experiment=objectives"], hydra_config=True)
    params = cfg.hydra.sweeper.params
    assert params.objective.split(",") == list(OBJECTIVES)
    assert params.seed_pair == "[0,1],[2,3],[4,5]"  # seeds=three's pairs
    # the objective names each job's directory: one seed pair's four jobs never share one
    where = OmegaConf.to_container(cfg.hydra.sweep)  # as written, before Hydra resolves it
    assert "${objective}" in where["subdir"] and "${seed_pair.0}" in where["subdir"]
    assert "objectives_${dataset.name}" in where["dir"]
    # a named set of pairs still chooses the pairs
    five = compose_config(["experiment=objectives", "seeds=five"], hydra_config=True)
    assert five.hydra.sweeper.params.seed_pair.count("[") == 5
    assert five.hydra.sweeper.params.objective == params.objective


@pytest.mark.parametrize("dataset", ["digits", "cifar10", "cifar100"])
def test_each_job_gets_its_objectives_recipe_for_the_dataset(dataset):
    """What each job of ``experiment=objectives dataset=<d>`` composes (the sweeper adds
    ``objective=<name>``): that objective's recipe for the dataset, as a single run of it."""
    for objective in OBJECTIVES:
        overrides = [f"dataset={dataset}", f"objective={objective}"]
        job = compose_config(["experiment=objectives", *overrides], hydra_config=True)
        assert job.hydra.runtime.choices.recipe == f"{objective}_{dataset}"
        assert job.objective == objective
        single = compose_config(overrides)
        assert recipe_of(job) == recipe_of(single)  # one recipe, one W&B group


# -- recipes and groups ---------------------------------------------------------------------


def test_the_default_objective_leaves_the_recipe_as_it_was():
    """A SupCon run made before the objectives has no ``objective`` key: its recipe and W&B
    group are those of a SupCon run made today. Another objective is another recipe."""
    cfg = compose_config([])
    assert cfg.objective == DEFAULT_OBJECTIVE
    before = OmegaConf.create(OmegaConf.to_container(cfg))
    del before["objective"]
    assert recipe_id(before) == recipe_id(cfg) and "objective" not in recipe_of(cfg)
    assert recipe_name(before) == recipe_name(cfg)
    assert recipe_name(cfg) == f"digits/convnet-{recipe_id(cfg)}"  # the name it always had
    ce = compose_config(["objective=ce"])
    assert recipe_of(ce)["objective"] == "ce"
    assert recipe_name(ce) == f"digits/ce/convnet-{recipe_id(ce)}"
    names = {recipe_name(compose_config([f"objective={o}"])) for o in OBJECTIVES}
    assert len(names) == 4 and all(
        f"/{o}/" in n for o in OBJECTIVES[1:] for n in names if f"/{o}/" in n
    )
    assert sorted(n.split("/")[1] for n in names if n.count("/") == 2) == ["ce", "mse", "simclr"]


def _job(num, overrides, status=FINISHED):
    """A job whose config reads as the saved ``.hydra/config.yaml`` does (plain, unresolved)."""
    saved = OmegaConf.create(OmegaConf.to_container(compose_config(overrides)))
    return Job(num, [], config=saved, status=status)


def test_recipes_are_labelled_by_objective_and_what_else_differs():
    jobs = [
        _job(0, ["objective=supcon"]),
        _job(1, ["objective=supcon", "seed_pair=[2,3]"]),
        _job(2, ["objective=supcon", "model.temperature=0.5"]),
        _job(3, ["objective=ce"]),
        _job(4, ["objective=ce", "seed_pair=[2,3]"]),
        _job(5, ["objective=simclr"]),
    ]
    recipes = group_recipes(jobs)
    by_label = {r.label: [j.num for j in r.jobs] for r in recipes}
    assert by_label == {
        "digits · convnet · supcon · model.temperature=0.1": [0, 1],
        "digits · convnet · supcon · model.temperature=0.5": [2],
        # alone of its objective: nothing else to tell it by (not the keys its objective sets)
        "digits · convnet · ce": [3, 4],
        "digits · convnet · simclr": [5],
    }
    assert [r.objective for r in recipes] == ["supcon", "supcon", "ce", "simclr"]
    # the legends leave out what all share (dataset, backbone)
    assert [r.legend for r in recipes] == [
        "supcon · model.temperature=0.1",
        "supcon · model.temperature=0.5",
        "ce",
        "simclr",
    ]
    assert [r.trains_classifier for r in recipes] == [False, False, True, False]
    # a run without the key (made before the objectives) is SupCon: the same recipe
    old = _job(6, ["seed_pair=[4,5]"])
    del old.config["objective"]
    merged = group_recipes([*jobs, old])
    assert [j.num for j in merged[0].jobs] == [0, 1, 6] and merged[0].objective == "supcon"
    (alone,) = group_recipes([old])
    assert alone.objective == "supcon" and alone.label == "digits · convnet · supcon"


def test_analysis_precision_at_float32_leaves_the_recipe_as_it_was():
    """A run made before ``analysis.precision`` analysed in float32 and has no key: the same
    recipe and W&B group as a float32 run made today; float64 is another recipe."""
    cfg = compose_config([])
    before = OmegaConf.create(OmegaConf.to_container(cfg))
    del before["analysis"]["precision"]
    assert recipe_id(before) == recipe_id(cfg) and "analysis.precision" not in recipe_of(cfg)
    wide = compose_config(["analysis.precision=float64"])
    assert recipe_of(wide)["analysis.precision"] == "float64"
    assert recipe_id(wide) != recipe_id(cfg)


# -- the report over a synthetic sweep of two objectives x two seed pairs --------------------


def _classifier_part(epoch: int, pair: int) -> dict:
    """The ``classifier`` group of a ce record (values made up, falling over epochs)."""
    nc3 = 2.0 / (1 + epoch) + 0.1 * pair
    values = {}
    for i, m in enumerate(("m0", "m1")):
        values |= {
            f"nc3/{m}": nc3 + 0.01 * i,
            f"nc3/cos_mean/{m}": 1.0 - nc3 / 4,
            f"classifier/equinorm/{m}": 0.2 / (1 + epoch),
            f"classifier/cos_mean/{m}": -0.1,
            f"classifier/cos_std/{m}": 0.05,
            f"classifier/cos_dev/{m}": 0.02,
        }
    return {"scalars": values}


@pytest.fixture
def objectives_sweep(tmp_path):
    """supcon and ce, two seed pairs each, every job finished (records made up, keys real)."""
    sweep = tmp_path / "multirun" / "objectives"
    sweep.mkdir(parents=True)
    OmegaConf.save(
        OmegaConf.create(
            {
                "hydra": {
                    "sweeper": {
                        "_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
                        "params": {"objective": "supcon,ce", "seed_pair": "[0,1],[2,3]"},
                    },
                    "overrides": {"task": QUICK},
                }
            }
        ),
        sweep / "multirun.yaml",
    )
    num = 0
    for objective, acc in (("supcon", 0.80), ("ce", 0.70)):
        for i, pair in enumerate(PAIRS):
            run_dir = fake_job(sweep, num, pair, lin=acc + 0.1, extra=[f"objective={objective}"])
            run_dir = run_dir.rename(sweep / f"{num}_digits_{objective}_seeds{pair[0]}-{pair[1]}")
            for e in EPOCHS:
                record = synthetic_record(e, acc + 0.05 * i + 0.002 * e)
                if objective == "ce":
                    record["classifier"] = _classifier_part(e, i)
                append_record(run_dir / "analysis.jsonl", record)
            num += 1
    return sweep


def _record_calls(monkeypatch, name: str, calls: list) -> None:
    """Note the first argument of every call of the renderer ``<name>`` by the figures of a
    recipe and by the comparison figures."""
    for module in (figures, recipe_figures):
        if not hasattr(module, name):  # a renderer only one of them uses
            continue
        original = getattr(module, name)

        def noting(*args, _original=original, **kwargs):
            calls.append(args[0])
            return _original(*args, **kwargs)

        monkeypatch.setattr(module, name, noting)


def test_the_report_puts_the_objectives_side_by_side(objectives_sweep, monkeypatch):
    trajectories, panels = [], []  # what the renderers were handed
    _record_calls(monkeypatch, "draw_trajectories", trajectories)
    _record_calls(monkeypatch, "draw_curves", panels)
    report = build_sweep_report(objectives_sweep)
    assert report.count(FINISHED) == 4
    by_objective = {r.objective: sorted(j.num for j in r.finished) for r in report.recipes}
    assert by_objective == {"supcon": [0, 1], "ce": [2, 3]}
    labels = [r.label for r in report.recipes]
    assert labels == ["digits · convnet · supcon", "digits · convnet · ce"]

    # Tables 1 and 2: rows per objective, over its two pairs
    t1 = {row[0]: row for row in report.tables["table1"].rows}
    assert set(t1) == set(labels) and all(row[1] == 2 for row in t1.values())
    assert t1[labels[0]][2].mean == pytest.approx(90.0) and t1[labels[1]][2].mean == pytest.approx(
        80.0
    )
    t2 = report.tables["table2"].rows
    assert [(r[0], r[2]) for r in t2] == [
        (lab, k) for lab in labels for k in ("raw", "normal", "tk")
    ]
    raw_ce = next(r for r in t2 if r[0] == labels[1] and r[2] == "raw")
    pairs = [100 * ((a + 0.02) + (a + 0.02 - 0.01)) / 2 for a in (0.70, 0.75)]
    assert (raw_ce[6].mean, raw_ce[6].std) == pytest.approx(
        (statistics.mean(pairs), statistics.stdev(pairs))
    )

    # NC3: ce at the first and last epochs, mean ± std over its pairs; supcon "—"
    nc3 = report.tables["nc3"]
    rows = {(r[0], r[1]): r for r in nc3.rows}
    assert list(rows) == [(labels[0], None), (labels[1], 0), (labels[1], 10)]
    assert all(v is None for v in rows[(labels[0], None)][3:])
    last = rows[(labels[1], 10)]
    m0 = [2.0 / 11 + 0.1 * i for i in range(2)]
    assert last[2] == 2 and (last[3].mean, last[3].std) == pytest.approx(
        (statistics.mean(m0), statistics.stdev(m0))
    )
    means = [v + 0.005 for v in m0]
    assert (last[5].mean, last[5].std) == pytest.approx(
        (statistics.mean(means), statistics.stdev(means))
    )
    assert last[5].mean < rows[(labels[1], 0)][5].mean  # NC3 falls over training
    assert "trains no classifier" in nc3.note
    assert f"| {labels[0]} | — | 2 | — |" in report.markdown

    # the comparison figures: one band per objective in the same axes
    assert set(report.compared) == {"digits"} and not report.compared_not_drawn
    assert set(report.compared["digits"]) == {"fig2", "fig3", "nc3"}
    assert all(p.is_file() for p in report.compared["digits"].values())
    (fig2,) = trajectories
    assert [t.label for t in fig2] == ["supcon", "ce"]
    assert all(t.y.pairs == 2 and any(s is not None for s in t.y.std) for t in fig2)
    compared = [p for p in panels if p[0].title.startswith(("A.", "NC3"))]
    fig3 = next(p for p in compared if p[0].title.startswith("A.") and len(p[0].curves) == 4)
    for panel in fig3:  # per objective a colour, T_K and raw, each over both pairs (a band)
        assert [c.label for c in panel.curves] == ["supcon T_K", "supcon raw", "ce T_K", "ce raw"]
        assert all(c.series.pairs == 2 for c in panel.curves)
        assert len({c.color for c in panel.curves}) == 2
    (nc3_panels,) = [p for p in compared if p[0].title.startswith("NC3")]
    assert [c.label for c in nc3_panels[0].curves] == ["ce"]  # supcon has no classifier
    assert "## The recipes side by side" in report.markdown
    assert "![digits fig2](sweep_figures/compared_digits_fig2.png)" in report.markdown


def test_one_recipe_draws_no_comparison(objectives_sweep):
    for run_dir in objectives_sweep.glob("*_ce_*"):
        (run_dir / "report.md").unlink()  # the ce runs unfinished: one recipe left to show
    report = build_sweep_report(objectives_sweep)
    assert report.compared == {} and "side by side" not in report.markdown
    assert [r[0] for r in report.tables["table1"].rows] == ["digits · convnet · supcon"]


def test_a_supcon_only_sweep_has_no_nc3_table(objectives_sweep):
    for run_dir in objectives_sweep.glob("*_ce_*"):
        (run_dir / ".hydra" / "config.yaml").unlink()
    report = build_sweep_report(objectives_sweep)
    assert "nc3" not in report.tables and "NC3" not in report.markdown


def test_datasets_are_never_on_the_same_axes(tmp_path):
    """Two recipes of two datasets: no comparison (their classes and ETF targets differ); a
    second recipe of one dataset: that dataset's comparison only."""
    from ncib.report.aggregate import Recipe
    from ncib.report.sweep import comparison_figures

    def recipe(dataset, objective):
        jobs = [
            Job(n, [], status=FINISHED, records=[synthetic_record(e, 0.8) for e in EPOCHS])
            for n in range(2)
        ]
        return Recipe(f"{dataset} · convnet · {objective}", dataset, "convnet", [], jobs, objective)

    drawn, why = comparison_figures([recipe("digits", "ce"), recipe("cifar10", "ce")], tmp_path)
    assert drawn == {} and why == {}
    drawn, _ = comparison_figures(
        [recipe("digits", "ce"), recipe("cifar10", "ce"), recipe("cifar10", "supcon")], tmp_path
    )
    assert (
        set(drawn) == {"cifar10"} and drawn["cifar10"]["fig3"].name == "compared_cifar10_fig3.png"
    )


# -- a real sweep ---------------------------------------------------------------------------


@pytest.mark.slow
def test_a_real_objectives_sweep_and_its_report(tmp_path):
    """``experiment=objectives`` on digits through the local launcher (one seed pair, three
    epochs), then ``python -m ncib.report`` over it: the four objectives side by side."""
    sweep = tmp_path / "sweep"
    started = time.monotonic()
    proc = run_app(
        "-m",
        "experiment=objectives",
        "hydra/launcher=local",
        "seed_pair=[0,1]",
        "trainer.max_epochs=3",
        "analysis.epochs=[0,3]",
        "analysis.intervals=null",
        "linear_eval.epochs=1",
        "logger=csv",
        "analysis.checkpoints=false",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        timeout=1800,
        env={"NCIB_DATA_DIR": str(tmp_path / "data")},
    )
    print(f"sweep: {time.monotonic() - started:.0f} s")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in sweep.glob("*_seeds0-1")) == [
        f"{n}_digits_{o}_seeds0-1" for n, o in enumerate(OBJECTIVES)
    ]
    out = ncib("ncib.report", sweep, "--no-wandb", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "4 finished" in out.stdout and "4 recipe(s)" in out.stdout
    report = build_sweep_report(sweep)
    assert [r.objective for r in report.recipes] == list(OBJECTIVES)
    labels = [f"digits · convnet · {o}" for o in OBJECTIVES]
    assert [r.label for r in report.recipes] == labels
    assert [row[0] for row in report.tables["table1"].rows] == labels
    assert {row[0] for row in report.tables["table2"].rows} == set(labels)
    nc3 = {(row[0], row[1]): row for row in report.tables["nc3"].rows}
    assert set(nc3) == {
        (labels[0], None),
        (labels[1], 0),
        (labels[1], 3),
        (labels[2], 0),
        (labels[2], 3),
        (labels[3], None),
    }
    for label in labels[1:3]:  # ce, mse: NC3 measured, and lower after training
        assert nc3[(label, 3)][5].mean < nc3[(label, 0)][5].mean
    assert set(report.compared["digits"]) == {"fig2", "fig3", "nc3"}
    md = (sweep / "sweep_report.md").read_text()
    assert "## The recipes side by side" in md and "compared_digits_fig3.png" in md


def test_each_objective_has_its_own_wandb_summary(objectives_sweep, tmp_path, monkeypatch):
    """The summary runs of ``python -m ncib.report``: one per objective, in its W&B group (ce's
    names it), each with its own rows; ce's with the NC3 table."""
    import json

    from ncib.tracking.uploads import log_sweep_to_wandb
    from tests.helpers.wandb_offline import read_offline_run

    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    for run_dir in objectives_sweep.glob("*_seeds*"):
        (run_dir / "wandb").mkdir()  # these runs were logged to W&B (the default logger)
    report = build_sweep_report(objectives_sweep)
    groups = log_sweep_to_wandb(report)
    configs = [OmegaConf.load(r.jobs[0].run_dir / ".hydra" / "config.yaml") for r in report.recipes]
    assert groups == [recipe_name(c) for c in configs]
    assert groups[0].startswith("digits/convnet-") and groups[1].startswith("digits/ce/convnet-")
    runs = {}
    for path in (objectives_sweep / "wandb").glob("offline-run-*/*.wandb"):
        run = read_offline_run(path)
        runs[run.run.run_group] = (run, path.parent / "files")
    assert set(runs) == set(groups)
    for group, label in zip(groups, ("digits · convnet · supcon", "digits · convnet · ce")):
        run, media = runs[group]
        assert run.config["recipe"] == label
        logged = {
            k.split("/")[1]: v
            for row in run.history
            for k, v in row.items()
            if k.startswith("sweep/") and k.endswith("/path")
        }
        assert set(logged) == {"table1", "table2", "nc3"}  # supcon's NC3 row: "—" (None)
        nc3 = json.loads((media / logged["nc3"]).read_text())
        assert {row[0] for row in nc3["data"]} == {label}  # its own rows only
