"""NC2 of the classifier rows and NC3 self-duality (ncib/analysis/classifier.py, docs/math.md
§6a): planted geometries with known values, then the looped numpy reference on random data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ncib.analysis import PairAnalysis, class_means, classifier_stats
from tests.analysis.conftest import random_orthonormal, simplex_vertices
from tests.helpers.reference import classifier_collapse

F64 = torch.float64


def planted_etf(k: int, d: int, seed: int = 0, radius: float = 2.0, offset: float = 5.0):
    """One sample per class at ``μ_k = M_k + b``: ``M`` an exact simplex ETF of norm ``radius``
    in a random (k−1)-dimensional subspace of ℝ^d, ``b`` a common offset far from 0 (a
    statistic that forgets to centre sees it). Returns ``(h, y, M, basis)``, basis ``(d, d)``
    orthonormal with M in its first k−1 columns' span."""
    g = torch.Generator().manual_seed(seed)
    basis = random_orthonormal(d, d, g)
    m = radius * simplex_vertices(k) @ basis[:, : k - 1].T
    h = m + offset * basis[:, -1]  # the offset lies outside the span of M
    return h, torch.arange(k), m, basis


def stats(w, h, y, k):
    return classifier_stats(w, class_means(h, y, k))


# -- planted truths ----------------------------------------------------------------------------
@pytest.mark.parametrize("k", [3, 10])
def test_a_self_dual_simplex_etf_has_zero_nc3_and_the_etf_geometry(k):
    """W = M (the centred means themselves): NC3 = 0, per-class cosine 1, equal norms, every
    pairwise cosine −1/(K−1). The features carry a common offset: uncentred means would not be
    self-dual."""
    h, y, m, _ = planted_etf(k, 2 * k)
    st = stats(m, h, y, k)
    assert float(st.nc3) == pytest.approx(0.0, abs=1e-24)
    assert float(st.nc3_cos) == pytest.approx(1.0, abs=1e-12)
    assert float(st.equinorm) == pytest.approx(0.0, abs=1e-12)
    assert float(st.cos_std) == pytest.approx(0.0, abs=1e-12)
    assert float(st.cos_dev) == pytest.approx(0.0, abs=1e-12)
    assert float(st.cos_mean) == pytest.approx(-1.0 / (k - 1), abs=1e-12)
    assert st.num_classes == k and st.warnings == ()


def test_nc3_ignores_one_common_scale_of_the_classifier():
    """Self-duality is up to one scale (the Frobenius normalisations): W = 7·M is self-dual."""
    h, y, m, _ = planted_etf(6, 9)
    assert float(stats(7.0 * m, h, y, 6).nc3) == pytest.approx(0.0, abs=1e-24)


@pytest.mark.parametrize("theta", [0.3, math.pi / 2, 2.5])
def test_rows_rotated_out_of_the_means_plane_give_two_minus_two_cos_theta(theta):
    """W = cos θ·M + sin θ·P(M), P an isometry onto directions orthogonal to every M_k: each
    row keeps its norm and makes the angle θ with its mean, the Gram matrix of W is that of M,
    so NC2 of W is the ETF's and NC3 = ‖W/‖M‖ − M/‖M‖‖² = 2 − 2 cos θ."""
    k, d = 5, 12
    h, y, m, basis = planted_etf(k, d, seed=3)
    coords = m @ basis[:, : k - 1]  # (k, k−1) coordinates of M in its span
    moved = coords @ basis[:, k - 1 : 2 * (k - 1)].T  # the same coordinates, orthogonal span
    w = math.cos(theta) * m + math.sin(theta) * moved
    st = stats(w, h, y, k)
    assert float(st.nc3) == pytest.approx(2.0 - 2.0 * math.cos(theta), abs=1e-12)
    assert float(st.nc3_cos) == pytest.approx(math.cos(theta), abs=1e-12)
    assert float(st.equinorm) == pytest.approx(0.0, abs=1e-12)
    assert float(st.cos_mean) == pytest.approx(-1.0 / (k - 1), abs=1e-12)
    assert float(st.cos_std) == pytest.approx(0.0, abs=1e-12)


