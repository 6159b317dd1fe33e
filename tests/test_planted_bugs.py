"""Six realistic bugs that the other tests let through, and two that they caught only by
accident (issue 22): each test here fails with its bug planted (docs/testing.md lists the
patches). Known answers or slow, obviously correct references; nothing is compared with ncib's
own output for the same thing."""

from __future__ import annotations

import csv
import json
import logging
import shutil

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from ncib.config import ConfigError
from ncib.data import DigitsDataModule
from ncib.rundir.records import append_record, atomic_torch_save, read_records
from tests.conftest import compose_config

# -- 1. Table 1 is fitted on the training split --------------------------------------------------


class ShiftedTestLabels(DigitsDataModule):
    """Digits whose test labels are the true digit plus one (mod 10): a linear layer fitted on
    the training split predicts the true digit and scores near zero on this test split; one
    fitted on the test split scores as well as usual."""

    def load(self):
        splits = super().load()
        images, labels = splits["test"]
        return {**splits, "test": (images, (labels + 1) % 10)}


@pytest.mark.parametrize(
    "settings",
    [{"views": "none"}, {"views": "train"}],
    ids=["cached", "views"],
)
def test_table_1_is_fitted_on_the_training_split_only(settings):
    import importlib.resources

    from ncib.linear_eval import train_linear_evaluation
    from tests.helpers.builders import tiny_pair

    model = tiny_pair([0, 1])
    cfg = OmegaConf.create(
        (importlib.resources.files("ncib.conf") / "linear_eval" / "cached.yaml").read_text()
    )
    cfg.merge_with({"epochs": 8, **settings})
    out = train_linear_evaluation(
        model, ShiftedTestLabels(seeds=[0, 1]), cfg, accelerator="cpu", progress=False
    )
    for m in ("m0", "m1"):
        assert out[f"train_acc/{m}"] > 0.5, out  # it learnt the digits (chance: 0.1)
        assert out[f"test_acc/{m}"] < 0.15, out  # …from the training labels, not the test's


# -- 2. the probe standardises the test split with the training moments --------------------------


def test_the_probe_standardises_a_shifted_test_split_with_the_training_moments():
    """Known answer: two classes at x = ∓1 on the training split, the test split shifted by
    +10. Standardised with the training mean and std every test point lies far on the class-1
    side (accuracy exactly 1/2); standardised with its own moments it would look like the
    training split (accuracy 1)."""
    from ncib.analysis import fit_logistic_probe

    g = torch.Generator().manual_seed(0)
    y = torch.arange(200) % 2
    h = (2.0 * y - 1.0).double()[:, None] + 0.1 * torch.randn(200, 1, generator=g).double()
    res = fit_logistic_probe(h, y, h + 10.0, y)
    assert float(res.train_acc) == 1.0
    assert res.test_pred.tolist() == [1] * 200 and float(res.test_acc) == 0.5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_probe_test_predictions_follow_the_training_standardisation(seed):
    """Under a distribution shift (scaled and moved test features, as in zero-shot transfer),
    the test predictions are those of the fitted weights on ``(h_test − μ_train)/σ_train``,
    with the moments computed here by numpy."""
    from ncib.analysis import fit_logistic_probe

    rng = np.random.default_rng(seed)
    centres = 3.0 * rng.standard_normal((4, 6))
    y, y_test = np.arange(400) % 4, np.arange(200) % 4
    h = centres[y] + rng.standard_normal((400, 6)) * rng.uniform(0.5, 3.0, 6)
    h_test = 1.7 * (centres[y_test] + rng.standard_normal((200, 6))) + rng.uniform(-4, 4, 6)
    res = fit_logistic_probe(*map(torch.tensor, (h, y, h_test, y_test)))
    mean, std = h.mean(0), h.std(0)  # population std, as documented
    logits = (h_test - mean) / std @ res.weight.numpy() + res.bias.numpy()
    assert res.test_pred.tolist() == logits.argmax(1).tolist()
    own = (h_test - h_test.mean(0)) / h_test.std(0) @ res.weight.numpy() + res.bias.numpy()
    assert own.argmax(1).tolist() != logits.argmax(1).tolist()  # the shift matters here


