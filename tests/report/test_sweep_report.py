"""One report per sweep: statuses, mean ± std over seed pairs, bands, W&B summary run."""

from __future__ import annotations

import json
import statistics
import time

import pytest
from omegaconf import OmegaConf

from ncib.recipe import recipe_name
from ncib.report.sweep import (
    FAILED,
    FINISHED,
    NOT_STARTED,
    UNFINISHED,
    MeanStd,
    build_sweep_report,
    is_sweep_dir,
    mean_std,
    write_sweep_report,
)
from ncib.report.tables import scalar
from ncib.rundir.records import append_record, read_records
from tests.conftest import compose_config
from tests.helpers.app import ncib, run_app
from tests.report.test_report import synthetic_record

EPOCHS = (0, 5, 10)
QUICK = ["trainer.max_epochs=10", "analysis.epochs=[0,5,10]"]


def test_mean_std_is_the_sample_statistics():
    assert mean_std([1.0, 2.0, 4.0]) == MeanStd(7 / 3, statistics.stdev([1.0, 2.0, 4.0]), 3)
    assert mean_std([0.5], 100.0) == MeanStd(50.0, None, 1)
    assert mean_std([None, float("nan")]) is None
    assert str(MeanStd(95.123, 0.456, 2)) == "95.12 ± 0.46"


def fake_job(sweep, num, seed_pair, *, acc=None, lin=None, epochs=EPOCHS, report=True, extra=()):
    """A run directory as ``python -m ncib.run`` leaves it (records made up, keys real)."""
    a, b = seed_pair
    run_dir = sweep / f"{num}_digits_seeds{a}-{b}"
    (run_dir / ".hydra").mkdir(parents=True)
    cfg = compose_config([*QUICK, f"seed_pair=[{a},{b}]", *extra])
    cfg.paths.output_dir = "${hydra:runtime.output_dir}"  # as Hydra saves it
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    OmegaConf.save(
        OmegaConf.create({"hydra": {"job": {"num": num}}}), run_dir / ".hydra" / "hydra.yaml"
    )
    OmegaConf.save(
        OmegaConf.create([f"seed_pair=[{a},{b}]", *extra]), run_dir / ".hydra" / "overrides.yaml"
    )
    for e in epochs if acc is not None else ():
        append_record(run_dir / "analysis.jsonl", synthetic_record(e, acc + 0.002 * e))
    if lin is not None:
        (run_dir / "linear_eval.json").write_text(
            json.dumps(
                {
                    "test_acc/m0": lin,
                    "test_acc/m1": lin - 0.01,
                    "train_acc/m0": 1.0,
                    "train_acc/m1": 1.0,
                    "both_correct": lin - 0.03,
                    "num_test": 50,
                }
            )
        )
    if report:
        (run_dir / "report.md").write_text("# report\n")
    return run_dir


def fake_recorded_failure(run_dir, message):
    """What ``python -m ncib.run`` records for a job whose task raised (ncib/rundir/outcome.py)."""
    from ncib.rundir.outcome import OUTCOME_FILE

    (run_dir / OUTCOME_FILE).write_text(
        json.dumps({"status": "failed", "error": f"ValueError: {message}", "time": "t"})
    )


@pytest.fixture
def sweep(tmp_path):
    """Six planned jobs: 0, 1, 2 finished (two recipes), 3 failed, 4 killed half-way, 5 never ran."""
    sweep = tmp_path / "multirun" / "2026-01-01_00-00-00"
    sweep.mkdir(parents=True)
    OmegaConf.save(
        OmegaConf.create(
            {
                "hydra": {
                    "sweeper": {
                        "_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
                        "params": None,
                    },
                    "overrides": {
                        "task": ["seed_pair=[0,1],[2,3],[4,5],[6,7],[8,9],[10,11]", *QUICK]
                    },
                }
            }
        ),
        sweep / "multirun.yaml",
    )
    fake_job(sweep, 0, (0, 1), acc=0.80, lin=0.95)
    fake_job(sweep, 1, (2, 3), acc=0.86, lin=0.91)
    fake_job(sweep, 2, (4, 5), acc=0.70, lin=0.50, extra=["model.temperature=0.5"])
    (sweep / "3_digits_seeds6-7" / ".hydra").mkdir(parents=True)  # Hydra made it; the job raised
    OmegaConf.save(
        OmegaConf.create({"hydra": {"job": {"num": 3}}}),
        sweep / "3_digits_seeds6-7" / ".hydra" / "hydra.yaml",
    )
    fake_recorded_failure(sweep / "3_digits_seeds6-7", "training diverged at epoch 4")
    fake_job(sweep, 4, (8, 9), acc=0.83, epochs=(0, 5), report=False)  # killed after epoch 5
    return sweep


