"""Simplex ETF statistics, NC1, NCC and NC4 (docs/math.md §6)."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
import torch

from ncib.analysis import (
    class_means,
    nc1,
    nc4_agreement,
    ncc_predict,
    simplex_etf_stats,
)

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


def _slow_nc1(h: np.ndarray, y: np.ndarray, k: int, rcond: float | None = None) -> float:
    """tr(Σ_W Σ_B⁺)/K, per sample and per class; ``rcond`` cuts Σ_B's singular values below
    ``rcond·σ_max`` (numpy's default when None)."""
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
    pinv = np.linalg.pinv(sb) if rcond is None else np.linalg.pinv(sb, rcond=rcond)
    return float(np.trace(sw @ pinv) / k)


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


def _labelled(seed: int, n=200, d=6, k=4):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, k, (n,), generator=g)
    y[:k] = torch.arange(k)  # every class present
    centres = 2.0 * torch.randn(k, d, generator=g, dtype=torch.float64)
    return centres[y] + torch.randn(n, d, generator=g, dtype=torch.float64), y


def test_class_means_and_ncc_name_the_bad_features():
    h, y = _labelled(0)
    wrong_type = r"^h must be a torch\.Tensor of shape \(N, d\), got list$"
    with pytest.raises(TypeError, match=wrong_type):
        class_means(h.tolist(), y, 4)
    with pytest.raises(TypeError, match=wrong_type):
        ncc_predict(h, y, h.tolist(), 4)
    with pytest.raises(ValueError, match=r"^h must be 2-D \(N, d\), got shape \(6,\)$"):
        ncc_predict(h, y, h[0], 4)


def test_class_means_reject_non_finite_features():
    h, y = _labelled(1)
    for bad in (math.nan, math.inf):
        h_bad = h.clone()
        h_bad[5, 2] = bad
        with pytest.raises(
            ValueError, match=r"^h contains NaN or inf; class means need finite features$"
        ):
            class_means(h_bad, y, 4)


def test_nc1_carries_the_class_mean_warnings():
    h, y = _labelled(2, k=5)
    keep = y != 2
    h, y = h[keep], y[keep]
    note = "class_means: 1 of 5 classes have no samples (2); statistics use the 4 present classes"
    with pytest.warns(RuntimeWarning, match=re.escape(note)):
        res = nc1(h, y, 5)
    assert res.warnings == (note,)
    assert res.rank_b == 3


def test_nc1_rtol_cuts_the_small_between_class_directions():
    h, y = _labelled(3)
    mus = torch.stack([h[y == c].mean(0) for c in range(4)])
    s = torch.linalg.svdvals(mus - mus.mean(0))
    ratios = (s / s[0]).square()  # 1 > ratio_2 > ratio_3 > 0
    rtol = float(ratios[1] + ratios[2]) / 2  # keeps the two largest
    res = nc1(h, y, 4, rtol=rtol)
    assert res.rank_b == 2
    expected = _slow_nc1(h.numpy(), y.numpy(), 4, rcond=rtol)
    np.testing.assert_allclose(float(res.value), expected, rtol=1e-9)
    assert nc1(h, y, 4).rank_b == 3  # the default keeps all K − 1 directions
    assert abs(float(res.value) - float(nc1(h, y, 4).value)) > 1e-3


@pytest.mark.parametrize("scale", [1e-3, 1e-6, 1e3])
def test_nc1_is_scale_invariant(scale):
    """Small features (largest singular value of the centred means below 1) are not collapsed."""
    h, y = _labelled(4)
    base = nc1(h, y, 4)
    scaled = nc1(h * scale, y, 4)
    assert scaled.rank_b == base.rank_b == 3
    np.testing.assert_allclose(float(scaled.value), float(base.value), rtol=1e-9)


def test_nc1_of_coinciding_class_means_is_inf_with_a_warning():
    h = torch.tensor([[1.0, 2.0], [-1.0, -2.0], [3.0, 0.5], [-3.0, -0.5]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1])  # both class means are exactly 0
    message = "nc1: all class means coincide: Σ_B = 0, NC1 is undefined and reported as inf"
    with pytest.warns(RuntimeWarning, match=f"^{re.escape(message)}$"):
        res = nc1(h, y, 2)
    assert res.rank_b == 0 and type(res.rank_b) is int
    assert res.value.dtype == torch.float64 and res.value.ndim == 0
    assert math.isinf(float(res.value)) and float(res.value) > 0
    assert res.warnings == (message,)


def test_ncc_infers_the_number_of_classes_from_the_training_labels():
    h, y = _labelled(5, k=5)
    g = torch.Generator().manual_seed(50)
    h_new = h[:40] + torch.randn(40, h.shape[1], generator=g, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # max(y) + 1 classes, all present: no absent class
        pred = ncc_predict(h, y, h_new)
    assert torch.equal(pred, ncc_predict(h, y, h_new, 5))
    brute = torch.cdist(h_new, torch.stack([h[y == c].mean(0) for c in range(5)])).argmin(1)
    assert torch.equal(pred, brute)


def test_ncc_of_float32_features_decides_in_float32():
    """The squared norms of the centres ‖(2⁻¹², 1)‖² = 1 + 2⁻²⁴ and ‖(1, 0)‖² = 1 are equal in
    float32: for float32 features the query at the origin is a tie, which goes to the lowest
    class, as a float32 brute force has it."""
    h_train = torch.tensor([[2.0**-12, 1.0], [1.0, 0.0], [-5.0, -5.0]], dtype=torch.float32)
    y = torch.tensor([0, 1, 2])
    query = torch.zeros(3, 2, dtype=torch.float32)
    brute = torch.cdist(query, h_train).argmin(1)
    assert brute.tolist() == [0, 0, 0]
    assert ncc_predict(h_train, y, query, 3).tolist() == [0, 0, 0]
    # in float64 the second centre is strictly nearer
    assert ncc_predict(h_train.double(), y, query.double(), 3).tolist() == [1, 1, 1]