# -- 3. resume: exactly the documented keys may change --------------------------------------------

# README.md "Runs that survive" and docs: only these may change on resume (written here, not
# imported: widening ncib's own list must fail this test)
MAY_CHANGE = {"trainer.max_epochs", "trainer.max_steps", "analysis.progress", "resume", "ckpt_path"}


def _leaves(node, prefix=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, f"{prefix}{k}.")
    else:
        yield prefix[:-1], node


def _changed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "_changed"
    if isinstance(value, list):
        return [*value, value[-1] if value else 1]
    return 1  # None


def _set(container: dict, key: str, value) -> dict:
    node = container
    *parents, last = key.split(".")
    for p in parents:
        node = node[p]
    node[last] = value
    return container


def _resumable(run_dir, cfg, epochs_done: int, step: int):
    """A run directory as a start of ``cfg`` leaves it after ``epochs_done`` epochs."""
    for sub in (".hydra", ".ncib", "checkpoints"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    OmegaConf.save(cfg, run_dir / ".ncib" / "config.yaml")
    state = {
        "state_dict": {},
        "epoch": epochs_done - 1,  # Lightning's 0-based index of the epoch that ended
        "global_step": step,
        "optimizer_states": [],
        "loops": {},
    }
    atomic_torch_save(state, run_dir / "checkpoints" / "last.ckpt")


def test_resume_refuses_a_change_of_every_key_but_the_documented_few(tmp_path):
    from ncib.rundir.resume import prepare_run_dir

    run_dir = tmp_path / "run"
    cfg = compose_config([], output_dir=run_dir)
    _resumable(run_dir, cfg, epochs_done=2, step=10)
    first = OmegaConf.to_container(cfg, resolve=False)
    leaves = dict(_leaves(first))
    assert {"analysis.k", "analysis.ridge", "analysis.max_samples", "analysis.epochs"} <= set(
        leaves
    )
    allowed, refused = [], []
    # resume=false refuses any directory that holds a run (tested in test_resume.py)
    leaves.pop("resume")
    for key, value in leaves.items():
        new = str(run_dir / "checkpoints" / "last.ckpt") if key == "ckpt_path" else _changed(value)
        changed = OmegaConf.create(_set(OmegaConf.to_container(cfg, resolve=False), key, new))
        try:
            prepare_run_dir(changed, run_dir)
            allowed.append(key)
        except ConfigError as err:
            assert f"{key}: " in str(err)
            refused.append(key)
    assert set(allowed) == MAY_CHANGE & set(leaves), sorted(set(allowed) ^ MAY_CHANGE)
    assert len(refused) == len(leaves) - len(allowed) > 50


# -- 4. the sweep averages finished runs only ------------------------------------------------------


def test_a_run_killed_after_table_1_but_before_its_end_is_not_averaged(tmp_path):
    from ncib.report.sweep import FINISHED, UNFINISHED, build_sweep_report
    from tests.report.test_sweep_report import fake_job

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    hydra = {"sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"}}
    hydra["overrides"] = {"task": ["seed_pair=[0,1],[2,3],[4,5]"]}
    OmegaConf.save(OmegaConf.create({"hydra": hydra}), sweep / "multirun.yaml")
    fake_job(sweep, 0, (0, 1), acc=0.8, lin=0.90)
    fake_job(sweep, 1, (2, 3), acc=0.8, lin=0.80)
    fake_job(sweep, 2, (4, 5), acc=0.8, lin=0.10, report=False)  # killed writing the report
    report = build_sweep_report(sweep)
    assert [j.status for j in report.jobs] == [FINISHED, FINISHED, UNFINISHED]
    assert "no report.md" in report.jobs[2].detail
    (row,) = report.tables["table1"].rows
    finished = [
        json.loads((sweep / d / "linear_eval.json").read_text())["test_acc/m0"]
        for d in ("0_digits_seeds0-1", "1_digits_seeds2-3")
    ]
    assert row[1] == 2 and row[2].n == 2
    assert row[2].mean == pytest.approx(100 * sum(finished) / 2)


