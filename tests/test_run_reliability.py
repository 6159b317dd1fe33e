"""What a start, a stop and a bad setting leave behind (issue 22, "every bad file and setting
named"): SIGTERM exits non-zero, a failed first start does not block the corrected command,
linear-evaluation settings are checked before training, a report is never replaced by an
empty one, a re-analysis names the epochs it lacks, a torn CSV row and a cut write's temporary
file are cleaned up on the next start, a changed horizon says what it does to the schedule,
and a path with '=' gets a quoting hint (docs/cluster.md, "What a start and a stop leave")."""

from __future__ import annotations

import csv
import json
import logging
import shutil

import pytest
import torch
from omegaconf import OmegaConf

from ncib.config import ConfigError, validate
from ncib.rundir.outcome import OUTCOME_FILE
from tests.conftest import compose_config
from tests.helpers.app import in_process, ncib

BASE = [
    "trainer.max_epochs=2",
    "analysis.epochs=[1,2]",
    "analysis.intervals=null",  # no test here reads them
    "linear_eval.epochs=1",
    "logger=csv",
    "dataset.datamodule.batch_size=256",
]


# the runs here build a test callback: admitted for analyse and linear_eval
TRUSTED = {"NCIB_TRUSTED_TARGETS": "tests.helpers.signals"}


@pytest.fixture(scope="module")
def stopped_then_finished(tmp_path_factory):
    """A real run stopped by SIGTERM in its second epoch, then the same command again: the
    first process's result and the finished run directory."""
    root = tmp_path_factory.mktemp("sigterm")
    run_dir = root / "run"
    command = [
        *BASE,
        "+callbacks.sigterm._target_=tests.helpers.signals.SigtermOnce",
        "+callbacks.sigterm.epoch=1",
        "+callbacks.sigterm.batch=1",
        f"+callbacks.sigterm.flag={root / 'sent'}",
        f"hydra.run.dir={run_dir}",
    ]
    stopped = ncib("ncib.run", *command, cwd=root, env=TRUSTED)
    state = {
        "checkpoint": (run_dir / "checkpoints" / "last.ckpt").is_file(),
        "outcome": json.loads((run_dir / OUTCOME_FILE).read_text()),
        "table1": (run_dir / "linear_eval.json").exists(),
        "report": (run_dir / "report.md").exists(),
    }
    finished = ncib("ncib.run", *command, cwd=root, env=TRUSTED)
    assert finished.returncode == 0, finished.output[-3000:]
    return stopped, state, run_dir


def test_sigterm_exits_143_unfinished_and_the_same_command_finishes(stopped_then_finished):
    stopped, state, run_dir = stopped_then_finished
    assert stopped.returncode == 143, stopped.output[-3000:]
    assert "stopped by SIGTERM" in stopped.output and "resumes it" in stopped.output
    assert state["checkpoint"] and state["outcome"]["status"] == "interrupted"
    assert not state["table1"] and not state["report"]
    assert (run_dir / "linear_eval.json").is_file() and (run_dir / "report.md").is_file()


# -- linear evaluation settings, before any training -------------------------------------------


@pytest.mark.parametrize(
    "override,key",
    [
        ("linear_eval.epochs=0", "linear_eval.epochs=0"),
        ("linear_eval.batch_size=0", "linear_eval.batch_size=0"),
        ("linear_eval.views=cropflip", "linear_eval.views='cropflip'"),
        ("linear_eval.module.optimizer.lr=0", "linear_eval.module.optimizer.lr=0"),
        ("linear_eval.standardize=maybe", "linear_eval.standardize='maybe'"),
    ],
)
def test_every_linear_eval_setting_is_checked_by_the_validation(override, key, tmp_path):
    cfg = compose_config([override], output_dir=tmp_path)
    with pytest.raises(ConfigError, match=f"^{key} cannot be used"):
        validate(cfg)


