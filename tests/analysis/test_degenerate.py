"""Degenerate inputs: finite results with recorded warnings, or clear errors (docs/math.md §9)."""

from __future__ import annotations

import math

import pytest
import torch

from ncib.analysis import (
    PairAnalysis,
    canonical_correlations,
    class_means,
    cross_covariance,
    fit_logistic_probe,
    gaussian_ib,
    heldout_identifiability,
    identifiability,
    nc1,
    normal_scores,
    simplex_etf_stats,
)
from ncib.metrics.outputs import ANALYSIS_GROUPS, group_outputs

SEEDS = [0, 1, 2]


def _data(seed: int, n=200, d=6):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, d, generator=g, dtype=torch.float64)
    b = a @ torch.randn(d, d, generator=g, dtype=torch.float64) + torch.randn(
        n, d, generator=g, dtype=torch.float64
    )
    return a, b


def _finite(*tensors: torch.Tensor) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors)


@pytest.mark.parametrize("seed", SEEDS)
def test_constant_column(seed):
    a, b = _data(seed)
    a[:, 2] = 3.25
    with pytest.warns(RuntimeWarning, match="constant"):
        res = canonical_correlations(a, b)
    assert _finite(res.rho, res.directions_a, res.directions_b)
    assert any("constant" in w for w in res.warnings)
    with pytest.warns(RuntimeWarning, match="constant"):
        gib = gaussian_ib(a, b)
    assert _finite(gib.lam, gib.v, gib.information_curve([2.0, 10.0]).i_ty)
    assert torch.all(normal_scores(a)[:, 2] == 0.0)  # all tied: rank (N+1)/2, Φ⁻¹(½) = 0
    y = torch.arange(a.shape[0]) % 3
    with pytest.warns(RuntimeWarning, match="constant"):
        probe = fit_logistic_probe(a, y, a, y)
    assert _finite(probe.weight) and any("constant" in w for w in probe.warnings)


@pytest.mark.parametrize("seed", SEEDS)
def test_duplicated_column(seed):
    a, b = _data(seed)
    a = torch.cat([a, a[:, :1]], 1)
    with pytest.warns(RuntimeWarning, match="rank deficient"):
        res = identifiability(a, b, k=3)
    assert _finite(res.mean, res.var, res.spectrum)
    assert any("rank deficient" in w for w in res.warnings)


@pytest.mark.parametrize("seed", SEEDS)
def test_fewer_samples_than_dimensions(seed):
    a, b = _data(seed, n=10, d=20)
    with pytest.warns(RuntimeWarning) as caught:
        res = canonical_correlations(a, b)
    emitted = [str(w.message) for w in caught]
    assert any("N=10 samples <= d=20" in m for m in emitted)
    assert any("rank deficient" in m for m in emitted)
    assert _finite(res.rho, res.directions_a) and float(res.rho.max()) <= 1.0
    assert any("N=10" in w for w in res.warnings)
    with pytest.warns(RuntimeWarning):
        gib = gaussian_ib(a, b)
    assert _finite(gib.lam, gib.beta_crit[:9], gib.mutual_information())
    assert float(gib.lam.min()) > 0
    with pytest.warns(RuntimeWarning):
        held = heldout_identifiability(a, b, a[:5], b[:5], k=4)
    assert _finite(held.rho_k)


@pytest.mark.parametrize("seed", SEEDS)
def test_class_absent_from_a_split(seed):
    g = torch.Generator().manual_seed(seed)
    k = 4
    y = torch.arange(120) % k
    h = (
        torch.randn(120, 5, generator=g, dtype=torch.float64)
        + 3 * torch.nn.functional.one_hot(y % 5, 5).double()
    )
    keep = y != 2
    with pytest.warns(RuntimeWarning, match="no samples"):
        st = simplex_etf_stats(h[keep], y[keep], k)
    assert st.num_classes == 3 and any("no samples" in w for w in st.warnings)
    assert _finite(st.equinorm, st.cos_mean, st.angle_std_deg)
    with pytest.warns(RuntimeWarning, match="no samples"):
        assert math.isfinite(float(nc1(h[keep], y[keep], k).value))


@pytest.mark.parametrize("seed", SEEDS)
def test_pair_with_class_absent_from_test_split(seed, make_collapsed_pair):
    (z0, z1), (t0, t1), y, y_test = make_collapsed_pair(seed, n=300, n_test=120, d=8, k=4)
    keep = y_test != 3
    with pytest.warns(RuntimeWarning, match="no samples in the test split"):
        pa = PairAnalysis((z0, z1), (t0[keep], t1[keep]), y, y_test[keep], num_classes=4)
    scalars: dict[str, float] = {}
    for group in ANALYSIS_GROUPS:
        scalars |= group_outputs(pa, group)[0]
    assert all(math.isfinite(v) for key, v in scalars.items() if key != "gib/beta_crit/k_next")
    assert any("no samples in the test split" in w for w in pa.warnings)  # recorded...
    # ... and the probe still knows 4 classes (test labels use 0..2 only)
    assert pa.probe("raw", 0).weight.shape[1] == 4


def test_k_larger_than_dimension():
    a, b = _data(0, d=5)
    with pytest.raises(ValueError, match=r"k=6 is out of range.*min\(d_a, d_b\) = 5"):
        identifiability(a, b, k=6)
    with pytest.raises(ValueError, match=r"k=6 is out of range"):
        heldout_identifiability(a, b, a, b, k=6)
    y = torch.arange(a.shape[0]) % 3
    with pytest.raises(ValueError, match=r"k=6 is out of range.*min\(d0, d1\) = 5"):
        PairAnalysis((a, b), (a, b), y, y, num_classes=3, k=6)
    with pytest.raises(ValueError, match=r"k=6 is out of range"):
        PairAnalysis((a, b), (a, b), y, y, num_classes=6)  # k defaults to K


def test_single_class_is_an_error():
    a, b = _data(0)
    y = torch.zeros(a.shape[0], dtype=torch.long)
    with pytest.raises(ValueError, match="at least two"):
        class_means(a, y, 1)
    with pytest.raises(ValueError, match="only 1 of num_classes=3"):
        simplex_etf_stats(a, y, 3)
    with pytest.raises(ValueError, match="at least two"):
        PairAnalysis((a, b), (a, b), y, y, num_classes=1)


def test_shape_errors():
    a, b = _data(0)
    with pytest.raises(ValueError, match="same number of rows"):
        cross_covariance(a, b[:-1])
    with pytest.raises(ValueError, match="2-D"):
        canonical_correlations(a[:, 0], b)
    with pytest.raises(ValueError, match="row-aligned"):
        PairAnalysis((a, b[:-1]), (a, b), torch.arange(200) % 2, torch.arange(200) % 2, 2)
    with pytest.raises(ValueError, match="shape"):
        simplex_etf_stats(a, torch.arange(199) % 2, 2)
    with pytest.raises(ValueError, match="NaN or inf"):
        canonical_correlations(a.clone().fill_(math.nan), b)
