"""Every command that reads a run directory or a sweep folder (``run`` resume, ``analyse``,
``report`` on a run and on a sweep, ``linear_eval``, transfer) is given one with a planted
``__reduce__`` payload — in a checkpoint, in the config (a ``_target_`` that would load it), in
submitit's pickles — and must run nothing, and fail (or skip that file with a warning) naming
the file. Each test plants into its own copy of the session's finished digits run
(``digits_run``, tests/conftest.py)."""

from __future__ import annotations

import pickle
import re
import shutil
import time

import pytest
from omegaconf import OmegaConf

from ncib.rundir.records import read_records
from tests.helpers.app import run_app
from tests.helpers.payloads import Payload, torch_saved


@pytest.fixture
def run_dir(digits_run, tmp_path):
    return digits_run.copy_to(tmp_path / "run")


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "MARKER"
    yield path
    assert not path.exists(), "code from a file ran"


def plant_checkpoint(path, marker):
    """Replace a checkpoint by one that holds the real weights and a payload."""
    import torch

    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    path.unlink()  # previous.ckpt is a hard link to an older last.ckpt: do not write through it
    path.write_bytes(torch_saved({**ckpt, "extra": Payload(marker)}))


def plant_config_target(run_dir, marker):
    """The exploit of issue 22: the model's ``_target_`` loads a pickle in the run folder."""
    evil = run_dir / "weights.pkl"
    evil.write_bytes(pickle.dumps(Payload(marker)))
    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    cfg.model = {"_target_": "torch.load", "f": str(evil), "weights_only": False}
    OmegaConf.save(cfg, run_dir / ".hydra" / "config.yaml")
    return run_dir / ".hydra" / "config.yaml"


def assert_names(message, *names):
    for name in names:
        assert str(name) in message, f"{name} not in: {message}"


# -- python -m ncib.run (resume) -----------------------------------------------------------------
def test_run_resume_refuses_a_last_checkpoint_with_a_payload_naming_it(
    digits_run, run_dir, tmp_path, marker
):
    last = run_dir / "checkpoints" / "last.ckpt"
    plant_checkpoint(last, marker)
    start = time.monotonic()
    proc = run_app(*digits_run.command(run_dir), cwd=tmp_path)  # the same command: a resume
    assert proc.returncode != 0
    assert_names(proc.stderr, last, "posix.mkdir", "nothing was run", "previous.ckpt")
    assert time.monotonic() - start < 120


