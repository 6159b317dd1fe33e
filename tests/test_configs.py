"""Every option of every config group composes, and everything with a ``_target_`` builds."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from ncib.run import CONF_DIR
from tests.conftest import compose_config

CONF = Path(CONF_DIR)
GROUPS = sorted(
    p.parent.relative_to(CONF).as_posix() for p in CONF.rglob("*.yaml") if p.parent != CONF
)
OPTIONS = sorted(
    (p.parent.relative_to(CONF).as_posix(), p.stem) for p in CONF.rglob("*.yaml") if p.parent != CONF
)
NO_TARGETS = {"paths"}  # groups of plain values


def targets(node, path=""):
    """Yield ``(path, node)`` for every sub-config with a ``_target_``, outermost first."""
    if isinstance(node, DictConfig):
        if "_target_" in node:
            yield path, node
            return
        for key in node:
            yield from targets(node[key], f"{path}.{key}".lstrip("."))


def build(path: str, node: DictConfig):
    if node._target_ == "pytorch_lightning.Trainer" and node.accelerator == "gpu" and not torch.cuda.is_available():
        # no GPU here: check every key against the Trainer's signature instead
        kwargs = OmegaConf.to_container(node, resolve=True)
        kwargs.pop("_target_")
        inspect.signature(get_class(node._target_)).bind(**kwargs)
        return None
    obj = instantiate(node)
    assert obj is not None, path
    return obj


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_composes_and_instantiates(group, option, tmp_path):
    if group.startswith("hydra/"):
        cfg = compose_config([f"{group}={option}"], output_dir=tmp_path, hydra_config=True)
        node = OmegaConf.select(cfg, group.replace("/", "."))
        built = list(targets(node, group))
        assert built, f"{group}/{option} has no _target_"
        for path, sub in built:
            build(path, sub)
        return
    override = f"{group}={option}"
    cfg = compose_config([override], output_dir=tmp_path)
    OmegaConf.resolve(cfg)  # every interpolation resolves
    found = list(targets(cfg))
    if group not in NO_TARGETS and option != "none":
        assert any(p.startswith(group) or group == "experiment" for p, _ in found), group
    for path, node in found:
        build(path, node)


def test_every_group_is_covered():
    assert {"dataset", "backbone", "model", "callbacks", "logger", "trainer", "paths"} <= set(GROUPS)


def test_typos_are_errors(tmp_path):
    with pytest.raises(ConfigCompositionException):
        compose_config(["trainer.max_epoch=3"], output_dir=tmp_path)
    with pytest.raises(ConfigCompositionException):
        compose_config(["seed_pair_x=[0,1]"], output_dir=tmp_path)
    with pytest.raises(ConfigCompositionException):
        compose_config(["dataset.num_clases=3"], output_dir=tmp_path)


def test_seed_pair_is_a_plain_key(tmp_path):
    cfg = compose_config(["seed_pair=[4,9]"], output_dir=tmp_path)
    assert list(cfg.seed_pair) == [4, 9]
    assert list(cfg.model.seeds) == [4, 9] and list(cfg.dataset.datamodule.seeds) == [4, 9]
    assert not (CONF / "seed_pair").exists()


def test_default_is_digits_convnet_on_cpu(tmp_path):
    cfg = compose_config([], output_dir=tmp_path)
    assert cfg.dataset.name == "digits" and cfg.backbone._target_.endswith("ConvNet")
    assert cfg.trainer.accelerator == "cpu"


def test_explicit_overrides_win_over_dataset_recipe(tmp_path):
    cfg = compose_config(["backbone=resnet18", "model.optimizer.lr=0.3", "trainer.max_epochs=2"], output_dir=tmp_path)
    assert cfg.backbone.name == "resnet18"
    assert cfg.model.optimizer.lr == 0.3 and cfg.trainer.max_epochs == 2
