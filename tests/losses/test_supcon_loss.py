import pytest
import torch
import torch.nn.functional as F

from ncib.losses import supcon_loss
from tests.helpers.builders import tiny_pair


def slow_supcon(features, labels, temperature):
    """Khosla et al. eq. 2 (L_out), one anchor and one positive at a time."""
    b, v, _ = features.shape
    p = [features[i, k] for k in range(v) for i in range(b)]
    y = [int(labels[i]) for k in range(v) for i in range(b)]
    total, anchors = 0.0, 0
    for i in range(len(p)):
        positives = [j for j in range(len(p)) if j != i and y[j] == y[i]]
        if not positives:
            continue
        denom = sum(torch.exp(p[i] @ p[a] / temperature) for a in range(len(p)) if a != i)
        total += -sum(
            torch.log(torch.exp(p[i] @ p[j] / temperature) / denom) for j in positives
        ) / len(positives)
        anchors += 1
    return total / anchors


def random_batch(seed, b=12, v=2, d=8, classes=4, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    feats = F.normalize(torch.randn(b, v, d, generator=g, dtype=dtype), dim=-1)
    labels = torch.randint(0, classes, (b,), generator=g)
    return feats, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("views,temperature", [(2, 0.1), (3, 0.5)])
def test_matches_slow_double_loop(seed, views, temperature):
    feats, labels = random_batch(seed, v=views)
    fast = supcon_loss(feats, labels, temperature)
    torch.testing.assert_close(fast, slow_supcon(feats, labels, temperature), atol=1e-6, rtol=0)


@pytest.mark.parametrize("seed", [0, 1])
def test_invariant_to_batch_permutation(seed):
    feats, labels = random_batch(seed, b=16)
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(seed + 10))
    torch.testing.assert_close(
        supcon_loss(feats, labels), supcon_loss(feats[perm], labels[perm]), atol=1e-12, rtol=0
    )


def test_gradcheck_float64():
    feats, labels = random_batch(3, b=6, d=5)
    feats.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda f: supcon_loss(f, labels, 0.3), (feats,))


@pytest.mark.parametrize("seed", [0, 1])
def test_all_labels_distinct_is_nt_xent(seed):
    b, tau = 10, 0.2
    feats, _ = random_batch(seed, b=b)
    labels = torch.arange(b)
    # SimCLR's NT-Xent: each view must pick its partner view among the 2B-1 others
    z = torch.cat([feats[:, 0], feats[:, 1]])
    logits = (z @ z.T / tau).fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(b)])
    nt_xent = F.cross_entropy(logits, target)
    torch.testing.assert_close(supcon_loss(feats, labels, tau), nt_xent, atol=1e-10, rtol=0)


def test_anchors_without_positive_are_excluded_not_nan():
    feats, _ = random_batch(0, b=5, v=1)
    labels = torch.tensor([0, 0, 1, 2, 3])  # only the two 0s have a positive
    loss = supcon_loss(feats, labels)
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss, slow_supcon(feats, labels, 0.1), atol=1e-10, rtol=0)
    no_pos = supcon_loss(feats, torch.arange(5))
    assert no_pos.item() == 0.0


def test_stable_at_tiny_temperature():
    feats, labels = random_batch(0, dtype=torch.float32)
    assert torch.isfinite(supcon_loss(feats, labels, temperature=1e-3))


def test_bad_shapes_are_errors():
    feats, labels = random_batch(0)
    with pytest.raises(ValueError, match=r"\(B, V, D\)"):
        supcon_loss(feats[:, 0], labels)
    with pytest.raises(ValueError, match="labels must have shape"):
        supcon_loss(feats, labels[:-1])
    with pytest.raises(ValueError, match="temperature"):
        supcon_loss(feats, labels, temperature=0.0)


def reference_formula(features, labels, temperature, base_temperature):
    """The reference code's loss, spelt out with plain masks in float64 (every anchor here has a
    positive): views stacked view-major, ``-(τ/τ_base)`` times the mean log-probability of the
    positives of each anchor, averaged over all anchors."""
    b, v, _ = features.shape
    z = torch.cat([features[:, k] for k in range(v)]).double()  # row k*b + i: view k of i
    y = [int(labels[i]) for k in range(v) for i in range(b)]
    n = v * b
    not_self = torch.ones(n, n, dtype=torch.float64)
    same = torch.zeros(n, n, dtype=torch.float64)
    for i in range(n):
        not_self[i, i] = 0.0
        for j in range(n):
            same[i, j] = float(y[i] == y[j])
    positive = same * not_self
    logits = z @ z.T / temperature
    log_prob = logits - torch.log((torch.exp(logits) * not_self).sum(dim=1, keepdim=True))
    mean_log_prob_pos = (positive * log_prob).sum(dim=1) / positive.sum(dim=1)
    return (-(temperature / base_temperature) * mean_log_prob_pos).mean()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    "views,classes,temperature", [(2, 4, 0.1), (3, 3, 0.5), (4, 7, 0.07), (2, 12, 0.2)]
)
def test_base_temperature_matches_reference_formula(seed, views, classes, temperature):
    feats, labels = random_batch(seed, b=12, v=views, classes=classes)
    ours = supcon_loss(feats, labels, temperature, base_temperature=0.07)
    ref = reference_formula(feats, labels, temperature, 0.07)
    torch.testing.assert_close(ours, ref, atol=1e-12, rtol=1e-12)


def test_base_temperature_none_is_factor_one_and_scales_gradients():
    feats, labels = random_batch(4, v=3)
    plain = supcon_loss(feats, labels, 0.1)
    torch.testing.assert_close(supcon_loss(feats, labels, 0.1, base_temperature=0.1), plain)
    torch.testing.assert_close(plain, reference_formula(feats, labels, 0.1, 0.1))
    grads = []
    for base in (None, 0.07):
        f = feats.clone().requires_grad_(True)
        supcon_loss(f, labels, 0.1, base_temperature=base).backward()
        grads.append(f.grad)
    torch.testing.assert_close(grads[1], grads[0] * (0.1 / 0.07), atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("bad", [0.0, -0.07, float("nan")])
def test_bad_base_temperature_is_an_error(bad):
    feats, labels = random_batch(0)
    with pytest.raises(ValueError, match="base_temperature must be > 0"):
        supcon_loss(feats, labels, base_temperature=bad)


def test_paired_supcon_passes_base_temperature_to_the_loss():
    def module(**kwargs):
        return tiny_pair([0], feature_dim=16, width=4, out_dim=8, temperature=0.1, **kwargs)

    views = torch.randn(6, 2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 0, 1, 2, 2])
    plain, scaled = module(), module(base_temperature=0.07)
    assert scaled.hparams.base_temperature == 0.07
    with torch.no_grad():
        a = plain.member_loss(plain.members[0], views, labels)
        b = scaled.member_loss(scaled.members[0], views, labels)
    torch.testing.assert_close(b, a * (0.1 / 0.07))