def test_a_bad_linear_eval_setting_fails_before_training(tmp_path):
    run_dir = tmp_path / "run"
    proc = ncib(
        "ncib.run", "linear_eval.epochs=0", f"hydra.run.dir={run_dir}", cwd=tmp_path, timeout=120
    )
    assert proc.returncode != 0 and "linear_eval.epochs=0 cannot be used" in proc.output
    assert not (run_dir / "checkpoints").exists()


def test_linear_eval_takes_overrides_and_checks_them_first(
    stopped_then_finished, tmp_path, monkeypatch
):
    from ncib.linear_eval import main

    _, _, run_dir = stopped_then_finished
    for name, value in TRUSTED.items():
        monkeypatch.setenv(name, value)
    proc = in_process(main, run_dir, "linear_eval.batch_size=0")  # refused before any work
    assert proc.returncode == 2 and "linear_eval.batch_size=0 cannot be used" in proc.output
    proc = ncib(
        "ncib.linear_eval",
        run_dir,
        "linear_eval.batch_size=64",
        "--output",
        "again.json",
        cwd=tmp_path,
        env=TRUSTED,
    )
    assert proc.returncode == 0, proc.output[-3000:]
    again = json.loads((run_dir / "again.json").read_text())
    assert 0.0 <= again["test_acc/m0"] <= 1.0


# -- a failed first start ----------------------------------------------------------------------


def test_a_failed_first_start_does_not_block_the_corrected_command(tmp_path):
    run_dir = tmp_path / "run"
    quick = ["debug=fast", "analysis.intervals=null", "report=false"]  # neither is read here
    failed = ncib(
        "ncib.run", *quick, "dataset.classes=[0,0]", f"hydra.run.dir={run_dir}", cwd=tmp_path
    )
    assert failed.returncode != 0 and "dataset.classes" in failed.output
    fixed = ncib("ncib.run", *quick, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert fixed.returncode == 0, fixed.output[-3000:]
    assert "never trained" in fixed.output
    assert OmegaConf.load(run_dir / ".ncib" / "config.yaml").dataset.classes is None


def _started(run_dir, overrides, tmp_path):
    """A run directory as a first start with ``overrides`` left it (its config kept)."""
    from ncib.rundir.resume import prepare_run_dir

    cfg = compose_config(overrides, output_dir=run_dir)
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    prepare_run_dir(cfg, run_dir)
    return cfg


def test_a_directory_that_trained_still_refuses_a_changed_config(tmp_path):
    from ncib.rundir.resume import prepare_run_dir

    run_dir = tmp_path / "run"
    _started(run_dir, ["model.temperature=0.2"], tmp_path)
    (run_dir / "checkpoints" / "analysis").mkdir(parents=True)
    (run_dir / "checkpoints" / "analysis" / "epoch=0000.ckpt").write_bytes(b"weights")
    changed = compose_config(["model.temperature=0.3"], output_dir=run_dir)
    with pytest.raises(ConfigError, match="model.temperature: 0.2 → 0.3"):
        prepare_run_dir(changed, run_dir)


# -- leftovers of a kill: temporary files, torn CSV rows ---------------------------------------


def test_the_next_start_removes_temporaries_of_cut_writes(tmp_path, caplog):
    from ncib.rundir.resume import prepare_run_dir

    run_dir = tmp_path / "run"
    cfg = _started(run_dir, [], tmp_path)
    leftovers = [
        run_dir / "checkpoints" / ".last.ckpt.k2j3h4.tmp",
        run_dir / "checkpoints" / ".previous.ckpt.tmp",
        run_dir / "checkpoints" / "analysis" / ".epoch=0002.ckpt.x1y2.tmp",
        run_dir / ".analysis.jsonl.abc.tmp",
    ]
    keep = run_dir / "checkpoints" / "notes.tmp"  # not an atomic write's name
    for path in [*leftovers, keep]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"0" * 1024)
    with caplog.at_level(logging.INFO, logger="ncib.rundir.resume"):
        prepare_run_dir(cfg, run_dir)
    assert not any(p.exists() for p in leftovers) and keep.exists()
    for path in leftovers:
        assert str(path) in caplog.text


