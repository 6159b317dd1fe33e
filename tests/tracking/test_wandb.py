"""W&B that reads like the paper: config, names, axes and files of a real offline run."""

from __future__ import annotations

import re

import pytest
from omegaconf import OmegaConf

from ncib.metrics import GROUPS, keys, logged_name
from ncib.recipe import recipe_name
from ncib.rundir.records import read_records
from ncib.tracking.wandb_run import (
    ANALYSIS_STEP,
    ARTIFACT_TYPE,
    EPOCH_STEP,
    group_name,
    init_kwargs,
    step_metric_for,
)
from tests.helpers.app import ncib
from tests.helpers.wandb_offline import read_offline_run


@pytest.fixture(scope="module")
def offline_run(digits_run):
    """The shared digits run (tests/conftest.py) and its offline W&B run, read back."""
    return digits_run, read_offline_run(digits_run.path)


def test_the_resolved_config_is_the_runs_config(offline_run):
    shared, run = offline_run
    run_dir = shared.path
    composed = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    cfg = run.config
    assert cfg["dataset"]["name"] == "digits" and cfg["seed_pair"] == [0, 1]
    assert cfg["trainer"]["max_epochs"] == shared.max_epochs
    assert cfg["analysis"]["epochs"] == list(composed.analysis.epochs)
    assert cfg["tags"] == ["paper"]  # the command line's
    assert cfg["model"]["optimizer"]["lr"] == composed.model.optimizer.lr
    assert cfg["backbone"]["_target_"] == "ncib.models.ConvNet"  # data, not a built object
    assert cfg["dataset"]["datamodule"]["seeds"] == [0, 1]  # interpolations resolved
    assert cfg["paths"]["output_dir"] == str(run_dir)
    assert cfg["ncib_run"] == {
        "seed_pair": "0-1",
        "sweep": "single",
        "run_dir": str(run_dir),
        "backbone": "convnet",
    }
    assert "hydra" not in cfg
    # Lightning's hyper-parameters are kept apart from the composed config
    assert cfg["lightning_hparams"]["seeds"] == [0, 1] and "temperature" not in cfg


def test_names_group_job_type_and_tags(offline_run):
    shared, run = offline_run
    composed = OmegaConf.load(shared.path / ".hydra" / "config.yaml")
    assert run.run.run_group == recipe_name(composed)
    assert re.fullmatch(r"digits/convnet-[0-9a-f]{8}", run.run.run_group)
    assert run.run.job_type == "digits"
    assert run.run.display_name == "digits_seeds0-1"
    assert list(run.run.tags) == ["paper", "digits", "convnet"]


def test_axes_analysis_against_analysis_epoch_training_against_epoch(offline_run):
    _, run = offline_run
    assert run.glob_step("analysis/*") == ANALYSIS_STEP
    assert run.glob_step("train/*") == EPOCH_STEP and run.glob_step("lr-*") == EPOCH_STEP
    # every analysis key by name too (W&B tries its globs in no fixed order, and Lightning's
    # own "*" glob points at trainer/global_step)
    for group in ("identifiability", "gib", "simplex_etf"):
        for k in keys(group):
            assert run.step_of(logged_name(group, k)) == ANALYSIS_STEP, k
    for k in keys("train"):
        assert run.step_of(k) == EPOCH_STEP, k
    assert run.step_of("lr-SGD") == EPOCH_STEP


def test_history_rows_carry_their_steps(offline_run):
    shared, run = offline_run
    analysis_rows = [h for h in run.history if "analysis/nc1/raw/m0" in h]
    assert [h[ANALYSIS_STEP] for h in analysis_rows] == list(shared.analysed)
    train_rows = [h for h in run.history if "train/loss/m0" in h]
    assert [h[EPOCH_STEP] for h in train_rows] == list(range(shared.max_epochs))
    # the learning rate of each epoch sits on that epoch's row (warm-up: it grows)
    lrs = [h["lr-SGD"] for h in train_rows]
    assert len(lrs) == shared.max_epochs and 0 < lrs[0] < lrs[1]
    assert not any("lr-SGD" in h and EPOCH_STEP not in h for h in run.history)


