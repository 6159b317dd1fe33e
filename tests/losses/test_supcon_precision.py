"""The SupCon loss runs in float32 whatever the autocast (docs/math.md §1).

CPU autocast to bfloat16 stands in for the GPU recipe's ``bf16-mixed``: the matmul is on the
lower-precision list of both, so without the loss's guard the logits are bf16 on either. The
case is the terminal phase the paper is about: near-collapsed projections, unit class
prototypes plus within-class noise, B = 1,024 samples in two views (2,048² logits), τ = 0.1,
τ_base = 0.07. At noise 0.02 a bf16 loss gets the gradient wrong by 87 % of its norm
(``experiments/supcon_precision.py`` prints the figures at noise 0.02, 0.1 and 0.5).
"""

from __future__ import annotations

import contextlib

import pytest
import torch
import torch.nn.functional as F

from ncib.losses import supcon_loss
from tests.helpers.builders import tiny_pair

TOLERANCE = 0.01  # relative norm of the gradient difference
REAL_AUTOCAST = torch.autocast


def near_collapse(
    noise: float, seed: int = 0, classes: int = 10, batch: int = 1024, dim: int = 128
):
    """Pre-normalisation projections ``(B, 2, D)``: unit class prototypes plus N(0, noise²)
    per coordinate, and labels ``(B,)`` (balanced classes)."""
    g = torch.Generator().manual_seed(seed)
    prototypes = F.normalize(torch.randn(classes, dim, generator=g), dim=-1)
    labels = torch.arange(batch) % classes
    features = prototypes[labels][:, None, :] + noise * torch.randn(batch, 2, dim, generator=g)
    return features, labels


def loss_gradient(features, labels, bf16_autocast: bool, dtype=torch.float32, normalise=True):
    """The loss and its gradient with respect to ``features``: pre-normalisation features, with
    the head's normalisation inside the autocast region as in training (or projections as
    they are, ``normalise=False``)."""
    f = features.detach().to(dtype).clone().requires_grad_(True)
    with REAL_AUTOCAST("cpu", dtype=torch.bfloat16, enabled=bf16_autocast):
        p = F.normalize(f, dim=-1) if normalise else f
        loss = supcon_loss(p, labels, 0.1, base_temperature=0.07)
    loss.backward()
    return loss.detach(), f.grad


def relative_error(grad, reference) -> float:
    return float((grad.double() - reference.double()).norm() / reference.double().norm())


def _unguarded_autocast(device_type, dtype=None, enabled=True, **kwargs):
    """``torch.autocast`` with ``enabled=False`` ignored: the loss's guard planted away."""
    if not enabled:
        return contextlib.nullcontext()
    return REAL_AUTOCAST(device_type, dtype=dtype, enabled=enabled, **kwargs)


@pytest.mark.parametrize(
    "noise",
    [0.02, pytest.param(0.1, marks=pytest.mark.slow), pytest.param(0.5, marks=pytest.mark.slow)],
)
def test_gradient_under_bf16_autocast_is_the_float32_gradient(noise, monkeypatch):
    features, labels = near_collapse(noise)
    loss32, grad32 = loss_gradient(features, labels, bf16_autocast=False)
    # the float32 reference itself is right: float64 agrees far inside the tolerance
    _, grad64 = loss_gradient(features, labels, bf16_autocast=False, dtype=torch.float64)
    assert relative_error(grad32, grad64) < TOLERANCE / 100
    loss, grad = loss_gradient(features, labels, bf16_autocast=True)
    assert relative_error(grad, grad32) < TOLERANCE
    torch.testing.assert_close(loss, loss32, rtol=1e-6, atol=0, check_dtype=False)
    assert loss.dtype == torch.float32 and grad.dtype == torch.float32
    if noise == 0.02:
        # the case has teeth: without the guard the bf16 gradient is mostly rounding
        monkeypatch.setattr(torch, "autocast", _unguarded_autocast)
        _, grad_bf16 = loss_gradient(features, labels, bf16_autocast=True)
        assert relative_error(grad_bf16, grad32) > 0.3


def test_bf16_projections_are_contrasted_in_float32():
    """A head that hands over bf16 projections: the loss is the float32 loss of the same values
    (only their own rounding remains), not a bf16 computation."""
    features, labels = near_collapse(0.02, batch=512)
    values = F.normalize(features, dim=-1).bfloat16()
    exact, grad_exact = loss_gradient(values.float(), labels, bf16_autocast=False, normalise=False)
    p = values.clone().requires_grad_(True)
    loss = supcon_loss(p, labels, 0.1, base_temperature=0.07)
    loss.backward()
    torch.testing.assert_close(loss, exact, rtol=1e-6, atol=0, check_dtype=False)
    assert loss.dtype == torch.float32
    # the gradient comes back in the input's dtype: only its own rounding, 2⁻⁹ per entry
    assert p.grad.dtype == torch.bfloat16
    assert relative_error(p.grad, grad_exact) < 2.0**-8


def test_projections_reach_the_gather_in_float32_under_autocast(monkeypatch):
    """Under bf16 autocast the head runs in bf16 (on the CPU its normalisation too); the member
    hands float32 projections to the DDP gather and the loss."""
    import ncib.models.supcon as paired

    model = tiny_pair([0])
    gathered = []

    def recording_gather(x):
        gathered.append(x.dtype)
        return x

    monkeypatch.setattr(paired, "gather_with_grad", recording_gather)
    views, labels = torch.randn(6, 2, 1, 8, 8), torch.arange(6) % 3
    with REAL_AUTOCAST("cpu", dtype=torch.bfloat16):
        assert model.members[0](views[:, 0]).dtype == torch.bfloat16  # what the head returns
        loss = model.member_loss(model.members[0], views, labels)
    assert gathered[0] == torch.float32 and loss.dtype == torch.float32
