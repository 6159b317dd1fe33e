"""Files a user points ncib at are data: nothing in them runs, and a bad one is named.

Every loader of a file that may come from elsewhere — data batches, checkpoints, a run
directory's config — is given a pickle whose ``__reduce__`` would create a marker; the marker
must not appear and the refusal must name the file. The commands that read run directories
(``run`` resume, ``analyse``, ``report``, ``linear_eval``, transfer) are tested the same way on
a real run in tests/test_untrusted_commands.py.
"""

from __future__ import annotations

import importlib.resources
import pickle
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from ncib.data import CIFAR10DataModule, CIFAR100DataModule, ImageNet32DataModule
from ncib.data.safe_pickle import UntrustedPickleError, load_data_pickle
from ncib.engine.checkpoints import (
    CheckpointError,
    check_training_checkpoint,
    keep_previous,
    load_weights,
    read_checkpoint,
)
from ncib.rundir.records import atomic_write_bytes
from ncib.rundir.trusted import ENV_VAR, UntrustedTargetError, check_targets, is_admitted
from tests.conftest import CONF_MODULE, compose_config
from tests.helpers.fake_datasets import write_cifar10, write_cifar100, write_imagenet32
from tests.helpers.payloads import Payload, torch_saved

HOWS = ["os.mkdir", "exec", "numpy"]


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / "MARKER"
    yield path
    assert not path.exists(), "code from a file ran"


def _dump(path, obj, protocol=None):
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


# -- data batches ----------------------------------------------------------------------------
DATASETS = {
    "cifar10": (CIFAR10DataModule, write_cifar10, "cifar-10-batches-py/data_batch_2", b"data"),
    "cifar100": (CIFAR100DataModule, write_cifar100, "cifar-100-python/test", b"data"),
    "imagenet32": (
        ImageNet32DataModule,
        lambda root: write_imagenet32(root, layout="pickle"),
        "Imagenet32_train/train_data_batch_3",
        "data",
    ),
}


def _setup(name, root):
    cls = DATASETS[name][0]
    dm = cls(seeds=[0, 1], root=str(root), batch_size=4)
    dm.setup()
    return dm


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("name", sorted(DATASETS))
def test_the_real_formats_load_at_every_pickle_protocol(name, protocol, tmp_path):
    """The official files are Python 2 pickles (protocol 2); a re-saved copy may use any."""
    _, write, rel, _ = DATASETS[name]
    write(tmp_path / "a")
    reference = _setup(name, tmp_path / "a").splits
    write(tmp_path / "b")
    for path in (tmp_path / "b").rglob("*"):
        if path.is_file() and path.suffix != ".npz":
            entry = pickle.loads(path.read_bytes())
            if isinstance(entry, dict) and "mean" in entry:
                entry["mean"] = np.float64(entry["mean"].mean())  # a numpy scalar too
            _dump(path, entry, protocol)
    again = _setup(name, tmp_path / "b").splits
    for split in ("train", "test"):
        assert torch.equal(again[split][0], reference[split][0])
        assert torch.equal(again[split][1], reference[split][1])


@pytest.mark.parametrize("how", HOWS)
@pytest.mark.parametrize("name", sorted(DATASETS))
def test_a_data_batch_with_a_reduce_payload_runs_nothing_and_is_named(name, how, tmp_path, marker):
    _, write, rel, data_key = DATASETS[name]
    write(tmp_path)
    path = tmp_path / rel
    entry = pickle.loads(path.read_bytes())
    entry[data_key] = Payload(marker, how)  # in place of the images
    _dump(path, entry, protocol=2)
    with pytest.raises(UntrustedPickleError) as caught:
        _setup(name, tmp_path)
    message = str(caught.value)
    assert str(path) in message and "nothing was run" in message
    assert {"os.mkdir": "posix.mkdir", "exec": "exec", "numpy": "runstring"}[how] in message


def test_an_array_of_python_objects_is_refused_even_when_its_objects_are_harmless(tmp_path):
    path = tmp_path / "batch"
    _dump(path, {b"data": np.array([1, "two"], dtype=object)}, protocol=2)
    with pytest.raises(UntrustedPickleError, match=r"batch.*dtype object"):
        load_data_pickle(path, "CIFAR", "fetch it again")