FIELDS = ["epoch", "lr-SGD", "step", "train/loss/m0"]
ROWS = [
    {"epoch": "0", "lr-SGD": "0.1", "step": "0", "train/loss/m0": ""},
    {"epoch": "0", "lr-SGD": "", "step": "5", "train/loss/m0": "5.9"},
    {"epoch": "1", "lr-SGD": "0.05", "step": "5", "train/loss/m0": ""},
]


def _csv_with_torn_row(path, torn: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(ROWS)
        f.write(torn)


@pytest.mark.parametrize("torn", ["1,,10,5.", "1,0.02,10,5.8,7,9\n", "1"])
def test_a_torn_csv_row_is_dropped_with_a_warning(torn, tmp_path, caplog):
    from ncib.rundir.loggers import drop_csv_rows

    path = tmp_path / "metrics.csv"
    _csv_with_torn_row(path, torn)
    with caplog.at_level(logging.WARNING, logger="ncib.rundir.resume"):
        assert drop_csv_rows(path, lambda r: False) == 0
    assert f"{path}: removed 1 torn row" in caplog.text
    with open(path, newline="") as f:
        assert list(csv.DictReader(f)) == ROWS


def test_the_csv_header_rewrite_survives_a_torn_row_and_is_atomic(tmp_path, monkeypatch):
    import ncib.rundir.records
    from ncib.rundir.loggers import ContinuingCSVLogger

    _csv_with_torn_row(tmp_path / "csv" / "metrics.csv", "1,0.02,10,5.8,7,9\n")
    replaced = []
    real = ncib.rundir.records.os.replace
    monkeypatch.setattr(
        ncib.rundir.records.os, "replace", lambda a, b: (replaced.append(b), real(a, b))
    )
    logger = ContinuingCSVLogger(save_dir=str(tmp_path), name="csv", version="")
    logger.log_metrics({"analysis/nc1": 0.5, "step": 10}, step=10)  # a new column: a rewrite
    logger.save()
    assert [str(p) for p in replaced] == [logger.experiment.metrics_file_path]
    with open(tmp_path / "csv" / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and rows[-1]["analysis/nc1"] == "0.5"
    assert [r["train/loss/m0"] for r in rows[:3]] == [r["train/loss/m0"] for r in ROWS]


# -- a changed horizon on resume ---------------------------------------------------------------


class _Trainer:
    def __init__(self, sched):
        self.lr_scheduler_configs = [type("C", (), {"scheduler": sched})()]


def test_a_longer_horizon_resumes_at_the_new_schedules_rate_not_the_old_final_one():
    from ncib.models.schedules import resume_schedules, warmup_cosine

    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.5)
    old = warmup_cosine(opt, total_steps=10, steps_per_epoch=5)
    for _ in range(10):
        opt.step()
        old.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0)  # the 2-epoch cosine has ended
    state_opt, state_sched = opt.state_dict(), old.state_dict()
    # the resumed fit: 4 epochs now; Lightning restores both states into the new objects
    opt2 = torch.optim.SGD([param], lr=0.5)
    new = warmup_cosine(opt2, total_steps=20, steps_per_epoch=5)
    opt2.load_state_dict(state_opt)
    new.load_state_dict(state_sched)
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.0)  # what the first step would use
    assert resume_schedules(_Trainer(new)) == [pytest.approx(0.25)]  # cos at half: 0.5·0.5
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.25)
    assert new.get_last_lr() == [pytest.approx(0.25)]


def test_a_changed_max_epochs_on_resume_says_what_happens_to_the_schedule(tmp_path, caplog):
    from ncib.rundir.resume import prepare_run_dir

    run_dir = tmp_path / "run"
    _started(run_dir, ["trainer.max_epochs=4"], tmp_path)
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "previous.ckpt").write_bytes(b"x")  # trained (no last.ckpt)
    longer = compose_config(["trainer.max_epochs=8"], output_dir=run_dir)
    with caplog.at_level(logging.WARNING, logger="ncib.rundir.resume"):
        prepare_run_dir(longer, run_dir)
    assert "trainer.max_epochs is 8 now, 4 at the first start" in caplog.text
    assert "learning-rate schedule is derived again for 8 epochs" in caplog.text


