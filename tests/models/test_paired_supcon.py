"""The members of a pair are independent under every objective: training beside another member
changes nothing (ncib.models.PairedEncoders)."""

import pytest
import torch
from hydra.utils import instantiate

from ncib.data import DigitsDataModule
from ncib.objectives import OBJECTIVES
from tests.helpers.builders import quiet_trainer, tiny_pair

ALL = sorted(OBJECTIVES)


def build(seeds, objective="supcon"):
    model = tiny_pair(
        seeds, lr=0.2, momentum=0.9, weight_decay=5e-4, warmup_epochs=1, objective=objective
    )
    views = 2 if OBJECTIVES[objective].contrastive else 1
    return model, DigitsDataModule(seeds=seeds, batch_size=128, views=views)


def fit(seeds, steps=6, objective="supcon"):
    model, dm = build(seeds, objective)
    trainer = quiet_trainer(max_epochs=2, max_steps=steps, deterministic=True)
    trainer.fit(model, datamodule=dm)
    return model, trainer


@pytest.mark.parametrize("objective", ALL)
def test_member_trained_in_a_pair_equals_member_trained_alone(objective):
    torch.use_deterministic_algorithms(True)
    try:
        pair, trainer = fit([0, 1], objective=objective)
        alone, _ = fit([0], objective=objective)
    finally:
        torch.use_deterministic_algorithms(False)
    assert trainer.global_step == 6
    m0, solo = pair.members[0].state_dict(), alone.members[0].state_dict()
    initial = build([0], objective)[0].members[0].state_dict()
    moved = max((m0[k].float() - initial[k].float()).abs().max() for k in m0)
    assert moved > 1e-3  # training really changed the weights
    for key in m0:
        torch.testing.assert_close(m0[key], solo[key], atol=1e-6, rtol=0, msg=key)


@pytest.mark.parametrize("objective", ALL)
def test_members_differ_only_by_seed(objective):
    model, _ = build([0, 1], objective)
    a, b = model.members[0].state_dict(), model.members[1].state_dict()
    assert a.keys() == b.keys()
    assert not torch.equal(a["encoder.net.0.0.weight"], b["encoder.net.0.0.weight"])
    again, _ = build([5, 0], objective)
    for key in a:  # encoder and head alike: member 1 of (5, 0) is member 0 of (0, 1)
        torch.testing.assert_close(again.members[1].state_dict()[key], a[key], msg=key)


@pytest.mark.parametrize("objective", ALL)
def test_logs_loss_per_member(objective):
    model, trainer = fit([0, 1], steps=3, objective=objective)
    assert {"train/loss/m0", "train/loss/m1"} <= set(trainer.callback_metrics)
    assert model.objective == objective
    assert model.last_member_losses.shape == (2,)  # what the divergence guard reads


@pytest.mark.parametrize("objective", ALL)
def test_features_are_encoder_outputs(objective):
    model, dm = build([0, 1], objective)
    dm.setup()
    x = dm.eval_transform(dm.splits["test"][0][:4])
    feats = model.eval().features(x)
    assert len(feats) == 2 and feats[0].shape == (4, 32)
    torch.testing.assert_close(feats[1], model.members[1].encoder(x))


def test_needs_a_seed():
    with pytest.raises(ValueError, match="at least one seed"):
        build([])


@pytest.mark.parametrize("objective", ALL)
def test_the_hyper_parameters_hold_plain_seeds(objective, cfg_factory):
    cfg = cfg_factory(f"objective={objective}")
    model = instantiate(cfg.model)  # as the app builds it: Hydra passes seeds as a ListConfig
    for hparams in (model.hparams, model.hparams_initial):  # the checkpoint's, the loggers'
        assert hparams["seeds"] == [0, 1] and type(hparams["seeds"]) is list