def test_every_job_is_listed_with_its_status(sweep):
    assert is_sweep_dir(sweep) and not is_sweep_dir(sweep / "0_digits_seeds0-1")
    report = build_sweep_report(sweep)
    status = {j.num: (j.status, j.detail) for j in report.jobs}
    assert [status[n][0] for n in range(6)] == [
        FINISHED,
        FINISHED,
        FINISHED,
        FAILED,
        UNFINISHED,
        NOT_STARTED,
    ]
    assert "training diverged at epoch 4" in status[3][1]
    assert "2 of 3 analysis records" in status[4][1] and "epochs [10] missing" in status[4][1]
    assert "no linear_eval.json" in status[4][1] and "no report.md" in status[4][1]
    assert report.jobs[5].overrides[0] == "seed_pair=[10,11]"  # planned, from multirun.yaml
    md = report.markdown
    assert "6 jobs: 3 finished, 1 failed, 1 unfinished, 1 not started" in md
    assert "Not every job finished" in md
    for n, s in ((3, FAILED), (4, UNFINISHED), (5, NOT_STARTED)):
        assert f"| {n} | " in md and f"| {s} |" in md


def test_runs_are_grouped_by_config_minus_the_seed_pair(sweep):
    report = build_sweep_report(sweep)
    by_label = {r.label: sorted(j.num for j in r.jobs) for r in report.recipes}
    assert by_label == {
        "digits · convnet · supcon · model.temperature=0.1": [0, 1, 4],
        "digits · convnet · supcon · model.temperature=0.5": [2],
    }


def test_run_only_settings_do_not_split_a_recipe(sweep):
    path = sweep / "1_digits_seeds2-3" / ".hydra" / "config.yaml"
    cfg = OmegaConf.load(path)
    cfg.cluster.partition, cfg.analysis.progress, cfg.tags = "other", False, ["rerun"]
    path.write_text(OmegaConf.to_yaml(cfg))
    by_label = {r.label: sorted(j.num for j in r.jobs) for r in build_sweep_report(sweep).recipes}
    assert by_label["digits · convnet · supcon · model.temperature=0.1"] == [0, 1, 4]
    cfg.model.optimizer.lr = 0.123  # a recipe setting: a recipe of its own
    path.write_text(OmegaConf.to_yaml(cfg))
    assert len(build_sweep_report(sweep).recipes) == 3


def test_tables_are_mean_and_std_over_the_pairs_of_a_recipe(sweep):
    report = build_sweep_report(sweep)
    t1 = {row[0]: row for row in report.tables["table1"].rows}
    row = t1["digits · convnet · supcon · model.temperature=0.1"]
    runs = [
        json.loads((sweep / d / "linear_eval.json").read_text())
        for d in ("0_digits_seeds0-1", "1_digits_seeds2-3")
    ]
    assert row[1] == 2  # the killed run 4 is not averaged in
    for cell, k in zip(row[2:], ("test_acc/m0", "test_acc/m1", "both_correct")):
        vals = [100 * r[k] for r in runs]
        assert cell.mean == pytest.approx(statistics.mean(vals)) and cell.std == pytest.approx(
            statistics.stdev(vals)
        )
    assert t1["digits · convnet · supcon · model.temperature=0.5"][2] == MeanStd(50.0, None, 1)

    t2 = [r for r in report.tables["table2"].rows if r[0].endswith("0.1")]
    assert [r[2] for r in t2] == ["raw", "normal", "tk"] and all(r[1] == 10 for r in t2)
    last = [
        read_records(sweep / d / "analysis.jsonl")[-1]
        for d in ("0_digits_seeds0-1", "1_digits_seeds2-3")
    ]
    for row in t2:
        kind = row[2]
        m0 = [100 * scalar(r, f"probe/test_acc/{kind}/m0") for r in last]
        m1 = [100 * scalar(r, f"probe/test_acc/{kind}/m1") for r in last]
        both = [(a + b) / 2 for a, b in zip(m0, m1)]
        assert (row[4].mean, row[4].std) == pytest.approx(
            (statistics.mean(m0), statistics.stdev(m0))
        )
        assert (row[5].mean, row[5].std) == pytest.approx(
            (statistics.mean(m1), statistics.stdev(m1))
        )
        assert (row[6].mean, row[6].std) == pytest.approx(
            (statistics.mean(both), statistics.stdev(both))
        )
    assert "| digits · convnet · supcon · model.temperature=0.1 | 2 | " in report.markdown


def test_bands_are_per_epoch_over_pairs(sweep):
    from ncib.report.series import jobs_series

    report = build_sweep_report(sweep)
    recipe = next(r for r in report.recipes if r.label.endswith("0.1"))
    ys = jobs_series(recipe.finished, "etf/equinorm/{space}/{member}", space="tk")
    assert ys.epochs == EPOCHS
    for e, mean, std, n in zip(ys.epochs, ys.mean, ys.std, ys.n):
        per_pair = [0.3 / (1 + e)] * 2  # synthetic: both members, both pairs
        assert mean == pytest.approx(statistics.mean(per_pair)) and std == pytest.approx(0.0)
        assert n == 2
    probe = "probe/{split}_acc/{probe_input}/{member}"
    ys = jobs_series(recipe.finished, probe, split="test", probe_input="raw")
    for e, mean, std in zip(ys.epochs, ys.mean, ys.std):
        pairs = [((acc + 0.002 * e) + (acc + 0.002 * e - 0.01)) / 2 for acc in (0.80, 0.86)]
        assert mean == pytest.approx(statistics.mean(pairs))
        assert std == pytest.approx(statistics.stdev(pairs))
    written = write_sweep_report(sweep)
    assert written.path.read_text() == written.markdown
    figs = written.figures[recipe.label]
    assert set(figs) == {"fig2", "fig3", "identifiability_information"}
    assert all(p.is_file() and p.parent.name == "sweep_figures" for p in figs.values())