# -- the report and the re-analysis ------------------------------------------------------------


def test_an_emptied_records_file_never_replaces_a_good_report(tmp_path):
    from ncib.report import write_report
    from ncib.report.report import NothingToReport
    from ncib.rundir.records import append_record
    from tests.report.test_report import synthetic_record

    append_record(tmp_path / "analysis.jsonl", synthetic_record(1, 0.9))
    table1 = {"test_acc/m0": 0.9, "test_acc/m1": 0.9, "train_acc/m0": 1.0}
    (tmp_path / "linear_eval.json").write_text(
        json.dumps(table1 | {"train_acc/m1": 1.0, "both_correct": 0.8, "num_test": 50})
    )
    good = write_report(tmp_path).path.read_text()
    assert "Analysed epochs: 1" in good
    (tmp_path / "analysis.jsonl").write_text("")
    with pytest.raises(NothingToReport, match="holds no analysis record.*kept as it is"):
        write_report(tmp_path)
    assert (tmp_path / "report.md").read_text() == good
    from ncib.report.__main__ import main

    proc = in_process(main, tmp_path)
    assert proc.returncode == 2 and "kept as it is" in proc.output
    assert (tmp_path / "report.md").read_text() == good


def test_a_reanalysis_names_the_epochs_whose_weights_are_missing(
    stopped_then_finished, tmp_path, monkeypatch
):
    _, _, finished = stopped_then_finished
    run_dir = tmp_path / "run"
    shutil.copytree(finished, run_dir)
    (run_dir / "checkpoints" / "analysis" / "epoch=0001.ckpt").unlink()
    proc = ncib("ncib.analyse", run_dir, "--name", "less", cwd=tmp_path, env=TRUSTED)
    assert proc.returncode == 0, proc.output[-3000:]
    assert "epoch 1 is not re-analysed" in proc.output and "epoch=0001.ckpt" in proc.output
    report = (run_dir / "report-less.md").read_text()
    assert (
        "Not re-analysed" in report and "epoch 1 (`checkpoints/analysis/epoch=0001.ckpt`)" in report
    )
    (run_dir / "checkpoints" / "analysis" / "epoch=0002.ckpt").unlink()
    from ncib.analyse import main

    for name, value in TRUSTED.items():
        monkeypatch.setenv(name, value)
    proc = in_process(main, run_dir, "--name", "none")  # refused before any work
    assert proc.returncode == 2 and "missing: epochs 1, 2" in proc.output


# -- paths with '=' ------------------------------------------------------------------------------


def test_a_path_with_an_equals_sign_gets_a_quoting_hint(tmp_path):
    from ncib.run import quoting_hint

    arg = "transfer.source=/runs/a/checkpoints/analysis/epoch=0004.ckpt"
    hint = quoting_hint(["experiment=zero_shot_transfer", arg])
    assert "'transfer.source=\"/runs/a/checkpoints/analysis/epoch=0004.ckpt\"'" in hint
    assert "transfer.epoch=N" in hint
    for fine in ('transfer.source="/a/epoch=1.ckpt"', "seed_pair=[0,1]", "--cfg", "a=b"):
        assert quoting_hint([fine]) is None, fine
    proc = ncib("ncib.run", "experiment=zero_shot_transfer", arg, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2 and "quote the value" in proc.output


def test_transfer_takes_a_run_directory_and_an_epoch(stopped_then_finished):
    from ncib.rundir import RunDirError
    from ncib.transfer import resolve_source

    _, _, run_dir = stopped_then_finished
    assert resolve_source(run_dir, 2) == (
        run_dir,
        run_dir / "checkpoints" / "analysis" / "epoch=0002.ckpt",
    )
    assert resolve_source(run_dir) == (run_dir, run_dir / "checkpoints" / "last.ckpt")
    with pytest.raises(RunDirError, match="no weights of epoch 7.*of epochs 1, 2"):
        resolve_source(run_dir, 7)
    with pytest.raises(RunDirError, match="not a directory"):
        resolve_source(run_dir / "checkpoints" / "last.ckpt", 2)
