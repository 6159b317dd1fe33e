"""Each objective's loss against its formula, computed here independently, and the objectives'
table (ncib.objectives) against the model classes it names."""

from __future__ import annotations

import inspect
from functools import partial

import numpy as np
import pytest
import torch
from hydra.utils import get_class
from torch import nn

from ncib.losses import supcon_loss
from ncib.models import PairedClassifier, PairedSupCon, ProjectionHead
from ncib.objectives import OBJECTIVES, SHARED_KEYS


class Identity(nn.Module):
    """An encoder whose features are its flattened input."""

    def __init__(self, feature_dim: int = 6):
        super().__init__()
        self.feature_dim = feature_dim

    def forward(self, x):
        return x.flatten(1)


def classifier(loss, k=4, d=6):
    return PairedClassifier(
        backbone=partial(Identity, d),
        optimizer=partial(torch.optim.SGD, lr=0.1),
        seeds=[0],
        num_classes=k,
        loss=loss,
    )


def batch(b=5, v=1, d=6, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    views = torch.randn(b, v, d, 1, 1, generator=g)  # (B, V, C, H, W) with H = W = 1
    labels = torch.randint(0, k, (b,), generator=g)
    return views, labels


def logits_and_targets(model, views, labels):
    """Logits ``W h + b`` of every view, and each view's label, by hand in float64 numpy."""
    w = model.members[0].head.weight.detach().double().numpy()
    bias = model.members[0].head.bias.detach().double().numpy()
    h = views.double().numpy().reshape(views.shape[0], views.shape[1], -1)
    rows = [
        (h[i, v] @ w.T + bias, int(labels[i]))
        for i in range(len(labels))
        for v in range(h.shape[1])
    ]
    return rows


@pytest.mark.parametrize("v", [1, 2])
def test_cross_entropy_is_the_mean_negative_log_softmax_of_the_label(v):
    model = classifier("ce")
    views, labels = batch(v=v)
    expected = np.mean(
        [np.log(np.exp(z).sum()) - z[y] for z, y in logits_and_targets(model, views, labels)]
    )
    got = model.member_loss(model.members[0], views, labels)
    assert got.dtype == torch.float32
    assert got.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("v", [1, 2])
def test_mse_is_half_the_squared_error_to_one_hot_summed_over_classes(v):
    model = classifier("mse")
    views, labels = batch(v=v)
    expected = np.mean(
        [0.5 * np.sum((z - np.eye(4)[y]) ** 2) for z, y in logits_and_targets(model, views, labels)]
    )
    got = model.member_loss(model.members[0], views, labels)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_the_classifier_rows_are_the_heads_weights():
    model = classifier("ce")
    rows = model.classifier_rows()
    assert len(rows) == 1 and rows[0].shape == (4, 6) and not rows[0].requires_grad
    torch.testing.assert_close(rows[0], model.members[0].head.weight)
    supcon = contrastive(supervised=True)
    assert supcon.classifier_rows() is None


def test_a_classifier_refuses_an_unknown_loss_or_too_few_classes():
    with pytest.raises(ValueError, match="loss='hinge' is not a classifier loss"):
        classifier("hinge")
    with pytest.raises(ValueError, match="num_classes=1"):
        PairedClassifier(partial(Identity), partial(torch.optim.SGD, lr=0.1), [0], num_classes=1)


def contrastive(supervised, temperature=0.5):
    return PairedSupCon(
        backbone=partial(Identity, 6),
        head=partial(ProjectionHead, out_dim=3, hidden_dim=0),
        optimizer=partial(torch.optim.SGD, lr=0.1),
        seeds=[0],
        temperature=temperature,
        supervised=supervised,
    )


def test_simclr_is_the_contrastive_loss_with_every_sample_its_own_class():
    views, labels = batch(b=6, v=2)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])  # classes repeat: SupCon and SimCLR differ
    simclr, supcon = contrastive(False), contrastive(True)
    supcon.load_state_dict(simclr.state_dict())
    z = simclr.members[0](views.flatten(0, 1)).view(6, 2, -1)
    own = supcon_loss(z, torch.arange(6), 0.5)
    got = simclr.member_loss(simclr.members[0], views, labels)
    torch.testing.assert_close(got, own)
    assert not torch.allclose(supcon.member_loss(supcon.members[0], views, labels), own)
    assert simclr.objective == "simclr" and supcon.objective == "supcon"


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_the_objectives_table_names_each_model_classs_arguments(name):
    objective = OBJECTIVES[name]
    params = set(inspect.signature(get_class(objective.target)).parameters)
    assert params == (SHARED_KEYS - {"_target_"}) | objective.keys
    for key, _ in objective.fixed:
        assert key in params