def test_linear_evaluation_is_a_summary_not_a_curve(offline_run):
    shared, run = offline_run
    table1 = __import__("json").loads((shared.path / "linear_eval.json").read_text())
    for k in keys("linear_eval"):
        name = logged_name("linear_eval", k)
        assert run.summary[name] == pytest.approx(table1[k]), name
        assert not any(name in h for h in run.history), name


def test_the_run_files_are_an_artifact(offline_run):
    shared, run = offline_run
    run_dir = shared.path
    artifacts = run.artifact_paths(ARTIFACT_TYPE)
    assert list(artifacts) == [f"ncib-run-{run.run.run_id}"]
    paths = next(iter(artifacts.values()))
    figures = sorted(f"figures/{p.name}" for p in (run_dir / "figures").glob("*.png"))
    assert figures and set(paths) == {
        "analysis.jsonl",
        "linear_eval.json",
        "report.md",
        ".hydra/config.yaml",
        *figures,
    }
    # the manifest's digests are those of the files as they are now (uploaded after the report)
    import base64
    import hashlib

    art = next(a for a in run.artifacts if a.type == ARTIFACT_TYPE)
    for entry in art.manifest.contents:
        digest = base64.b64encode(
            hashlib.md5((run_dir / entry.path).read_bytes()).digest()
        ).decode()
        assert entry.digest == digest, entry.path


def test_the_dashboard_refers_to_names_this_run_logged(offline_run):
    pytest.importorskip("wandb_workspaces")
    from ncib.tracking.dashboard import build_dashboard, panel_keys

    _, run = offline_run
    seen = set(run.summary) | {k for row in run.history for k in row}
    missing = {k for _, names in panel_keys(build_dashboard("e", "p")) for k in names} - seen
    assert not missing


# -- without a run ---------------------------------------------------------------------------


def test_step_rules_cover_every_logged_history_key():
    for group, (_, prefix) in GROUPS.items():
        for k in keys(group):
            step = step_metric_for(logged_name(group, k))
            assert (
                step == {"analysis/": ANALYSIS_STEP, "": EPOCH_STEP, "linear_eval/": None}[prefix]
            ), k


def _sweep_job(root, job_overrides, sweep_overrides):
    sweep = root / "2026-01-01_00-00-00"
    job = sweep / "1_digits_seeds2-3"
    (job / ".hydra").mkdir(parents=True)
    OmegaConf.save(
        OmegaConf.create({"hydra": {"overrides": {"task": sweep_overrides}}}),
        sweep / "multirun.yaml",
    )
    OmegaConf.save(OmegaConf.create(job_overrides), job / ".hydra" / "overrides.yaml")
    return sweep, job


def test_group_is_one_recipe_whatever_started_it(cfg_factory, tmp_path):
    cfg = cfg_factory("experiment_name=paper")
    alone = group_name(cfg, tmp_path / "alone")
    assert alone == recipe_name(cfg) and alone.startswith("paper/convnet-")
    # another recipe, another group; a single run of it and a sweep's job of it share one
    other = cfg_factory("experiment_name=paper", "model.temperature=0.5", "trainer.max_epochs=2")
    assert group_name(other) != alone
    sweep, job = _sweep_job(
        tmp_path,
        ["seed_pair=[2,3]", "model.temperature=0.5", "trainer.max_epochs=2"],
        ["seed_pair=[0,1],[2,3]", "model.temperature=0.1,0.5", "trainer.max_epochs=2"],
    )
    assert group_name(other, job) == group_name(other, tmp_path / "single")
    seeds = cfg_factory(
        "experiment_name=paper", "model.temperature=0.5", "trainer.max_epochs=2", "seed_pair=[4,5]"
    )
    assert group_name(seeds, sweep / "0_digits_seeds4-5") == group_name(other)  # another sweep
    # the seed pair and the run-only settings never split a recipe
    same = cfg_factory(
        "experiment_name=paper",
        "seed_pair=[6,7]",
        "cluster.partition=gpu",
        "cluster.time_min=60",
        "analysis.progress=false",
        "tags=[x]",
        "logger.wandb.project=elsewhere",
        "report=false",
    )
    assert group_name(same) == alone
    for differs in ("model.optimizer.lr=0.3", "analysis.k=3", "cluster.gpus_per_node=2"):
        assert group_name(cfg_factory("experiment_name=paper", differs)) != alone, differs
    chosen = cfg_factory("logger.wandb.group=mine")
    assert group_name(chosen, job) == "mine"