def test_per_class_scales_give_the_closed_form():
    """W_k = a_k M_k (a_k > 0) on an ETF of equal norms r: cosines unchanged (cos_std 0,
    per-class cosine 1), equinorm = std(a)/mean(a), and
    NC3 = Σ_k (a_k/‖a‖ − 1/√K)² = 2 − 2 Σa_k / (√K ‖a‖)."""
    k = 4
    h, y, m, _ = planted_etf(k, 7, seed=5)
    a = torch.tensor([0.5, 1.0, 2.0, 3.5], dtype=F64)
    st = stats(a[:, None] * m, h, y, k)
    nc3 = 2.0 - 2.0 * float(a.sum()) / (math.sqrt(k) * float(a.norm()))
    assert float(st.nc3) == pytest.approx(nc3, rel=1e-12)
    assert float(st.equinorm) == pytest.approx(float(a.std(unbiased=False) / a.mean()), rel=1e-12)
    assert float(st.nc3_cos) == pytest.approx(1.0, abs=1e-12)
    assert float(st.cos_std) == pytest.approx(0.0, abs=1e-12)
    assert float(st.cos_mean) == pytest.approx(-1.0 / (k - 1), abs=1e-12)


def test_nc3_of_the_negated_means_is_its_maximum_four():
    h, y, m, _ = planted_etf(5, 8)
    st = stats(-m, h, y, 5)
    assert float(st.nc3) == pytest.approx(4.0, rel=1e-12)
    assert float(st.nc3_cos) == pytest.approx(-1.0, abs=1e-12)


def test_the_global_mean_is_the_mean_of_the_class_means_not_of_the_samples():
    """Unbalanced classes: μ_G is the plain average of the class means (as etf.py), so an ETF
    of means stays self-dual whatever the class sizes."""
    k = 4
    h, _, m, _ = planted_etf(k, 6, seed=2)
    counts = [1, 2, 5, 9]
    y = torch.cat([torch.full((c,), i) for i, c in enumerate(counts)])
    hs = h[y]
    assert float(stats(m, hs, y, k).nc3) == pytest.approx(0.0, abs=1e-24)


def test_absent_classes_are_left_out_of_both_with_a_warning():
    """A class without samples: its row (garbage here) is dropped, K counts the present classes
    (cos target −1/(K−1) of those), and the warning of class_means is carried."""
    k = 5
    h4, _, m4, _ = planted_etf(4, 6, seed=4)
    h = torch.cat([h4[:2], torch.zeros(1, 6, dtype=F64), h4[2:]])  # class 2 gets no sample
    y = torch.tensor([0, 1, 3, 4])
    w = torch.cat([m4[:2], torch.full((1, 6), 1e6, dtype=F64), m4[2:]])
    with pytest.warns(RuntimeWarning, match="1 of 5 classes have no samples"):
        st = stats(w, h[y], y, k)
    assert st.num_classes == 4
    assert float(st.nc3) == pytest.approx(0.0, abs=1e-20)
    assert float(st.cos_mean) == pytest.approx(-1.0 / 3.0, abs=1e-12)
    assert any("no samples" in msg for msg in st.warnings)


def test_zero_rows_and_coinciding_means_are_named_and_nc3_is_nan():
    h, y, m, _ = planted_etf(4, 6)
    with pytest.warns(RuntimeWarning) as caught:
        st = stats(torch.zeros_like(m), h, y, 4)
    assert math.isnan(float(st.nc3))
    assert any("classifier rows are all zero: NC3" in w for w in st.warnings)
    assert any("some classifier rows are zero" in w for w in st.warnings)
    assert len(caught) == len(st.warnings) == 2
    with pytest.warns(RuntimeWarning) as caught:
        st = stats(m, torch.ones(4, 6, dtype=F64), y, 4)
    assert math.isnan(float(st.nc3))
    assert any("all class means coincide: NC3" in w for w in st.warnings)
    assert len(caught) == len(st.warnings) == 2  # and the per-class cosines of zero means


def test_float32_inputs_give_float64_statistics():
    h, y, m, _ = planted_etf(5, 8)
    st = stats(m.float(), h.float(), y, 5)
    assert st.nc3.dtype == F64 and st.equinorm.dtype == F64
    assert float(st.nc3) < 1e-12


@pytest.mark.parametrize(
    ("shape", "match"),
    [((5, 8), r"classifier rows have shape \(5, 8\) but the class means are \(4, 8\)"),
     ((4, 9), r"classifier rows have shape \(4, 9\) but the class means are \(4, 8\)")],
)  # fmt: skip
def test_rows_of_the_wrong_shape_are_refused_with_both_shapes(shape, match):
    h, y, _, _ = planted_etf(4, 8)
    with pytest.raises(ValueError, match=match):
        stats(torch.ones(shape, dtype=F64), h, y, 4)


