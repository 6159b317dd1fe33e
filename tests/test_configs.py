"""Every option of every config group composes, and everything with a ``_target_`` builds."""

from __future__ import annotations

import importlib.resources
import inspect
from pathlib import Path

import pytest
import torch
from hydra.errors import ConfigCompositionException
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from ncib.objectives import OBJECTIVES
from tests.conftest import CONF_MODULE, REPO_ROOT, compose_config

CONF = Path(str(importlib.resources.files(CONF_MODULE)))
GROUPS = sorted(
    p.parent.relative_to(CONF).as_posix() for p in CONF.rglob("*.yaml") if p.parent != CONF
)
OPTIONS = sorted(
    (p.parent.relative_to(CONF).as_posix(), p.stem)
    for p in CONF.rglob("*.yaml")
    if p.parent != CONF
)
NO_TARGETS = {"paths", "augment"}  # groups of plain values
GLOBAL = {
    "objective",
    "experiment",
    "recipe",
    "debug",
    "hparams_search",
    "precision",
    "seeds",
    "local",
}  # groups that override other groups' keys
REQUIRED = {("experiment", "zero_shot_transfer"): ["transfer.source=/a/run/dir"]}  # `???` values


def objective_for(group: str, option: str) -> list[str]:
    """The objective (and dataset) an option belongs to: a model, or a recipe
    <objective>_<dataset>, composes with its own objective (the objective chooses the model
    and, with the dataset, the recipe) and a CIFAR recipe with CIFAR."""
    if group == "model" and option == "classifier":
        return ["objective=ce"]
    overrides = []
    if group == "recipe" and option.split("_")[0] in OBJECTIVES:
        overrides.append(f"objective={option.split('_')[0]}")
    if group == "recipe" and "cifar" in option:  # a CIFAR recipe sets CIFAR's augmentation
        overrides.append("dataset=cifar10")
    return overrides


def targets(node, path=""):
    """Yield ``(path, node)`` for every sub-config with a ``_target_``, outermost first."""
    if isinstance(node, DictConfig):
        if "_target_" in node:
            yield path, node
            return
        for key in node:
            yield from targets(node[key], f"{path}.{key}".lstrip("."))


def build(path: str, node: DictConfig):
    if (
        node._target_ == "pytorch_lightning.Trainer"
        and node.accelerator == "gpu"
        and not torch.cuda.is_available()
    ):
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
    if group == "hparams_search":  # its sweeper is an extra (tests/test_hydra_habits.py)
        pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    if group.startswith("hydra/"):
        cfg = compose_config([f"{group}={option}"], output_dir=tmp_path, hydra_config=True)
        node = OmegaConf.select(cfg, group.replace("/", "."))
        built = list(targets(node, group))
        assert built, f"{group}/{option} has no _target_"
        for path, sub in built:
            build(path, sub)
        return
    overrides = [f"{group}={option}"]
    if group == "augment":  # placed into a dataset by its defaults list
        dataset = "digits" if option == "digits" else "cifar10"
        overrides = [f"dataset={dataset}", f"augment@dataset.datamodule.augment={option}"]
    overrides += objective_for(group, option) + REQUIRED.get((group, option), [])
    cfg = compose_config(overrides, output_dir=tmp_path)
    OmegaConf.resolve(cfg)  # every interpolation resolves
    found = list(targets(cfg))
    if group not in NO_TARGETS and option != "none":
        assert any(p.startswith(group) or group in GLOBAL for p, _ in found), group
    for path, node in found:
        build(path, node)


def test_every_group_is_covered():
    expected = {
        "dataset",
        "recipe",
        "augment",
        "backbone",
        "model",
        "objective",
        "callbacks",
        "logger",
        "trainer",
    }
    assert expected | {"paths", "linear_eval", "debug", "experiment", "precision"} <= set(GROUPS)


def test_the_packaged_config_is_the_repository_conf():
    # in an editable install ncib.conf is conf/ itself; in a wheel a copy of it
    repo = {p.relative_to(REPO_ROOT / "conf") for p in (REPO_ROOT / "conf").rglob("*.yaml")}
    assert repo and repo == {p.relative_to(CONF) for p in CONF.rglob("*.yaml")}


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
    cfg = compose_config(
        ["backbone=resnet18", "model.optimizer.lr=0.3", "trainer.max_epochs=2"], output_dir=tmp_path
    )
    assert cfg.backbone.name == "resnet18"
    assert cfg.model.optimizer.lr == 0.3 and cfg.trainer.max_epochs == 2