# -- 5. metrics.csv after a graceful stop and resume ---------------------------------------------

# what a run left after SIGTERM in epoch 2 (0-based; 5 steps per epoch, last.ckpt after epoch 1,
# step 10), as Lightning's CSV logger flushes it on the way out: the learning rate of epoch 2
# is logged at step 10, the step of the checkpoint, beside epoch 2's analysis
GRACEFUL_STOP_ROWS = [
    {"step": "0", "lr-SGD": "0.005"},
    {"step": "4", "epoch": "0", "train/loss/m0": "6.0"},
    {"step": "5", "lr-SGD": "0.031"},
    {"step": "10", "analysis/epoch": "2.0", "analysis/k": "10"},
    {"step": "9", "epoch": "1", "train/loss/m0": "5.2"},
    {"step": "10", "lr-SGD": "0.057"},
]


def test_a_resume_after_a_graceful_stop_drops_the_learning_rate_it_logs_again(tmp_path):
    from ncib.rundir.resume import prepare_run_dir

    run_dir = tmp_path / "run"
    cfg = compose_config([], output_dir=run_dir)
    _resumable(run_dir, cfg, epochs_done=2, step=10)
    fields = sorted({k for r in GRACEFUL_STOP_ROWS for k in r})
    (run_dir / "csv").mkdir()
    with open(run_dir / "csv" / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(GRACEFUL_STOP_ROWS)
    prepare_run_dir(cfg, run_dir)
    with open(run_dir / "csv" / "metrics.csv", newline="") as f:
        kept = [{k: v for k, v in r.items() if v} for r in csv.DictReader(f)]
    assert kept == GRACEFUL_STOP_ROWS[:5]  # epoch 2's rate goes: the resumed epoch 2 logs it


def _no_value_twice(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    seen = {}
    for r in rows:
        for k, v in r.items():
            if v and k not in ("step", "epoch"):
                assert (r["step"], k) not in seen, f"{k} logged twice at step {r['step']}"
                seen[(r["step"], k)] = v
    return seen


@pytest.mark.slow
def test_a_real_graceful_stop_and_resume_logs_each_value_once(tmp_path):
    from tests.helpers.app import run_app

    command = [
        "trainer.max_epochs=4", "analysis.epochs=[2,4]",
        "linear_eval.epochs=1", "logger=csv", "dataset.datamodule.batch_size=256",
        "+callbacks.sigterm._target_=tests.helpers.signals.SigtermOnce",
        "+callbacks.sigterm.epoch=2", "+callbacks.sigterm.batch=1",
        f"+callbacks.sigterm.flag={tmp_path / 'sent'}", f"hydra.run.dir={tmp_path / 'run'}",
    ]  # fmt: skip
    stopped = run_app(*command, cwd=tmp_path)
    assert (tmp_path / "sent").exists() and stopped.returncode is not None
    assert "Received SIGTERM" in (tmp_path / "run" / "run.log").read_text()
    resumed = run_app(*command, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    seen = _no_value_twice(tmp_path / "run" / "csv" / "metrics.csv")
    assert sum(k.startswith("lr-") for _, k in seen) == 4  # one rate per epoch


# -- 6. the last epoch is not beyond max_epochs ---------------------------------------------------


@pytest.mark.parametrize(
    "epochs,late", [([0, 1, 3], None), ([3], None), ([2, 3, 4], "[4]"), ([4, 7], "[4, 7]")]
)
def test_only_epochs_after_the_last_are_warned_about(tmp_path, caplog, epochs, late):
    from ncib.config import validate

    cfg = compose_config(
        ["trainer.max_epochs=3", f"analysis.epochs=[{','.join(map(str, epochs))}]"],
        output_dir=tmp_path,
    )
    with caplog.at_level(logging.WARNING, logger="ncib.config"):
        validate(cfg)
    warned = [r.getMessage() for r in caplog.records if "will not be analysed" in r.getMessage()]
    if late is None:
        assert warned == []
    else:
        assert len(warned) == 1 and f"analysis.epochs {late} lie beyond" in warned[0]


# -- accidental kill 1: NCC with members of equal width -------------------------------------------


def _nearest_centre(h_train, y_train, h, k):
    """Slow NCC: the class whose training mean is nearest, by a loop over samples."""
    means = [h_train[y_train == c].mean(0) for c in range(k)]
    return [int(np.argmin([float(((row - mu) ** 2).sum()) for mu in means])) for row in h]


@pytest.mark.parametrize("seed", [0, 1])
def test_ncc_uses_each_members_own_class_means_at_equal_widths(seed):
    from ncib.analysis import PairAnalysis
    from tests.analysis.conftest import collapsed_pair

    train, test, y, y_test = collapsed_pair(seed, d=16, noise=1.0)
    assert train[0].shape == train[1].shape  # equal widths: a mix-up would not crash
    pa = PairAnalysis(train, test, y, y_test, num_classes=4)
    for m in (0, 1):
        h_train = pa.features("raw", m, "train").numpy()
        for split in ("train", "test"):
            h = pa.features("raw", m, split).numpy()
            expected = _nearest_centre(h_train, y.numpy(), h, 4)
            assert pa.ncc("raw", m, split).tolist() == expected, (m, split)
    other = _nearest_centre(pa.features("raw", 1, "train").numpy(), y.numpy(),
                            pa.features("raw", 0, "test").numpy(), 4)  # fmt: skip
    assert other != pa.ncc("raw", 0, "test").tolist()  # the members' means differ here


# -- accidental kill 2: the record cut at a kill where < and <= differ ----------------------------


def test_a_resume_keeps_the_record_of_the_epoch_its_checkpoint_ends(tmp_path):
    """Analysis at epochs 1, 2, 3; killed after epoch 3's record and before its checkpoint:
    last.ckpt holds epoch 2's end, so records 1 and 2 stay and 3 is written again."""
    from ncib.rundir.resume import prepare_run_dir

    run_dir = tmp_path / "run"
    cfg = compose_config(["analysis.epochs=[1,2,3]", "trainer.max_epochs=3"], output_dir=run_dir)
    _resumable(run_dir, cfg, epochs_done=2, step=10)
    for epoch in (1, 2, 3):
        append_record(run_dir / "analysis.jsonl", {"epoch": epoch})
    plan = prepare_run_dir(cfg, run_dir)
    assert plan.epochs_done == 2
    assert [r["epoch"] for r in read_records(run_dir / "analysis.jsonl")] == [1, 2]


@pytest.mark.slow
def test_a_real_kill_after_a_record_resumes_with_every_analysis_epoch_once(tmp_path):
    from tests.helpers.app import run_app

    command = [
        "trainer.max_epochs=3", "analysis.epochs=[1,2,3]",
        "linear_eval.epochs=1", "logger=csv", "dataset.datamodule.batch_size=256",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]  # fmt: skip
    killed = run_app(*command, cwd=tmp_path, env={"NCIB_FAULT": "after_record:2"})
    assert killed.returncode < 0  # SIGKILL after epoch 2's record, before its checkpoint
    assert [r["epoch"] for r in read_records(tmp_path / "run" / "analysis.jsonl")] == [1, 2]
    shutil.copytree(tmp_path / "run", tmp_path / "killed")
    resumed = run_app(*command, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    records = read_records(tmp_path / "run" / "analysis.jsonl")
    assert [r["epoch"] for r in records] == [1, 2, 3]
    before = read_records(tmp_path / "killed" / "analysis.jsonl")
    assert records[0] == before[0]  # epoch 1's record was kept, not recomputed