@pytest.mark.slow
def test_a_damaged_last_checkpoint_resumes_from_the_previous_one_as_offered(
    digits_run, run_dir, tmp_path
):
    last, previous = (
        run_dir / "checkpoints" / "last.ckpt",
        run_dir / "checkpoints" / "previous.ckpt",
    )
    records = read_records(run_dir / "analysis.jsonl")
    whole = last.read_bytes()
    last.unlink()
    last.write_bytes(whole[: len(whole) // 2])  # a copy cut short
    proc = run_app(*digits_run.command(run_dir), cwd=tmp_path)
    assert proc.returncode != 0 and f"mv {previous} {last}" in proc.stderr
    assert f"(after epoch {digits_run.max_epochs - 1})" in proc.stderr
    previous.replace(last)  # the advice
    proc = run_app(*digits_run.command(run_dir), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = read_records(run_dir / "analysis.jsonl")
    # the last epoch trained and analysed again, once
    assert [r["epoch"] for r in again] == list(digits_run.analysed)
    assert again[:-1] == records[:-1]


# -- python -m ncib.analyse ------------------------------------------------------------------------
def test_analyse_refuses_an_analysis_checkpoint_with_a_payload(run_dir, marker, capsys):
    from ncib.analyse import main

    ckpt = run_dir / "checkpoints" / "analysis" / "epoch=0001.ckpt"
    plant_checkpoint(ckpt, marker)
    with pytest.raises(SystemExit) as caught:
        main([str(run_dir), "--name", "x"])
    assert caught.value.code == 2
    assert_names(capsys.readouterr().err, ckpt, "posix.mkdir", "nothing was run", "--epochs")


def test_analyse_refuses_a_config_whose_target_would_load_a_pickle(run_dir, marker, capsys):
    from ncib.analyse import main

    config = plant_config_target(run_dir, marker)
    with pytest.raises(SystemExit) as caught:
        main([str(run_dir)])
    assert caught.value.code == 2
    assert_names(capsys.readouterr().err, config, "model._target_: 'torch.load'")
    assert not list(run_dir.glob("analysis-*"))  # nothing was written


# -- python -m ncib.linear_eval --------------------------------------------------------------------
def test_linear_eval_refuses_a_checkpoint_with_a_payload(run_dir, marker, capsys):
    from ncib.linear_eval import main

    last = run_dir / "checkpoints" / "last.ckpt"
    plant_checkpoint(last, marker)
    with pytest.raises(SystemExit) as caught:
        main([str(run_dir), "--output", "again.json"])
    assert caught.value.code == 2
    assert_names(capsys.readouterr().err, last, "posix.mkdir", "--checkpoint")


def test_linear_eval_refuses_a_config_whose_target_would_load_a_pickle(run_dir, marker, capsys):
    from ncib.linear_eval import main

    config = plant_config_target(run_dir, marker)
    with pytest.raises(SystemExit) as caught:
        main([str(run_dir), "--output", "again.json"])
    assert caught.value.code == 2
    assert_names(capsys.readouterr().err, config, "model._target_: 'torch.load'")


# -- the transfer experiment -----------------------------------------------------------------
def _transfer_cfg(source, tmp_path):
    from tests.conftest import compose_config

    return compose_config(
        ["experiment=zero_shot_transfer", f"transfer.source='{source}'", "logger=csv"],
        output_dir=tmp_path / "transfer",
    )


@pytest.mark.parametrize("which", ["last.ckpt", "analysis/epoch=0002.ckpt"])
def test_transfer_refuses_a_source_checkpoint_with_a_payload(which, run_dir, tmp_path, marker):
    from ncib.engine.checkpoints import CheckpointError
    from ncib.transfer import run_transfer

    ckpt = run_dir / "checkpoints" / which
    plant_checkpoint(ckpt, marker)
    source = run_dir if which == "last.ckpt" else ckpt
    with pytest.raises(CheckpointError) as caught:
        run_transfer(_transfer_cfg(source, tmp_path))
    assert_names(str(caught.value), ckpt, "posix.mkdir", "transfer.source")


def test_transfer_refuses_a_source_config_whose_target_would_load_a_pickle(
    run_dir, tmp_path, marker
):
    from ncib.rundir.trusted import UntrustedTargetError
    from ncib.transfer import run_transfer

    config = plant_config_target(run_dir, marker)
    with pytest.raises(UntrustedTargetError) as caught:
        run_transfer(_transfer_cfg(run_dir, tmp_path))
    assert_names(str(caught.value), config, "model._target_: 'torch.load'")


# -- python -m ncib.report -------------------------------------------------------------------------
def test_report_on_a_run_builds_nothing_from_its_files(run_dir, marker, capsys):
    """The report reads records, Table 1 and the config as data: a YAML tag that would call
    Python and pickles lying in the folder do nothing; the config is named and skipped."""
    from ncib.report.__main__ import main

    config = run_dir / ".hydra" / "config.yaml"
    config.write_text(f"dataset: !!python/object/apply:os.mkdir [{str(marker)!r}]\n")
    for name in ("report.pkl", "figures/cache.pkl"):
        (run_dir / name).write_bytes(pickle.dumps(Payload(marker)))
    with pytest.warns(UserWarning, match=re.escape(str(config))):
        main([str(run_dir)])
    assert "wrote" in capsys.readouterr().out and (run_dir / "report.md").is_file()


def test_report_on_a_sweep_never_unpickles_submitits_files(run_dir, tmp_path, marker):
    from ncib.report.__main__ import main
    from ncib.report.sweep import FINISHED, UNFINISHED, build_sweep_report

    sweep = tmp_path / "sweep"
    sweep.mkdir()
    hydra = {"sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"}}
    hydra["overrides"] = {"task": ["seed_pair=[0,1],[2,3]"]}
    OmegaConf.save(OmegaConf.create({"hydra": hydra}), sweep / "multirun.yaml")
    for num in (0, 1):
        job = shutil.copytree(run_dir, sweep / f"{num}_digits_seeds{2 * num}-{2 * num + 1}")
        meta = OmegaConf.load(job / ".hydra" / "hydra.yaml")
        meta.hydra.job.num = num
        OmegaConf.save(meta, job / ".hydra" / "hydra.yaml")
    bad = sweep / "1_digits_seeds2-3" / ".hydra" / "config.yaml"
    bad.write_text(f"seed_pair: !!python/object/apply:os.mkdir [{str(marker)!r}]\n")
    folder = sweep / ".submitit" / "4242_1"
    folder.mkdir(parents=True)
    for name in ("4242_1_submitted.pkl", "4242_1_0_result.pkl"):
        (folder / name).write_bytes(pickle.dumps(("error", Payload(marker))))
    main([str(sweep), "--no-wandb"])
    assert (sweep / "sweep_report.md").is_file()
    jobs = build_sweep_report(sweep).jobs
    assert [j.status for j in jobs] == [FINISHED, UNFINISHED]
    assert "unreadable files" in jobs[1].detail and "python/object/apply" in jobs[1].detail