def test_a_dataset_alone_selects_the_papers_recipe(tmp_path):
    cfg = compose_config(["dataset=cifar10"], output_dir=tmp_path)
    assert cfg.backbone.name == "resnet50" and cfg.trainer.max_epochs == 400
    assert cfg.model.optimizer.lr == 0.5 and cfg.model.temperature == 0.1
    assert cfg.model.scheduler.warmup_epochs == 10 and cfg.trainer.accelerator == "auto"
    assert cfg.dataset.datamodule.augment.scale == [0.2, 1.0]  # SupCon's views
    digits = compose_config([], output_dir=tmp_path)
    assert digits.model.optimizer.lr == 0.1 and list(digits.analysis.epochs)[-1] == 60


def test_overrides_win_over_the_recipe_a_dataset_selects(tmp_path):
    cfg = compose_config(
        ["dataset=cifar100", "backbone=resnet18", "model.optimizer.lr=0.3", "trainer.max_epochs=2"],
        output_dir=tmp_path,
    )
    assert cfg.dataset.num_classes == 100 and cfg.backbone.name == "resnet18"
    assert cfg.model.optimizer.lr == 0.3 and cfg.trainer.max_epochs == 2
    # the dataset chooses the encoder and the trainer, the recipe the optimisation
    other = compose_config(["dataset=cifar10", "recipe=digits"], output_dir=tmp_path)
    assert other.dataset.name == "cifar10" and other.backbone.name == "resnet50"
    assert other.model.optimizer.lr == 0.1 and other.trainer.max_epochs == 60


def test_debug_fast_is_one_epoch_one_analysis_csv_only(tmp_path):
    cfg = compose_config(["debug=fast"], output_dir=tmp_path)
    assert cfg.trainer.max_epochs == 1 and list(cfg.analysis.epochs) == [1]
    assert list(cfg.logger) == ["csv"] and cfg.linear_eval is None


def _blocks(node, path=""):
    """Every mapping with at least four scalar leaves, as a comparable tuple."""
    if isinstance(node, dict):
        leaves = {k: v for k, v in node.items() if not isinstance(v, dict | list)}
        if len(leaves) >= 4:
            yield path, tuple(sorted((k, repr(v)) for k, v in leaves.items()))
        for k, v in node.items():
            yield from _blocks(v, f"{path}.{k}")


def test_no_config_block_is_repeated_across_files():
    import yaml

    seen: dict[tuple, str] = {}
    for path in sorted(CONF.rglob("*.yaml")):
        for where, block in _blocks(yaml.safe_load(path.read_text()) or {}):
            name = f"{path.relative_to(CONF)}:{where}"
            assert block not in seen, f"{name} repeats {seen[block]}; move it to one file"
            seen[block] = name


def test_a_users_own_config_folder_extends_the_groups(tmp_path):
    from tests.helpers.app import run_app

    mine = tmp_path / "my_conf" / "recipe"
    mine.mkdir(parents=True)
    (mine / "long.yaml").write_text(
        "# @package _global_\ndefaults:\n  - digits\n  - _self_\ntrainer:\n  max_epochs: 234\n"
    )
    for how in (
        ["--config-dir", str(tmp_path / "my_conf")],
        [f"hydra.searchpath=[file://{tmp_path / 'my_conf'}]"],
    ):
        proc = run_app(*how, "recipe=long", "--cfg", "job", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "max_epochs: 234" in proc.stdout


@pytest.mark.parametrize("gpus,nodes", [(1, 1), (4, 1), (4, 2), (8, 3)])
def test_the_cluster_layout_is_set_once_and_derived_everywhere(tmp_path, gpus, nodes):
    cfg = compose_config(
        [
            "hydra/launcher=slurm",
            "trainer=gpu",
            f"cluster.gpus_per_node={gpus}",
            f"cluster.nodes={nodes}",
            "cluster.mem_gb_per_task=32",
        ],
        output_dir=tmp_path,
        hydra_config=True,
    )
    launcher, trainer = cfg.hydra.launcher, cfg.trainer
    assert launcher.nodes == trainer.num_nodes == nodes
    assert launcher.tasks_per_node == launcher.gpus_per_node == trainer.devices == gpus
    assert trainer.strategy == ("ddp" if gpus * nodes > 1 else "auto")
    assert launcher.mem_gb == 32 * gpus and launcher.max_num_timeout == cfg.cluster.max_requeues
    local = compose_config(
        ["hydra/launcher=local", "trainer=cpu", f"cluster.gpus_per_node={gpus}"],
        output_dir=tmp_path,
        hydra_config=True,
    )
    assert local.hydra.launcher.tasks_per_node == local.trainer.devices == gpus
