import math

import pytest
import torch

from ncib.models import ConvNet, ProjectionHead, cifar_resnet
from ncib.models.schedules import step_decay, warmup_cosine


def test_convnet_gives_relu_features_of_the_configured_size():
    net = ConvNet(in_channels=1, feature_dim=48, width=8)
    out = net(torch.randn(5, 1, 8, 8))
    assert out.shape == (5, 48) and net.feature_dim == 48
    assert (out >= 0).all()


@pytest.mark.parametrize("name,dim", [("resnet18", 512), ("resnet50", 2048)])
def test_cifar_resnet_stem_and_features(name, dim):
    net = cifar_resnet(name, in_channels=3).eval()
    assert net.conv1.stride == (1, 1) and isinstance(net.maxpool, torch.nn.Identity)
    with torch.no_grad():
        out = net(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, dim) and net.feature_dim == dim and (out >= 0).all()


def test_unknown_resnet_lists_the_options():
    with pytest.raises(ValueError, match=r"unknown ResNet 'resnet7'.*resnet18"):
        cifar_resnet("resnet7")


def test_projection_head_is_normalised():
    head = ProjectionHead(in_dim=16, out_dim=4)
    out = head(torch.randn(7, 16))
    torch.testing.assert_close(out.norm(dim=1), torch.ones(7))


def lr_trace(schedule, steps=100, **kwargs):
    """The learning rate (base 1.0) at each of ``steps`` optimiser steps under ``schedule``."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = schedule(opt, total_steps=steps, steps_per_epoch=10, **kwargs)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs, opt


def test_warmup_then_cosine():
    lrs, opt = lr_trace(warmup_cosine, warmup_epochs=1)
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(1.0)
    assert lrs[55] == pytest.approx(0.5 * (1 + math.cos(math.pi * 45 / 90)))
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    with pytest.raises(ValueError, match="warmup_epochs"):
        warmup_cosine(opt, total_steps=10, steps_per_epoch=1, warmup_epochs=-1)


def test_step_decay_at_fractions_of_training():
    lrs, opt = lr_trace(step_decay, milestones=(0.5, 0.75), gamma=0.1)
    assert lrs[49] == pytest.approx(1.0) and lrs[50] == pytest.approx(0.1)
    assert lrs[74] == pytest.approx(0.1) and lrs[75] == pytest.approx(0.01)
    with pytest.raises(ValueError, match="fractions of training"):
        step_decay(opt, total_steps=10, steps_per_epoch=1, milestones=(60,))