def test_the_tables_go_to_wandb_when_the_runs_did(sweep, tmp_path, monkeypatch):
    from tests.helpers.wandb_offline import read_offline_run

    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    for d in ("0_digits_seeds0-1", "1_digits_seeds2-3", "4_digits_seeds8-9"):
        (sweep / d / "wandb").mkdir()  # these runs were logged to W&B (the default logger)
    from ncib.tracking.uploads import log_sweep_to_wandb

    report = write_sweep_report(sweep)
    log_sweep_to_wandb(report)
    files = sorted((sweep / "wandb").glob("offline-run-*/*.wandb"))
    assert len(files) == 1  # one summary run: the recipe whose runs went to W&B
    run = read_offline_run(files[0])
    job = OmegaConf.load(sweep / "0_digits_seeds0-1" / ".hydra" / "config.yaml")
    assert run.run.job_type == "sweep-summary" and run.run.run_group == recipe_name(job)
    assert run.config["recipe"] == "digits · convnet · supcon · model.temperature=0.1"
    assert run.config["status"] == {"0": FINISHED, "1": FINISHED, "4": UNFINISHED}
    tables = {
        k.split("/")[1]: v
        for row in run.history
        for k, v in row.items()
        if k.startswith("sweep/table") and k.endswith("/path")
    }
    assert set(tables) == {"table1", "table2"}
    media = files[0].parent / "files"
    t1 = json.loads((media / tables["table1"]).read_text())
    row = dict(zip(t1["columns"], t1["data"][0]))
    ref = report.tables["table1"].rows[0]
    assert row["m0 mean"] == pytest.approx(ref[2].mean) and row["m0 std"] == pytest.approx(
        ref[2].std
    )
    assert len(t1["data"]) == 1  # only its recipe's rows


def test_the_command_dispatches_run_and_sweep_directories(sweep):
    out = ncib("ncib.report", sweep, "--no-wandb", cwd=sweep.parent)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "3 finished, 1 failed, 1 unfinished, 1 not started" in out.stdout
    assert (sweep / "sweep_report.md").is_file() and not (sweep / "wandb").exists()


@pytest.mark.slow
def test_a_real_sweep_with_a_failing_job(tmp_path):
    """Two digits pairs and one job that ncib's config check rejects, through submitit."""
    sweep = tmp_path / "sweep"
    started = time.monotonic()
    proc = run_app(
        "-m",
        "hydra/launcher=local",
        "seed_pair=[0,1],[2,3],[4,4]",
        "trainer.max_epochs=2",
        "analysis.epochs=[1,2]",
        "linear_eval.epochs=1",
        "logger=csv",
        "analysis.checkpoints=false",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        timeout=1200,
        env={"NCIB_DATA_DIR": str(tmp_path / "data")},
    )
    print(f"sweep: {time.monotonic() - started:.0f} s")
    assert (
        proc.returncode != 0 and "seed_pair must hold exactly two different integers" in proc.stderr
    )
    out = ncib("ncib.report", sweep, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    report = build_sweep_report(sweep)
    assert [(j.num, j.status) for j in report.jobs] == [(0, FINISHED), (1, FINISHED), (2, FAILED)]
    assert "ConfigError" in report.jobs[2].detail and "[4, 4]" in report.jobs[2].detail
    (recipe,) = report.recipes
    assert [j.seed_pair for j in recipe.finished] == [(0, 1), (2, 3)]
    runs = [json.loads((j.run_dir / "linear_eval.json").read_text()) for j in recipe.finished]
    (row,) = report.tables["table1"].rows
    for cell, k in zip(row[2:], ("test_acc/m0", "test_acc/m1", "both_correct")):
        vals = [100 * r[k] for r in runs]
        assert (cell.mean, cell.std) == pytest.approx(
            (statistics.mean(vals), statistics.stdev(vals))
        )
    last = [read_records(j.run_dir / "analysis.jsonl")[-1] for j in recipe.finished]
    tk = next(r for r in report.tables["table2"].rows if r[2] == "tk")
    means = [
        100 * (scalar(r, "probe/test_acc/tk/m0") + scalar(r, "probe/test_acc/tk/m1")) / 2
        for r in last
    ]
    assert (tk[6].mean, tk[6].std) == pytest.approx(
        (statistics.mean(means), statistics.stdev(means))
    )
    md = (sweep / "sweep_report.md").read_text()
    assert "2 finished, 1 failed" in md and "| 2 | 2_digits_seeds4-4 | 4/4 |" in md