def test_recipe_prints_a_runs_group(cfg_factory, tmp_path, capsys):
    from ncib.recipe import main

    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    cfg = cfg_factory("model.temperature=0.2")
    (run / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    main([str(run), "--keys"])
    out = capsys.readouterr().out
    assert out.startswith(f"{recipe_name(cfg)}\t{run}\n") and "  model.temperature = 0.2" in out
    assert "\n  seed_pair = " not in out and "\n  paths." not in out


def test_init_kwargs_are_data_for_wandb(cfg_factory, tmp_path):
    cfg = cfg_factory("tags=[a,digits]", "seed_pair=[4,9]")
    kw = init_kwargs(cfg, "abc123")
    assert kw["id"] == "abc123" and kw["resume"] == "allow"
    assert kw["tags"] == ["a", "digits", "convnet"]
    assert kw["group"] == recipe_name(cfg)
    assert (
        kw["run_config"]["seed_pair"] == [4, 9]
        and kw["run_config"]["ncib_run"]["seed_pair"] == "4-9"
    )
    # Hydra must hand the config over as data, not build its _target_ nodes
    assert kw["_recursive_"] is False
    lightning = cfg_factory("logger.wandb._target_=pytorch_lightning.loggers.WandbLogger")
    assert "run_config" not in init_kwargs(lightning, None)  # it would reach wandb.init and fail
    no_wandb = init_kwargs(cfg_factory("logger=csv"), None)
    assert no_wandb == {"id": None, "resume": "allow"}


def test_a_reanalysis_goes_to_the_run_it_analyses(digits_run, tmp_path):
    """``ncib.analyse`` resumes the analysed run's W&B run (its id in ``.ncib/wandb_id``) and
    logs the re-analysis under its own names and x-axis."""
    run_dir = digits_run.copy_to(tmp_path / "run")
    env = {
        "WANDB_DATA_DIR": str(tmp_path / "wandb-data"),
        "WANDB_CACHE_DIR": str(tmp_path / "wandb-cache"),
    }
    again = ncib(
        "ncib.analyse",
        run_dir,
        "analysis.k=3",
        "--name",
        "k3",
        "--epochs",
        1,
        cwd=tmp_path,
        env=env,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    files = sorted(run_dir.glob("wandb/offline-run-*/*.wandb"))
    assert len(files) == 2  # the training run and its resumption by the re-analysis
    first, second = (read_offline_run(f) for f in files)
    wandb_id = (run_dir / ".ncib" / "wandb_id").read_text().strip()
    assert first.run.run_id == second.run.run_id == wandb_id
    assert second.glob_step("reanalysis/k3/*") == "reanalysis/k3/epoch"
    (row,) = [r for r in second.history if "reanalysis/k3/epoch" in r]
    recorded = read_records(run_dir / "analysis-k3.jsonl")[0]
    assert row["reanalysis/k3/epoch"] == 1
    assert row["reanalysis/k3/analysis/gib/mi_xy"] == pytest.approx(
        recorded["gib"]["scalars"]["gib/mi_xy"]
    )
    assert second.summary["reanalysis/k3/overrides"] == ["analysis.k=3"]
    assert not any(k.startswith("reanalysis/") for r in first.history for k in r)
