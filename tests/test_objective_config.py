"""The objective group: each objective composes the model, recipe and analysis it names, and a
config that does not fit its objective is refused before any work, naming the key and the
objective (ncib.objectives)."""

from __future__ import annotations

import pytest
from hydra.errors import MissingConfigException
from omegaconf import open_dict

from ncib.config import ConfigError, validate
from ncib.objectives import OBJECTIVES
from ncib.recipe import recipe_name
from tests.conftest import compose_config


@pytest.mark.parametrize("dataset", ["digits", "cifar10", "cifar100"])
@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_every_objective_composes_its_recipe_on_every_dataset_and_validates(
    name, dataset, tmp_path
):
    cfg = compose_config([f"objective={name}", f"dataset={dataset}"], output_dir=tmp_path)
    validate(cfg)
    objective = OBJECTIVES[name]
    assert cfg.objective == name and cfg.model._target_ == objective.target
    assert ("classifier" in cfg.analysis.groups) == objective.classifier
    assert (cfg.dataset.datamodule.views >= 2) == objective.contrastive
    assert ("temperature" in cfg.model) == objective.contrastive


def test_the_cifar_recipes_are_their_references(tmp_path):
    def compose(*overrides):
        return compose_config(["dataset=cifar10", *overrides], output_dir=tmp_path)

    ce = compose("objective=ce")  # main_ce.py --batch_size 1024 --learning_rate 0.8 --cosine
    assert ce.model.optimizer.lr == 0.8 and ce.dataset.datamodule.batch_size == 1024
    assert ce.model.scheduler._target_.endswith("supcon_reference") and ce.trainer.max_epochs == 500
    assert (
        ce.dataset.datamodule.augment.jitter_p == 0
        and ce.dataset.datamodule.augment.grayscale_p == 0
    )
    simclr = compose("objective=simclr")  # main_supcon.py --temp 0.5 --method SimCLR
    assert simclr.model.temperature == 0.5 and simclr.model.supervised is False
    assert simclr.linear_eval.module.optimizer.lr == 1.0
    mse = compose("objective=mse")  # Han et al. 2022: batch 128, 350 epochs, lr ÷10 at 1/3, 2/3
    assert mse.dataset.datamodule.batch_size == 128 and mse.trainer.max_epochs == 350
    assert list(mse.model.scheduler.milestones) == pytest.approx([1 / 3, 2 / 3])
    supcon = compose()
    assert supcon.model.temperature == 0.1 and supcon.model.base_temperature == 0.07


@pytest.mark.parametrize(
    "overrides,message",
    [
        (
            ["objective=ce", "+model.temperature=0.5"],
            "model.temperature does not apply to objective=ce",
        ),
        (["+model.loss=ce"], "model.loss does not apply to objective=supcon"),
        (
            ["objective=simclr", "model.supervised=true"],
            "model.supervised=True contradicts objective=simclr",
        ),
        (["objective=mse", "model.loss=ce"], "model.loss='ce' contradicts objective=mse"),
        (["model=classifier"], "is not the model of objective=supcon"),
        (["dataset.datamodule.views=1"], "views=1 cannot be used with objective=supcon"),
        (["analysis.groups=[gib,classifier]"], "objective=supcon trains none"),
    ],
)
def test_a_config_that_does_not_fit_its_objective_is_refused(overrides, message, tmp_path):
    cfg = compose_config(overrides, output_dir=tmp_path)
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        validate(cfg)


def test_an_objective_without_a_recipe_for_the_dataset_lists_the_recipes(tmp_path):
    with pytest.raises(MissingConfigException, match="recipe/ce_imagenet32"):
        compose_config(["objective=ce", "dataset=imagenet32"], output_dir=tmp_path)


def test_a_supcon_recipe_keeps_its_name_from_before_the_objectives(tmp_path):
    today = compose_config([], output_dir=tmp_path)
    before = today.copy()
    with open_dict(before):
        del before["objective"]  # a run directory's config written before the key existed
    assert recipe_name(today) == recipe_name(before)  # one W&B group, one sweep recipe
    ce = compose_config(["objective=ce"], output_dir=tmp_path)
    assert recipe_name(ce) != recipe_name(today)
