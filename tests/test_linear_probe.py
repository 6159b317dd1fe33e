"""Offline linear probe (Table 1) on frozen encoders."""

from functools import partial

import pytest
import torch
from omegaconf import OmegaConf

from ncib.data import DigitsDataModule
from ncib.models import ConvNet, LinearProbe, PairedSupCon, ProjectionHead
from ncib.probe import train_linear_probes
from ncib.run import CONF_DIR


def pair():
    return PairedSupCon(
        backbone=partial(ConvNet, in_channels=1, feature_dim=32, width=8),
        head=partial(ProjectionHead, out_dim=16),
        optimizer=partial(torch.optim.SGD, lr=0.1),
        seeds=[0, 1],
    )


def probe_cfg(**overrides):
    cfg = OmegaConf.load(f"{CONF_DIR}/probe/linear.yaml")
    cfg.merge_with(overrides)
    return cfg


def test_probe_on_frozen_random_encoders_beats_chance_and_leaves_encoders_alone():
    model = pair()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    dm = DigitsDataModule(seeds=[0, 1])
    out = train_linear_probes(model, dm, probe_cfg(epochs=15), accelerator="cpu", progress=False)
    for m in ("m0", "m1"):
        assert 0.6 < out[f"test_acc/{m}"] <= 1.0, out  # chance is 0.1
    assert out["both_correct"] <= min(out["test_acc/m0"], out["test_acc/m1"]) + 1e-12
    assert out["both_correct"] >= out["test_acc/m0"] + out["test_acc/m1"] - 1 - 1e-12
    assert out["num_test"] == 360
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_probe_with_augmented_views_runs_through_the_encoder():
    model = pair()
    dm = DigitsDataModule(seeds=[0, 1], batch_size=256)
    out = train_linear_probes(model, dm, probe_cfg(epochs=2, augment=True), accelerator="cpu", progress=False)
    assert 0.1 < out["test_acc/m0"] <= 1.0


def test_linear_probe_keeps_the_encoder_frozen_in_eval_mode():
    enc = ConvNet(1, 8, 4)
    probe = LinearProbe(enc, 10, optimizer=partial(torch.optim.SGD, lr=0.1), inputs="images")
    probe.train()
    assert not enc.training and not any(p.requires_grad for p in enc.parameters())
    assert probe(torch.randn(3, 1, 8, 8)).shape == (3, 10)
    with pytest.raises(ValueError, match="inputs must be"):
        LinearProbe(enc, 10, optimizer=partial(torch.optim.SGD, lr=0.1), inputs="pixels")
