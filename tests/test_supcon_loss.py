import pytest
import torch
import torch.nn.functional as F

from ncib.losses import supcon_loss


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
        total += -sum(torch.log(torch.exp(p[i] @ p[j] / temperature) / denom) for j in positives) / len(positives)
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
