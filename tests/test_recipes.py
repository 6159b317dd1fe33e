"""The reference recipe's switches (docs/configuration.md, "The reference recipe"): the float32
preset, the linear-evaluation learning rate and the 1,000-epoch horizon."""

from __future__ import annotations

import math

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from ncib.engine.plan import AnalysisSchedule
from tests.conftest import REPO_ROOT, compose_config


def _flat(cfg) -> dict:
    """``{dotted key: value}`` of a composed config, interpolations as written (a key that
    only follows another through ``${...}`` does not count as changed)."""
    out = {}

    def walk(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{path}.{k}" if path else str(k))
        else:
            out[path] = node

    walk(OmegaConf.to_container(cfg, resolve=False), "")
    return out


@pytest.mark.parametrize("trainer", ["default", "gpu", "ddp"])
def test_precision_fp32_wins_over_every_trainer_and_recipe(trainer, tmp_path):
    cfg = compose_config(
        ["dataset=cifar10", f"trainer={trainer}", "precision=fp32"], output_dir=tmp_path
    )
    assert cfg.trainer.precision == "32-true" and cfg.float32_matmul_precision == "highest"
    plain = compose_config(["dataset=cifar10", f"trainer={trainer}"], output_dir=tmp_path)
    # nothing else changes: the preset is the precision and nothing more
    changed = {k for k, v in _flat(cfg).items() if _flat(plain).get(k) != v}
    assert changed <= {"trainer.precision", "float32_matmul_precision"}
    if trainer != "default":  # the GPU trainers' own choice is bf16 autocast
        assert plain.trainer.precision == "bf16-mixed"


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_the_supcon_linear_evaluation_runs_at_the_readmes_lr_5(dataset, tmp_path):
    # SupContrast README, "Linear evaluation stage" of SupCon: --learning_rate 5, for CIFAR-10
    # and, with --dataset cifar100, for CIFAR-100 (conf/recipe/supcon_cifar100.yaml)
    cfg = compose_config([f"dataset={dataset}"], output_dir=tmp_path)
    assert cfg.linear_eval.protocol == "supcon" and cfg.linear_eval.module.optimizer.lr == 5.0


def _lr_at_epoch_start(cfg, epoch: int, steps_per_epoch: int = 49) -> float:
    """The learning rate of the recipe's schedule at the first step of ``epoch`` (from 1)."""
    param = torch.zeros(1, requires_grad=True)
    opt = instantiate(cfg.model.optimizer)(params=[param])
    total = int(cfg.trainer.max_epochs) * steps_per_epoch
    sched = instantiate(cfg.model.scheduler)(
        opt, total_steps=total, steps_per_epoch=steps_per_epoch
    )
    return opt.param_groups[0]["initial_lr"] * sched.lr_lambdas[0]((epoch - 1) * steps_per_epoch)


def _reference_cosine(lr: float, epoch: int, epochs: int) -> float:
    """docs/math.md §10: η_min + (η − η_min)(1 + cos(π e / E))/2 with η_min = 10⁻³ η."""
    low = lr * 1e-3
    return low + (lr - low) * (1 + math.cos(math.pi * epoch / epochs)) / 2


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_the_1000_epoch_recipe_is_the_400_epoch_one_over_the_reference_horizon(dataset, tmp_path):
    short = compose_config([f"dataset={dataset}"], output_dir=tmp_path)
    long = compose_config(
        [f"dataset={dataset}", f"recipe=supcon_{dataset}_1000"], output_dir=tmp_path
    )
    a, b = _flat(short), _flat(long)
    assert {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)} == {
        "trainer.max_epochs",
        "analysis.every_n_epochs",
    }
    assert (short.trainer.max_epochs, long.trainer.max_epochs) == (400, 1000)
    planned = {
        name: AnalysisSchedule(
            c.analysis.epochs, c.analysis.every_n_epochs, c.analysis.at_init
        ).planned(c.trainer.max_epochs)
        for name, c in (("short", short), ("long", long))
    }
    assert 400 in planned["long"] and len(planned["long"]) == len(planned["short"])

    # epoch 400: the end of one cosine, 40 % of the other
    lr = float(short.model.optimizer.lr)
    end, middle = _lr_at_epoch_start(short, 400), _lr_at_epoch_start(long, 400)
    assert end == pytest.approx(_reference_cosine(lr, 400, 400), rel=1e-12)
    assert middle == pytest.approx(_reference_cosine(lr, 400, 1000), rel=1e-12)
    assert middle / end > 100
    # docs/configuration.md states the ratio and both rates as computed here
    docs = (REPO_ROOT / "docs" / "configuration.md").read_text()
    assert f"{middle / end:.0f}" in docs and f"{middle:.3f}" in docs and "5·10⁻⁴" in docs
    assert end == pytest.approx(5e-4, rel=1e-12)
