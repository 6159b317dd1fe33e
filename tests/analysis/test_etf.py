"""Simplex ETF statistics, NC1, NCC and NC4 (docs/math.md §6)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ncib.analysis import class_means, nc1, nc4_agreement, ncc_predict, simplex_etf_stats

from .conftest import random_orthonormal, simplex_vertices

SEEDS = [0, 1, 2]


def _planted_etf(seed: int, k: int, d: int, per_class: int = 30):
    g = torch.Generator().manual_seed(seed)
    scale = float(torch.rand(1, generator=g)) * 10 + 0.1
    means = scale * simplex_vertices(k) @ random_orthonormal(d, k - 1, g).T
    means += 5.0 * torch.randn(d, generator=g, dtype=torch.float64)  # global offset
    y = torch.arange(k).repeat_interleave(per_class)
    noise = torch.randn(len(y), d, generator=g, dtype=torch.float64)
    for c in range(k):  # zero within-class mean: the class means are exactly the planted ones
        noise[y == c] -= noise[y == c].mean(0)
    return means[y] + noise, y


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("k", "extra_dims"), [(3, 0), (5, 0), (5, 7), (10, 30)])
def test_planted_simplex_etf(seed, k, extra_dims):
    h, y = _planted_etf(seed, k, k - 1 + extra_dims)
    st = simplex_etf_stats(h, y, k)
    assert float(st.equinorm) < 1e-10
    np.testing.assert_allclose(float(st.cos_mean), -1 / (k - 1), atol=1e-10)
    assert float(st.cos_std) < 1e-10
    assert float(st.angle_std_deg) < 1e-10
    assert float(st.cos_dev) < 1e-10
    assert st.num_classes == k


def _random_labelled(seed: int, n=300, d=12, k=5):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, k, (n,), generator=g)
    y[:k] = torch.arange(k)  # every class present, counts unequal
    centres = 2.0 * torch.randn(k, d, generator=g, dtype=torch.float64)
    h = centres[y] + torch.randn(n, d, generator=g, dtype=torch.float64) + 3.0
    return h, y


@pytest.mark.parametrize("seed", SEEDS)
def test_etf_stats_match_manual(seed):
    h, y = _random_labelled(seed)
    k = 5
    hn, yn = h.numpy(), y.numpy()
    mus = np.stack([hn[yn == c].mean(0) for c in range(k)])
    m = mus - mus.mean(0)  # global mean = mean of class means, not the sample mean
    assert not np.allclose(mus.mean(0), hn.mean(0))  # the distinction matters for this data
    norms = np.linalg.norm(m, axis=1)
    cos = (m @ m.T) / np.outer(norms, norms)
    pairs = cos[~np.eye(k, dtype=bool)]
    st = simplex_etf_stats(h, y, k)
    np.testing.assert_allclose(float(st.equinorm), norms.std() / norms.mean(), rtol=1e-10)
    np.testing.assert_allclose(float(st.cos_mean), pairs.mean(), rtol=1e-10)
    np.testing.assert_allclose(float(st.cos_std), pairs.std(), rtol=1e-9)
    np.testing.assert_allclose(
        float(st.angle_std_deg), np.degrees(np.arccos(pairs)).std(), rtol=1e-9
    )
    np.testing.assert_allclose(float(st.cos_dev), np.abs(pairs + 1 / (k - 1)).mean(), rtol=1e-10)
    np.testing.assert_allclose(class_means(h, y, k).global_mean.numpy(), mus.mean(0), rtol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_nc1_zero_when_collapsed(seed):
    h, y = _random_labelled(seed)
    collapsed = class_means(h, y, 5).means[y]
    assert float(nc1(collapsed, y, 5).value) < 1e-20
    assert float(nc1(h, y, 5).value) > 1e-3  # and not zero otherwise


def _slow_nc1(h: np.ndarray, y: np.ndarray, k: int) -> float:
    d = h.shape[1]
    mus = {c: h[y == c].mean(0) for c in range(k)}
    mu_g = np.mean(list(mus.values()), axis=0)
    sw = np.zeros((d, d))
    for i in range(len(y)):  # per sample
        r = h[i] - mus[y[i]]
        sw += np.outer(r, r)
    sw /= len(y)
    sb = np.zeros((d, d))
    for c in range(k):  # per class
        sb += np.outer(mus[c] - mu_g, mus[c] - mu_g)
    sb /= k
    return float(np.trace(sw @ np.linalg.pinv(sb)) / k)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("d", "k"), [(12, 5), (3, 5), (20, 2)])
def test_nc1_matches_slow_reference(seed, d, k):
    h, y = _random_labelled(seed, d=d, k=k)
    res = nc1(h, y, k)
    np.testing.assert_allclose(float(res.value), _slow_nc1(h.numpy(), y.numpy(), k), rtol=1e-9)
    assert res.rank_b == min(d, k - 1)


@pytest.mark.parametrize("seed", SEEDS)
def test_ncc_is_nearest_centre(seed):
    h, y = _random_labelled(seed)
    g = torch.Generator().manual_seed(seed + 100)
    h_new = h[:50] + torch.randn(50, h.shape[1], generator=g, dtype=torch.float64)
    pred = ncc_predict(h, y, h_new, 5)
    brute = torch.cdist(h_new, class_means(h, y, 5).means).argmin(1)
    assert torch.equal(pred, brute)


@pytest.mark.parametrize("seed", SEEDS)
def test_nc4_agreement(seed):
    h, y = _random_labelled(seed)
    pred = ncc_predict(h, y, h, 5)
    assert float(nc4_agreement(pred, pred.clone())) == 1.0  # probe = the NCC rule
    flipped = pred.clone()
    flipped[:7] = (flipped[:7] + 1) % 5
    np.testing.assert_allclose(float(nc4_agreement(pred, flipped)), 1 - 7 / len(pred))
    with pytest.raises(ValueError, match="equal length"):
        nc4_agreement(pred, pred[:-1])


@pytest.mark.parametrize("seed", SEEDS)
def test_float32_features_close_to_float64(seed):
    h, y = _random_labelled(seed)
    a, b = simplex_etf_stats(h, y, 5), simplex_etf_stats(h.float(), y, 5)
    np.testing.assert_allclose(float(b.cos_mean), float(a.cos_mean), atol=1e-5)
    np.testing.assert_allclose(
        float(nc1(h.float(), y, 5).value), float(nc1(h, y, 5).value), rtol=1e-4
    )


def test_ncc_never_predicts_a_class_absent_from_training():
    """Class 2 has no training samples: its (empty) centre must not attract anything, though
    the test points sit at the origin, where an absent class's zero row of means would win."""
    g = torch.Generator().manual_seed(0)
    k, d = 5, 6
    centres = 4.0 + 3.0 * torch.randn(k, d, generator=g, dtype=torch.float64)
    y = torch.tensor([c for c in range(k) if c != 2]).repeat_interleave(20)
    h = centres[y] + 0.1 * torch.randn(len(y), d, generator=g, dtype=torch.float64)
    h_new = torch.cat([0.01 * torch.randn(30, d, generator=g, dtype=torch.float64), h[:10]])
    with pytest.warns(RuntimeWarning, match="no samples"):
        pred = ncc_predict(h, y, h_new, k)
    assert not bool((pred == 2).any())
    present = torch.tensor([0, 1, 3, 4])
    brute = present[torch.cdist(h_new, torch.stack([h[y == c].mean(0) for c in present])).argmin(1)]
    assert torch.equal(pred, brute) and torch.equal(pred[30:], y[:10])