def test_an_imagenet32_npz_of_python_objects_runs_nothing_and_is_named(tmp_path, marker):
    write_imagenet32(tmp_path)
    path = tmp_path / "Imagenet32_val_npz" / "val_data.npz"
    labels = np.load(path)["labels"]
    np.savez(path, data=np.array([Payload(marker)], dtype=object), labels=labels)
    with pytest.raises(ValueError, match=r"val_data\.npz.*not a readable ImageNet32 batch"):
        _setup("imagenet32", tmp_path)


def _damage(path, how):
    whole = path.read_bytes()
    content = {
        "empty": b"",
        "truncated": whole[: len(whole) * 2 // 3],
        "random": np.random.default_rng(0).bytes(len(whole)),
        "foreign": pickle.dumps(["not", "a", "batch"]),
    }[how]
    path.write_bytes(content)


@pytest.mark.parametrize("how", ["empty", "truncated", "random", "foreign"])
@pytest.mark.parametrize("name", [*sorted(DATASETS), "imagenet32-npz"])
def test_a_damaged_data_batch_fails_in_seconds_naming_the_file(name, how, tmp_path):
    if name == "imagenet32-npz":
        write_imagenet32(tmp_path)
        path, name = tmp_path / "Imagenet32_train_npz" / "train_data_batch_3.npz", "imagenet32"
    else:
        _, write, rel, _ = DATASETS[name]
        write(tmp_path)
        path = tmp_path / rel
    _damage(path, how)
    start = time.monotonic()
    with pytest.raises(ValueError) as caught:
        _setup(name, tmp_path)
    assert str(path) in str(caught.value), str(caught.value)
    assert any(w in str(caught.value) for w in ("not a", "not an", "no data", "no labels"))
    assert time.monotonic() - start < 10


# -- checkpoints -----------------------------------------------------------------------------
def _training_state(epoch=1):
    return {
        "state_dict": {"w": torch.ones(3)},
        "epoch": epoch,
        "global_step": 6 * (epoch + 1),
        "optimizer_states": [{"state": {}}],
        "loops": {},
    }


CHECKPOINTS = {  # what the file holds → words the error must say
    "empty": (lambda m: b"", "empty"),
    "truncated": (lambda m: torch_saved(_training_state())[:300], "cut short"),
    "random": (lambda m: np.random.default_rng(0).bytes(4000), "not a checkpoint archive"),
    "plain pickle payload": (lambda m: pickle.dumps({"x": Payload(m)}), "not a checkpoint"),
    "payload": (lambda m: torch_saved({"state_dict": {}, "x": Payload(m)}), "posix.mkdir"),
    "exec payload": (lambda m: torch_saved({"x": Payload(m, "exec")}), "refers to exec"),
    "not a dict": (lambda m: torch_saved([torch.ones(2)]), "holds a list"),
}


@pytest.mark.parametrize("kind", sorted(CHECKPOINTS))
def test_a_bad_checkpoint_is_named_with_what_is_wrong_and_runs_nothing(kind, tmp_path, marker):
    content, words = CHECKPOINTS[kind]
    path = tmp_path / "checkpoints" / "epoch=0004.ckpt"
    path.parent.mkdir()
    path.write_bytes(content(marker))
    with pytest.raises(CheckpointError) as caught:
        load_weights(path, fix="DO THIS")
    message = str(caught.value)
    assert str(path) in message and words in message and message.endswith("DO THIS")
    if "payload" in kind and kind != "plain pickle payload":
        assert "nothing was run" in message


def test_checkpoints_load_weights_only_even_when_the_environment_says_otherwise(
    tmp_path, marker, monkeypatch
):
    """``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` turns a default ``torch.load`` into a full unpickle;
    ncib's loads (its own and Lightning's resume through AtomicCheckpointIO) say weights_only."""
    from ncib.callbacks import AtomicCheckpointIO

    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    path = tmp_path / "last.ckpt"
    path.write_bytes(torch_saved({**_training_state(), "x": Payload(marker)}))
    with pytest.raises(CheckpointError, match="last.ckpt.*posix.mkdir"):
        AtomicCheckpointIO().load_checkpoint(path)
    with pytest.raises(CheckpointError, match="last.ckpt.*posix.mkdir"):
        read_checkpoint(path, "")
    with pytest.raises(ValueError, match="weights_only=True only"):
        AtomicCheckpointIO().load_checkpoint(path, weights_only=False)


def test_a_weights_only_checkpoint_cannot_resume_and_says_why(tmp_path):
    from ncib.engine.checkpoints import save_weights

    path = save_weights(tmp_path / "weights.ckpt", torch.nn.Linear(2, 2), epoch=3, global_step=9)
    with pytest.raises(CheckpointError, match="weights.ckpt.*weights of an analysis epoch"):
        check_training_checkpoint(path)


def test_a_damaged_last_checkpoint_offers_the_previous_good_state(tmp_path):
    last = tmp_path / "checkpoints" / "last.ckpt"
    last.parent.mkdir()
    last.write_bytes(torch_saved(_training_state(epoch=3)))  # after epoch 4
    assert keep_previous(last) == last.with_name("previous.ckpt")
    atomic_write_bytes(last, torch_saved(_training_state(epoch=4)))  # a new file, as ncib writes
    assert check_training_checkpoint(last.with_name("previous.ckpt"))["epoch"] == 3
    last.write_bytes(torch_saved(_training_state(epoch=4))[:500])  # damaged after the write
    with pytest.raises(CheckpointError) as caught:
        check_training_checkpoint(last)
    message = str(caught.value)
    assert f"mv {last.with_name('previous.ckpt')} {last}" in message
    assert "(after epoch 4)" in message and "train this run from epoch 0" in message
    last.with_name("previous.ckpt").write_bytes(b"")  # no good previous state: not offered
    with pytest.raises(CheckpointError) as caught:
        check_training_checkpoint(last)
    assert "mv " not in str(caught.value) and "train this run from epoch 0" in str(caught.value)


def test_keep_previous_keeps_the_old_bytes_after_an_atomic_replacement(tmp_path):
    last = tmp_path / "last.ckpt"
    assert keep_previous(last) is None  # nothing yet
    atomic_write_bytes(last, b"first")
    keep_previous(last)
    atomic_write_bytes(last, b"second")
    assert last.with_name("previous.ckpt").read_bytes() == b"first"
    assert last.read_bytes() == b"second"


# -- the _target_s of a run directory's config ----------------------------------------------
def test_every_target_of_the_shipped_conf_is_admitted(tmp_path):
    """Every option of every group, composed, instantiates only admitted targets, and every
    ``_target_`` written in conf/ is among them: the allow-list cannot fall behind conf/."""
    from ncib.rundir.trusted import targets_of

    conf = Path(str(importlib.resources.files(CONF_MODULE)))

    def hydras(path: Path) -> bool:
        # Hydra's own groups, and hparams_search, whose targets (the Optuna sampler) sit under
        # hydra: and are built by Hydra's sweeper, never from a run directory's config
        return path.parent.relative_to(conf).as_posix().startswith(("hydra", "hparams_search"))

    options = sorted(
        (p.parent.relative_to(conf).as_posix(), p.stem)
        for p in conf.rglob("*.yaml")
        if p.parent != conf and not hydras(p)
    )
    required = {("experiment", "zero_shot_transfer"): ["transfer.source=/a/run/dir"]}
    seen = set()
    for group, option in options:
        overrides = [f"{group}={option}", *required.get((group, option), [])]
        if group == "augment":  # placed into a dataset by its defaults list
            dataset = "digits" if option == "digits" else "cifar10"
            overrides = [f"dataset={dataset}", f"augment@dataset.datamodule.augment={option}"]
        for key, target in targets_of(compose_config(overrides, output_dir=tmp_path)):
            assert is_admitted(target), f"{group}={option}: {key}: {target}"
            seen.add(target)
    written = {
        line.split("_target_:")[1].strip()
        for path in conf.rglob("*.yaml")
        if not hydras(path)
        for line in path.read_text().splitlines()
        if "_target_:" in line and not line.lstrip().startswith("#")
    }
    assert len(options) > 30 and written and written <= seen


REFUSED = [
    "torch.load",
    "os.system",
    "builtins.exec",
    "subprocess.Popen",
    "posix.mkdir",
    "numpy.testing._private.utils.runstring",
    "ncib.rundir.records.atomic_write_bytes",  # ncib's, but a function outside ncib.models
    "ncib.models.supcon.torch.load",  # reached through an import in an admitted module
    "ncib.models.supcon.pl.LightningModule",  # a class, but defined outside the families
    "ncib.models.schedules.math.cos",
    "torch.nn.functional.linear",  # a function, not a module class
    "torchvision.models.resnet.load_state_dict_from_url",
    "torch.optim.lr_scheduler._LRScheduler",  # a private name
    "pytorch_lightning.plugins.io.TorchCheckpointIO",  # not a logger, callback or strategy
    "ncib.models.NoSuchThing",
    "",
]


@pytest.mark.parametrize("target", REFUSED)
def test_targets_outside_the_allow_list_are_refused(target):
    assert not is_admitted(target)


@pytest.mark.parametrize(
    "target",
    [
        "ncib.models.PairedSupCon",
        "ncib.models.cifar_resnet",
        "torch.optim.SGD",
        "torch.optim.lr_scheduler.CosineAnnealingLR",
        "torch.nn.Linear",
        "torchvision.models.resnet18",
        "pytorch_lightning.Trainer",
        "pytorch_lightning.callbacks.ModelCheckpoint",
        "pytorch_lightning.strategies.DDPStrategy",
        "pytorch_lightning.loggers.WandbLogger",
    ],
)
def test_ncib_torch_and_lightning_classes_are_admitted(target):
    assert is_admitted(target)


def test_a_config_that_asks_for_code_is_refused_naming_the_file_key_and_target(tmp_path):
    cfg = OmegaConf.create(
        {
            "model": {"_target_": "ncib.models.PairedSupCon", "head": {"_target_": "torch.load"}},
            "callbacks": {"x": {"_target_": "torch.nn.Linear"}},
            "hidden": "${oc.create:{_target_: os.system, command: touch here}}",
            "listed": [{"_target_": "builtins.exec"}],
        }
    )
    with pytest.raises(UntrustedTargetError) as caught:
        check_targets(cfg, tmp_path / "run" / ".hydra" / "config.yaml")
    message = str(caught.value)
    assert str(tmp_path / "run" / ".hydra" / "config.yaml") in message
    for key, target in (
        ("model.head._target_", "torch.load"),
        ("hidden._target_", "os.system"),
        ("listed[0]._target_", "builtins.exec"),
    ):
        assert f"{key}: '{target}'" in message
    assert "torch.nn.Linear" not in message and ENV_VAR in message


def test_the_environment_admits_a_users_own_targets_and_nothing_more(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "mylab.models, other.pkg.Net")
    assert is_admitted("mylab.models.Big") and is_admitted("mylab.models")
    assert is_admitted("other.pkg.Net") and not is_admitted("other.pkg.Other")
    assert not is_admitted("mylab.modelsevil.X") and not is_admitted("torch.load")
    monkeypatch.delenv(ENV_VAR)
    assert not is_admitted("mylab.models.Big")


# -- records and Table 1 -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "content", [b"", b'{"test_acc/m0": 0.9', b"\x80\x04K.", b"[0.9, 0.8]", b'{"test_acc/m0": 0.9}']
)
def test_a_damaged_or_foreign_table_1_is_named_by_the_report(tmp_path, content, capsys):
    from ncib.report.__main__ import main

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "linear_eval.json").write_bytes(content)
    with pytest.raises(SystemExit) as caught:
        main([str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert caught.value.code == 2 and str(tmp_path / "run" / "linear_eval.json") in err
    assert "python -m ncib.linear_eval" in err


def test_foreign_lines_in_a_records_file_are_skipped_with_a_warning_naming_it(tmp_path):
    from ncib.metrics.legacy import RECORD_SCHEMA
    from ncib.rundir.records import read_records

    path = tmp_path / "analysis.jsonl"
    path.write_bytes(b'{"epoch": 1, "k": 2}\n[1, 2]\n{"epoch": "2"}\n{"no": "epoch"}\n\x80\x04K.\n')
    with pytest.warns(RuntimeWarning, match=f"{path}: skipped 4 unreadable"):
        assert read_records(path) == [{"epoch": 1, "k": 2, "schema": RECORD_SCHEMA}]


def test_a_records_file_of_another_tool_is_named_by_the_report(tmp_path):
    from ncib.report import build_report

    (tmp_path / "analysis.jsonl").write_text('{"epoch": 1, "loss": 0.5}\n')
    with pytest.raises(ValueError, match=f"{tmp_path / 'analysis.jsonl'} is not an ncib records"):
        build_report(tmp_path)
