"""The members of a pair are independent: training beside another member changes nothing."""

import pytest
import torch

from ncib.data import DigitsDataModule
from tests.helpers.builders import quiet_trainer, tiny_pair


def build(seeds):
    model = tiny_pair(seeds, lr=0.2, momentum=0.9, weight_decay=5e-4, warmup_epochs=1)
    return model, DigitsDataModule(seeds=seeds, batch_size=128)


def fit(seeds, steps=6):
    model, dm = build(seeds)
    trainer = quiet_trainer(max_epochs=2, max_steps=steps, deterministic=True)
    trainer.fit(model, datamodule=dm)
    return model, trainer


def test_member_trained_in_a_pair_equals_member_trained_alone():
    torch.use_deterministic_algorithms(True)
    try:
        pair, trainer = fit([0, 1])
        alone, _ = fit([0])
    finally:
        torch.use_deterministic_algorithms(False)
    assert trainer.global_step == 6
    m0, solo = pair.members[0].state_dict(), alone.members[0].state_dict()
    initial = build([0])[0].members[0].state_dict()
    moved = max((m0[k].float() - initial[k].float()).abs().max() for k in m0)
    assert moved > 1e-3  # training really changed the weights
    for key in m0:
        torch.testing.assert_close(m0[key], solo[key], atol=1e-6, rtol=0, msg=key)


def test_members_differ_only_by_seed():
    model, _ = build([0, 1])
    a, b = model.members[0].state_dict(), model.members[1].state_dict()
    assert a.keys() == b.keys()
    assert not torch.equal(a["encoder.net.0.0.weight"], b["encoder.net.0.0.weight"])
    again, _ = build([5, 0])
    torch.testing.assert_close(
        again.members[1].state_dict()["encoder.net.0.0.weight"], a["encoder.net.0.0.weight"]
    )


def test_logs_loss_per_member():
    model, trainer = fit([0, 1], steps=3)
    assert {"train/loss/m0", "train/loss/m1"} <= set(trainer.callback_metrics)


def test_features_are_encoder_outputs():
    model, dm = build([0, 1])
    dm.setup()
    x = dm.eval_transform(dm.splits["test"][0][:4])
    feats = model.eval().features(x)
    assert len(feats) == 2 and feats[0].shape == (4, 32)
    torch.testing.assert_close(feats[1], model.members[1].encoder(x))


def test_needs_a_seed():
    with pytest.raises(ValueError, match="at least one seed"):
        build([])