def test_given_class_means_are_used_not_recomputed():
    h, y = _planted_etf(0, 4, 6)
    other, _ = _planted_etf(1, 4, 6)
    st = simplex_etf_stats(h, y, 4, means=class_means(other, y, 4))
    torch.testing.assert_close(st.norms, simplex_etf_stats(other, y, 4).norms, rtol=0, atol=0)
    assert not torch.allclose(st.norms, simplex_etf_stats(h, y, 4).norms)
    # nc1 and ncc_predict take them too: nc1 with h's own means given is nc1 of h; other means
    # move the residuals and Σ_B; NCC predicts by the given centres
    torch.testing.assert_close(nc1(h, y, 4, means=class_means(h, y, 4)).value, nc1(h, y, 4).value)
    assert (
        abs(float(nc1(h, y, 4, means=class_means(other, y, 4)).value - nc1(h, y, 4).value)) > 1e-3
    )
    given = ncc_predict(h, y, other, 4, means=class_means(other, y, 4))
    assert torch.equal(given, ncc_predict(other, y, other, 4))
    assert not torch.equal(given, ncc_predict(h, y, other, 4))


def test_a_class_mean_at_the_global_mean_warns_and_gets_zero_cosines():
    h = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    message = "simplex_etf_stats: some class means coincide with the global mean; their cosines"
    with pytest.warns(RuntimeWarning, match=f"^{message}"):
        st = simplex_etf_stats(h, torch.tensor([0, 1, 2]), 3)
    assert st.warnings == (message + " are taken as 0",)
    assert torch.equal(st.cosines[2, :2], torch.zeros(2, dtype=torch.float64))


