"""Degenerate settings are rejected before any work, naming the key, the value and what is
allowed; suspicious ones are warned about; broken data files name the file."""

from __future__ import annotations

import logging
import pickle
import time

import numpy as np
import pytest

from ncib.config import ConfigError, validate
from tests.conftest import compose_config
from tests.helpers.app import run_app


@pytest.mark.parametrize(
    "overrides,key,allowed",
    [
        (["dataset.datamodule.batch_size=1"], "dataset.datamodule.batch_size=1", "no negatives"),
        (["analysis.k=0"], "analysis.k=0", "[1, 128]"),
        (["analysis.k=500"], "analysis.k=500", "[1, 128]"),
        (["analysis.max_samples=5"], "analysis.max_samples=5", "at least 5 samples per class"),
        (["trainer.max_epochs=0"], "trainer.max_epochs=0", "at least one epoch"),
        (["analysis.epochs=[-1,2]"], "analysis.epochs=[-1, 2]", "[0, trainer.max_epochs]"),
        (
            ["analysis.epochs=null", "analysis.every_n_epochs=0"],
            "analysis.every_n_epochs=0",
            ">= 1",
        ),
        (["dataset=cifar10", "analysis.k=3000"], "analysis.k=3000", "[1, 2048]"),
        (["analysis.precision=half"], "analysis.precision", "'float32' or 'float64'; got 'half'"),
    ],
)
def test_degenerate_settings_are_errors_naming_key_value_and_what_is_allowed(
    tmp_path, overrides, key, allowed
):
    cfg = compose_config(overrides, output_dir=tmp_path)
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert key in str(err.value) and allowed in str(err.value)


def test_analysis_epochs_beyond_the_end_and_tiny_batches_are_warned_about(tmp_path, caplog):
    cfg = compose_config(
        ["analysis.epochs=[1000]", "trainer.max_epochs=2", "dataset.datamodule.batch_size=4"],
        output_dir=tmp_path,
    )
    with caplog.at_level(logging.WARNING, logger="ncib.config"):
        validate(cfg)
    text = caplog.text
    assert (
        "[1000]" in text and "trainer.max_epochs=2" in text and "nothing will be analysed" in text
    )
    assert "batch_size=4 is smaller than the 10 classes" in text


def test_the_defaults_pass():
    validate(compose_config([]))
    validate(compose_config(["dataset=cifar100"]))


def test_a_degenerate_run_fails_in_seconds_before_any_work(tmp_path):
    start = time.monotonic()
    proc = run_app(
        "dataset.datamodule.batch_size=1", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path
    )
    assert proc.returncode != 0 and "dataset.datamodule.batch_size=1" in proc.stderr
    assert time.monotonic() - start < 15
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_diverging_run_stops_at_once_naming_member_epoch_step_and_checkpoint(tmp_path):
    proc = run_app(
        "model.optimizer.lr=1e6",
        "trainer.max_epochs=3",
        "model.scheduler.warmup_epochs=0",
        "logger=csv",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    assert proc.returncode != 0
    assert "training diverged" in proc.stderr and "member m" in proc.stderr
    assert "epoch" in proc.stderr and "optimiser step" in proc.stderr
    assert "checkpoint" in proc.stderr


# -- broken data files ---------------------------------------------------------------------
def _cifar10_root(tmp_path):
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    good = {b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2, 3]}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(pickle.dumps(good))
    return folder


def test_a_truncated_cifar_batch_names_the_file(tmp_path):
    from ncib.data import CIFAR10DataModule

    folder = _cifar10_root(tmp_path)
    whole = (folder / "data_batch_3").read_bytes()
    (folder / "data_batch_3").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match="data_batch_3.*truncated or corrupt"):
        CIFAR10DataModule(seeds=[0, 1], root=str(tmp_path / "cifar10"), batch_size=2).setup()
    (folder / "data_batch_3").write_bytes(b"garbage, not a pickle")
    with pytest.raises(ValueError, match="data_batch_3.*not a readable CIFAR batch"):
        CIFAR10DataModule(seeds=[0, 1], root=str(tmp_path / "cifar10"), batch_size=2).setup()
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"labels": [0]}))
    with pytest.raises(ValueError, match="data_batch_3.*no data entry"):
        CIFAR10DataModule(seeds=[0, 1], root=str(tmp_path / "cifar10"), batch_size=2).setup()


def test_an_imagenet32_npz_without_its_arrays_names_the_path(tmp_path):
    from ncib.data.imagenet32 import _read

    path = tmp_path / "train_data_batch_1.npz"
    np.savez(path, images=np.zeros((2, 3072), np.uint8))
    with pytest.raises(ValueError, match=r"train_data_batch_1\.npz.*no labels.*found images"):
        _read(path, ["labels"])
    path.write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(ValueError, match=r"train_data_batch_1\.npz.*truncated or corrupt"):
        _read(path, ["labels"])