def test_non_finite_rows_are_refused():
    h, y, m, _ = planted_etf(4, 8)
    m[1, 2] = math.nan
    with pytest.raises(ValueError, match="classifier rows contain NaN or inf"):
        stats(m, h, y, 4)


@pytest.mark.slow
def test_k_1000_d_2048_rotation_closed_form():
    """ImageNet scale: K = 1000 classes, d = 2048 (ResNet-50): the rotation's closed form holds
    (the statistics hold K×K cosines, never K×K×d)."""
    k, d, theta = 1000, 2048, 0.7
    h, y, m, basis = planted_etf(k, d, seed=11)
    moved = (m @ basis[:, : k - 1]) @ basis[:, k - 1 : 2 * (k - 1)].T
    st = stats(math.cos(theta) * m + math.sin(theta) * moved, h, y, k)
    assert float(st.nc3) == pytest.approx(2.0 - 2.0 * math.cos(theta), abs=1e-10)
    assert float(st.cos_mean) == pytest.approx(-1.0 / (k - 1), abs=1e-10)
    assert float(st.cos_std) == pytest.approx(0.0, abs=1e-10)


# -- the independent reference -------------------------------------------------------------------
def random_case(k: int, d: int, per_class: int, missing=(), seed: int = 0):
    g = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), per_class)
    y = y[~np.isin(y, missing)]
    centres = g.standard_normal((k, d)) * 2.0 + 1.5
    h = centres[y] + g.standard_normal((len(y), d))
    w = 0.6 * (centres - centres.mean(0)) + g.standard_normal((k, d)) + 0.3
    return h, y, w


@pytest.mark.parametrize(
    ("k", "d", "per_class", "missing"),
    [(7, 5, 13, ()), (7, 20, 4, (3,)), (100, 120, 3, ()), (100, 64, 3, (0, 57))],
)
def test_agrees_with_the_looped_numpy_reference(k, d, per_class, missing):
    h, y, w = random_case(k, d, per_class, missing, seed=k + d)
    want = classifier_collapse(h, y, k, w)
    if missing:
        with pytest.warns(RuntimeWarning, match="have no samples"):
            got = stats(torch.from_numpy(w), torch.from_numpy(h), torch.from_numpy(y), k)
    else:
        got = stats(torch.from_numpy(w), torch.from_numpy(h), torch.from_numpy(y), k)
    assert got.num_classes == want["num_classes"] == k - len(missing)
    for name in ("equinorm", "cos_mean", "cos_std", "cos_dev", "nc3", "nc3_cos"):
        value = "nc3_cos" if name == "nc3_cos" else name
        assert float(getattr(got, value)) == pytest.approx(want[name], rel=1e-10, abs=1e-13), name
    # the data is far from collapse: every statistic is away from its ETF value
    assert want["nc3"] > 0.1 and want["equinorm"] > 0.01 and want["cos_std"] > 0.01


def test_pair_analysis_gives_each_member_its_own_rows_and_refuses_none(make_collapsed_pair):
    (z0, z1), (t0, t1), y, y_test = make_collapsed_pair(0)
    k = int(y.max()) + 1
    g = torch.Generator().manual_seed(1)
    rows = (torch.randn(k, z0.shape[1], generator=g), torch.randn(k, z1.shape[1], generator=g))
    pa = PairAnalysis((z0, z1), (t0, t1), y, y_test, num_classes=k, classifier=rows)
    assert pa.has_classifier
    for m in range(2):
        want = classifier_collapse(z0.numpy() if m == 0 else z1.numpy(), y.numpy(), k, rows[m])
        assert float(pa.classifier(m).nc3) == pytest.approx(want["nc3"], rel=1e-10)
    bare = PairAnalysis((z0, z1), (t0, t1), y, y_test, num_classes=k)
    assert not bare.has_classifier
    with pytest.raises(ValueError, match=r"no classifier rows.*objective=ce or mse"):
        bare.classifier(0)
    with pytest.raises(ValueError, match=r"member 1: classifier rows have shape \(3, 16\)"):
        PairAnalysis(
            (z0, z1), (t0, t1), y, y_test, num_classes=k, classifier=(rows[0], rows[1][:3])
        )