def test_cosines_are_clamped_to_minus_one_and_one():
    # seed 6: u·u rounds to 1 + 2⁻⁵² for this unit vector (and u·(−u) to −1 − 2⁻⁵²); the
    # class means v, v, −2v are centred already (their mean is exactly 0)
    v = torch.randn(3, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    u = v / v.norm()
    assert float(u @ u) > 1.0 and float(u @ -u) < -1.0
    st = simplex_etf_stats(torch.stack([v, v, -2 * v]), torch.tensor([0, 1, 2]), 3)
    assert float(st.cosines[0, 1]) == 1.0 and float(st.cosines[0, 2]) == -1.0
    expected = torch.tensor([1.0, -1.0, -1.0] * 2, dtype=torch.float64)  # off-diagonal pairs
    torch.testing.assert_close(st.cos_mean, expected.mean(), rtol=0, atol=1e-15)
    angles = torch.tensor([0.0, 180.0, 180.0] * 2, dtype=torch.float64)
    torch.testing.assert_close(st.angle_std_deg, angles.std(unbiased=False), rtol=1e-12, atol=0)


def test_norms_and_cosines_are_those_of_the_centred_class_means():
    h, y = _planted_etf(2, 4, 6, per_class=5)
    centred = torch.stack([h[y == c].mean(0) for c in range(4)])
    centred = centred - centred.mean(0)
    st = simplex_etf_stats(h, y, 4)
    torch.testing.assert_close(st.norms, centred.norm(dim=1), rtol=1e-12, atol=0)
    unit = centred / centred.norm(dim=1, keepdim=True)
    torch.testing.assert_close(st.cosines, unit @ unit.T, rtol=0, atol=1e-12)


def test_nc4_agreement_counts_and_rejects_bad_shapes():
    assert float(nc4_agreement(torch.tensor([3]), torch.tensor([3]))) == 1.0  # one prediction
    assert float(nc4_agreement(torch.tensor([1, 2, 3, 4]), torch.tensor([1, 0, 3, 0]))) == 0.5
    with pytest.raises(ValueError, match=r"^NC4 agreement needs at least one prediction$"):
        nc4_agreement(torch.tensor([]), torch.tensor([]))
    message = r"^predictions must be 1-D and of equal length, got shapes \(3,\) and \(2,\)$"
    with pytest.raises(ValueError, match=message):
        nc4_agreement(torch.tensor([1, 2, 3]), torch.tensor([1, 2]))
