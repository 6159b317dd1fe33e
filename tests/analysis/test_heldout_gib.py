"""Held-out GIB (spectrum measured on the test split) and the raw-vs-normal-score CCA."""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import replace

import numpy as np
import pytest
import scipy.linalg
import torch

from ncib.analysis import (
    GIBResult,
    PairAnalysis,
    canonical_correlations_from_factors,
    copula_cca,
    copula_cca_from_covariance,
    copula_cca_from_factors,
    cross_covariance,
    gaussian_ib,
    heldout_correlations,
    heldout_gaussian_ib,
    heldout_gib_from_cca,
    heldout_gib_from_correlations,
    heldout_gib_summary,
    normal_scores,
)
from ncib.analysis._checks import WarningLog
from ncib.analysis._linalg import regularised_cholesky
from ncib.analysis.cca import canonical_correlations
from ncib.analysis.heldout_gib import HeldoutCorrelations

from .test_gib import EPS, _small_pair

SEEDS = [0, 1, 2]
RIDGE = 1e-6


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def planted_pair(n, d, strengths, g, dtype=torch.float64, rotate=True):
    """X, Y ``(n, d)`` with ``corr(x_i, y_i) = strengths[i]`` for the first dims and independent
    standard normal noise elsewhere, then rotated by independent random orthogonal maps.

    True I(X;Y) = −½ Σ log(1 − strengths²) whatever the rotation.
    """
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randn(n, d, generator=g, dtype=torch.float64)
    s = torch.as_tensor(strengths, dtype=torch.float64)
    k = s.shape[0]
    y[:, :k] = s * x[:, :k] + (1 - s.square()).sqrt() * y[:, :k]
    if rotate:
        qx, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
        qy, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
        x, y = x @ qx, y @ qy
    return x.to(dtype), y.to(dtype)


def _split(x, y, n_train):
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


def _true_gib(strengths, d) -> GIBResult:
    """The GIB of the true spectrum: λ_i = 1 − ρ_i² for the planted dims, 1 elsewhere."""
    rho = torch.zeros(d, dtype=torch.float64)
    rho[: len(strengths)] = torch.as_tensor(strengths, dtype=torch.float64)
    lam = 1 - rho.square()
    eye = torch.eye(d, dtype=torch.float64)
    return GIBResult(lam, eye, torch.ones(d, dtype=torch.float64), 1 / (1 - lam), rho * 0)


# -- known answers ----------------------------------------------------------------------------


def _check_known_answer(n_train, n_test, d, k, dtype, seed, in_sample_excess, rotate=True):
    strengths = [0.99] * k
    truth = -0.5 * k * math.log(1 - 0.99**2)
    x, y = planted_pair(n_train + n_test, d, strengths, _gen(seed), dtype, rotate)
    held = heldout_gaussian_ib(*_split(x, y, n_train), ridge=RIDGE)
    summary = heldout_gib_summary(held, k)
    assert abs(summary.mi_xy - truth) < 0.05 * truth, (summary.mi_xy, truth)
    # the in-sample estimate of the same fit carries ≈ d²/(2N) nats of noise
    assert summary.mi_xy_in_sample > (1 + in_sample_excess) * truth
    if d <= 128:  # the in-sample figure is that of gaussian_ib on the training split
        in_sample = gaussian_ib(x[:n_train], y[:n_train], RIDGE).mutual_information()
        assert summary.mi_xy_in_sample == pytest.approx(float(in_sample), rel=1e-9)
    # β_K = 1/ρ² of the planted dims; β_{K+1} = ∞ in truth: the noise pairs barely correlate
    # on the test split (|c| ~ 1/sqrt(N_t)), whereas in-sample they reach ≈ sqrt(d/N)
    assert summary.beta_k == pytest.approx(1 / 0.99**2, rel=0.01)
    assert summary.beta_k_next > 1 / (5 / math.sqrt(n_test)) ** 2
    assert float(held.rho_train[k]) > 0.5 * math.sqrt(d / n_train)  # in-sample noise level
    assert summary.beta_k < summary.beta_tk < summary.beta_k_next
    assert held.rho[:k].min() > 0.985 and held.rho[k] < 5 / math.sqrt(n_test)
    assert sorted(held.order[:k].tolist()) == list(range(k))  # the planted pairs lead
    assert torch.all(held.lam[:-1] <= held.lam[1:]) and torch.all(held.rho >= 0)


def test_known_answer_d512():
    """K = 10 dims at ρ = 0.99 (I = 19.59 nats) among d = 512, N = 20,000 / 4,000 (not
    rotated, to stay fast: the estimate is rotation-invariant, tested below)."""
    _check_known_answer(
        20_000, 4_000, 512, 10, torch.float64, seed=0, in_sample_excess=0.2, rotate=False
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_known_answer_small(seed):
    _check_known_answer(5_000, 2_000, 96, 10, torch.float64, seed, in_sample_excess=0.03)


@pytest.mark.slow
def test_known_answer_cifar_scale_float32():
    """d = 2,048, N = 50,000 / 10,000 in float32 (the features' dtype in training runs)."""
    _check_known_answer(
        50_000, 10_000, 2048, 10, torch.float32, seed=0, in_sample_excess=1.0, rotate=False
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_known_answer_transitions(seed):
    """A weaker (K+1)-th dimension gives a finite β_{K+1}: β_K, β_{K+1}, β of T_K and
    I(T_K;Y)/I(X;Y) close to those of the true spectrum."""
    k, d = 4, 48
    strengths = [0.95] * k + [0.6]
    x, y = planted_pair(60_000, d, strengths, _gen(seed))
    held = heldout_gaussian_ib(*_split(x, y, 40_000), ridge=RIDGE)
    got = heldout_gib_summary(held, k)
    true_gib = _true_gib(strengths, d)
    beta, _ = true_gib.beta_for_k(k)
    curve = true_gib.information_curve(beta)
    true = {
        "mi_xy": float(curve.i_xy),
        "beta_k": float(true_gib.beta_crit[k - 1]),
        "beta_k_next": float(true_gib.beta_crit[k]),
        "beta_tk": beta,
        "i_tx_tk": float(curve.i_tx[0]),
        "i_ty_tk": float(curve.i_ty[0]),
    }
    for field, value in true.items():
        assert getattr(got, field) == pytest.approx(value, rel=0.05), field
    assert got.i_ty_frac_tk == pytest.approx(true["i_ty_tk"] / true["mi_xy"], abs=0.01)


def test_no_signal_gives_almost_no_information():
    """Independent X, Y: in-sample ≈ d²/(2N) nats, held-out ≈ d/(4 N_t) (pure-noise pairs)."""
    d, n, n_test = 64, 4_000, 4_000
    x, y = planted_pair(n + n_test, d, [], _gen(3))
    held = heldout_gaussian_ib(*_split(x, y, n), ridge=RIDGE)
    s = heldout_gib_summary(held, 1)
    assert s.mi_xy_in_sample > 0.5 * d * d / (2 * n)
    assert s.mi_xy < 3 * d / (4 * n_test)
    # about half the noise pairs correlate negatively on test: they carry no information
    assert 0.3 * d < int((held.rho == 0).sum()) < 0.7 * d
    assert torch.isinf(held.beta_crit[held.rho == 0]).all()


def test_negative_test_correlation_is_no_information():
    """A pairing that correlates +0.9 on train but −0.9 on test does not generalise: ρ̃ = 0,
    λ̃ = 1 (a |c| or c² estimator would report 0.9)."""
    g = _gen(4)
    n, n_test, d = 3_000, 3_000, 3
    x = torch.randn(n + n_test, d, generator=g, dtype=torch.float64)
    y = torch.randn(n + n_test, d, generator=g, dtype=torch.float64)
    y[:, 0] = 0.9 * x[:, 0] + math.sqrt(1 - 0.81) * y[:, 0]
    y[:, 1] = 0.5 * x[:, 1] + math.sqrt(1 - 0.25) * y[:, 1]
    y[n:, 0] = -y[n:, 0]  # the relation of the first pair reverses on the test split
    held = heldout_gaussian_ib(*_split(x, y, n), ridge=RIDGE)
    assert float(held.corr[0]) == pytest.approx(-0.9, abs=0.03)
    assert held.order[0] == 1 and float(held.rho[0]) == pytest.approx(0.5, abs=0.04)
    assert 0 not in held.order[held.rho > 0].tolist()
    assert float(held.lam[held.order.tolist().index(0)]) == 1.0
    assert float(held.mi_xy) == pytest.approx(-0.5 * math.log(1 - 0.25), abs=0.03)


# -- independent slow reference ---------------------------------------------------------------


def _reference(xtr, ytr, xte, yte, ridge, k):
    """numpy/scipy: eigh whitening, explicit projections, np.corrcoef per pair, loops."""
    x, y, xt, yt = (a.numpy() for a in (xtr, ytr, xte, yte))
    dx, dy = x.shape[1], y.shape[1]
    cov = np.cov(np.hstack([x, y]), rowvar=False, bias=True)

    def inv_sqrt(s):
        s = s + ridge * np.trace(s) / s.shape[0] * np.eye(s.shape[0])
        w, u = scipy.linalg.eigh(s)
        return u @ np.diag(w**-0.5) @ u.T, s

    wx, sxx = inv_sqrt(cov[:dx, :dx])
    wy, _ = inv_sqrt(cov[dx:, dx:])
    u, _, vt = np.linalg.svd(wx @ cov[:dx, dx:] @ wy)
    r = min(dx, dy)
    a_dirs, b_dirs = wx @ u[:, :r], wy @ vt[:r].T
    pa = (xt - x.mean(0)) @ a_dirs
    pb = (yt - y.mean(0)) @ b_dirs
    corr = np.array([np.corrcoef(pa[:, i], pb[:, i])[0, 1] for i in range(r)])
    clamped = np.maximum(corr, 0.0)
    order = np.argsort(-clamped, kind="stable")
    rho = clamped[order]
    lam = 1 - rho**2
    with np.errstate(divide="ignore"):
        crit = 1 / (1 - lam)
    b_k, b_next = crit[k - 1], crit[k]
    beta = b_next * (1 - 1e-6) if np.isfinite(b_next) else 2 * b_k
    i_tx = i_ty_gap = 0.0
    for i in range(r):
        if beta > crit[i]:
            i_tx += 0.5 * math.log((beta - 1) * (1 - lam[i]) / lam[i])
            i_ty_gap += 0.5 * math.log(beta * (1 - lam[i]))
    mi = -0.5 * np.log(lam).sum()
    v = a_dirs[:, order]
    return {
        "corr": corr,
        "order": order,
        "rho": rho,
        "lam": lam,
        "beta_crit": crit,
        "mi_xy": mi,
        "beta_tk": beta,
        "i_tx_tk": i_tx,
        "i_ty_tk": i_tx - i_ty_gap,
        "i_ty_frac_tk": (i_tx - i_ty_gap) / mi,
        "v": v,
        "r": np.einsum("ji,jk,ki->i", v, sxx, v),
    }


def _random_pair(seed, n, n_test, dx, dy, rank=3):
    """Features related through a rank-3 map (so that the remaining pairs are pure noise whose
    test correlations come out in no order and with either sign), with unequal scales, a mean
    offset, and a test split whose mean is shifted (the correlations must be re-centred on the
    test rows)."""
    g = _gen(seed)
    total = n + n_test
    x = torch.randn(total, dx, generator=g, dtype=torch.float64) @ torch.randn(
        dx, dx, generator=g, dtype=torch.float64
    )
    mix = torch.randn(dx, rank, generator=g, dtype=torch.float64) @ torch.randn(
        rank, dy, generator=g, dtype=torch.float64
    )
    y = x @ mix + 2.0 * torch.randn(total, dy, generator=g, dtype=torch.float64)
    x, y = x + 5.0, y - 3.0
    x[n:] += 0.7
    y[n:] -= 0.4
    return x[:n], y[:n], x[n:], y[n:]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("dims", [(9, 8), (7, 10)])
def test_matches_numpy_reference(seed, dims):
    k = 2
    xtr, ytr, xte, yte = _random_pair(seed, 400, 150, *dims)
    held = heldout_gaussian_ib(xtr, ytr, xte, yte, ridge=RIDGE)
    ref = _reference(xtr, ytr, xte, yte, RIDGE, k)
    s = heldout_gib_summary(held, k)
    np.testing.assert_allclose(held.corr.numpy(), ref["corr"], rtol=0, atol=1e-8)
    assert held.order.tolist() == ref["order"].tolist()
    np.testing.assert_allclose(held.rho.numpy(), ref["rho"], rtol=0, atol=1e-8)
    np.testing.assert_allclose(held.lam.numpy(), ref["lam"], rtol=0, atol=1e-8)
    np.testing.assert_allclose(held.beta_crit.numpy(), ref["beta_crit"], rtol=1e-8)
    np.testing.assert_allclose(float(held.mi_xy), ref["mi_xy"], rtol=1e-8)
    for key in ("beta_tk", "i_tx_tk", "i_ty_tk", "i_ty_frac_tk"):
        np.testing.assert_allclose(getattr(s, key), ref[key], rtol=1e-8, err_msg=key)
    # v: the train-fitted directions in the held-out order (each up to sign), r_i = v_iᵀ Σ_x v_i
    v = held.gib.v.numpy()
    signs = np.sign((v * ref["v"]).sum(0))
    np.testing.assert_allclose(v, ref["v"] * signs, rtol=0, atol=1e-8 * np.abs(v).max())
    np.testing.assert_allclose(held.gib.r.numpy(), ref["r"], rtol=1e-8)
    assert torch.all(held.lam[:-1] <= held.lam[1:])
    assert held.order.tolist() != sorted(held.order.tolist())  # the sort mattered here


# -- invariances and consistency --------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_invariant_to_invertible_affine_maps(seed):
    """X → X A + a, Y → Y B + b (A, B invertible, applied to both splits) only reparametrise
    the canonical variates: the held-out spectrum is unchanged (ridge 0, the ridge ε·tr/d·I is
    not affine-invariant)."""
    xtr, ytr, xte, yte = _random_pair(seed, 500, 200, 6, 5)
    g = _gen(seed + 10)
    a = torch.randn(6, 6, generator=g, dtype=torch.float64) + 3 * torch.eye(6)
    b = torch.diag(torch.tensor([0.05, 1.0, 20.0, 2.0, 0.1], dtype=torch.float64))
    b = b @ torch.linalg.qr(torch.randn(5, 5, generator=g, dtype=torch.float64))[0]
    base = heldout_gaussian_ib(xtr, ytr, xte, yte, ridge=0.0)
    moved = heldout_gaussian_ib(xtr @ a + 7, ytr @ b - 1, xte @ a + 7, yte @ b - 1, ridge=0.0)
    np.testing.assert_allclose(moved.corr.numpy(), base.corr.numpy(), rtol=0, atol=1e-9)
    np.testing.assert_allclose(moved.lam.numpy(), base.lam.numpy(), rtol=0, atol=1e-9)
    # orthogonal rotations keep even the ridge: the default ridge gives the same spectrum too
    q = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=torch.float64))[0]
    rot = heldout_gaussian_ib(xtr @ q, ytr, xte @ q, yte, ridge=RIDGE)
    ref = heldout_gaussian_ib(xtr, ytr, xte, yte, ridge=RIDGE)
    np.testing.assert_allclose(rot.lam.numpy(), ref.lam.numpy(), rtol=0, atol=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
def test_swapping_members_gives_the_same_spectrum(seed):
    xtr, ytr, xte, yte = _random_pair(seed, 400, 150, 6, 5)
    xy = heldout_gaussian_ib(xtr, ytr, xte, yte, ridge=RIDGE)
    yx = heldout_gaussian_ib(ytr, xtr, yte, xte, ridge=RIDGE)
    np.testing.assert_allclose(yx.lam.numpy(), xy.lam.numpy(), rtol=0, atol=1e-10)
    assert float(yx.mi_xy) == pytest.approx(float(xy.mi_xy), rel=1e-10)
    # the swapped CCA with the same test correlations gives the same spectrum, Y's directions
    cca = canonical_correlations(xtr, ytr, RIDGE)
    other = heldout_gib_from_cca(cca.swapped(), yte, xte)
    torch.testing.assert_close(other.lam, xy.lam, rtol=0, atol=1e-12)
    assert other.gib.v.shape == (5, 5)


def test_float32_matches_float64():
    xtr, ytr, xte, yte = _random_pair(5, 2_000, 1_000, 12, 10)
    f64 = heldout_gaussian_ib(xtr, ytr, xte, yte)
    f32 = heldout_gaussian_ib(*(t.float() for t in (xtr, ytr, xte, yte)))
    np.testing.assert_allclose(f32.corr.numpy(), f64.corr.numpy(), rtol=0, atol=1e-4)
    assert f32.lam.dtype == torch.float64


def test_chunked_pass_matches_one_pass(monkeypatch):
    import ncib.analysis._linalg as linalg

    xtr, ytr, xte, yte = _random_pair(6, 500, 1_300, 6, 5)
    whole = heldout_gaussian_ib(xtr, ytr, xte, yte)
    monkeypatch.setattr(linalg, "_CHUNK_BYTES", 1)  # 256-row chunks, the last one partial
    chunked = heldout_gaussian_ib(xtr, ytr, xte, yte)
    np.testing.assert_allclose(chunked.corr.numpy(), whole.corr.numpy(), rtol=0, atol=1e-12)


def test_input_errors():
    xtr, ytr, xte, yte = _random_pair(0, 100, 50, 4, 3)
    cca = canonical_correlations(xtr, ytr)
    with pytest.raises(ValueError, match="columns"):
        heldout_correlations(cca, xte[:, :3], yte)
    with pytest.raises(ValueError, match="paired"):
        heldout_correlations(cca, xte, yte[:40])
    held = heldout_gib_from_cca(cca, xte, yte)
    with pytest.raises(ValueError, match="k=4 is out of range"):
        heldout_gib_summary(held, 4)


def test_constant_test_variate_warns():
    xtr, ytr, xte, yte = _random_pair(0, 200, 50, 3, 3)
    xte = (xte[:1] * 4).round().div(4).repeat(50, 1)  # dyadic: the test mean is exact
    with pytest.warns(RuntimeWarning, match="constant on the test split"):
        held = heldout_gaussian_ib(xtr, ytr, xte, yte)
    assert float(held.mi_xy) == 0.0 and torch.isinf(held.beta_crit).all()


# -- PairAnalysis -----------------------------------------------------------------------------

K = 4


@pytest.mark.parametrize("seed", SEEDS)
def test_pair_analysis_heldout_gib(make_collapsed_pair, seed):
    train, test, y, y_test = make_collapsed_pair(seed, k=K)
    pa = PairAnalysis(train, test, y, y_test, num_classes=K)
    held = pa.heldout_gib()
    g0, g1 = normal_scores(train[0]), normal_scores(train[1])
    t0, t1 = normal_scores(test[0], train[0]), normal_scores(test[1], train[1])
    labels = (y, y_test)  # PairAnalysis centres by class and thresholds at its null ρ
    direct = heldout_gaussian_ib(g0, g1, t0, t1, pa.ridge, labels, pa.null_rho())
    torch.testing.assert_close(held.lam, direct.lam, rtol=0, atol=1e-10)
    torch.testing.assert_close(held.gib.r, direct.gib.r, rtol=1e-10, atol=0)  # reused r_i
    torch.testing.assert_close(pa.heldout_gib(1).lam, held.lam, rtol=0, atol=0)
    other = heldout_gaussian_ib(g1, g0, t1, t0, pa.ridge, labels, pa.null_rho()).gib.v
    v1 = pa.heldout_gib(1).gib.v
    top = slice(0, K)  # distinct ρ̃: each direction is defined up to sign
    torch.testing.assert_close(
        (v1[:, top] * other[:, top]).sum(0).abs(), other[:, top].square().sum(0), rtol=1e-6, atol=0
    )
    # the K leading train pairs' test correlations are the held-out identifiability ones
    torch.testing.assert_close(
        pa.heldout_correlations().corr[:K],
        pa.heldout("normal").rho_k,
        rtol=0,
        atol=1e-10,
    )
    s = pa.heldout_gib_summary()
    assert s is pa.heldout_gib_summary()  # cached
    assert s.mi_xy == pytest.approx(float(held.mi_xy), rel=1e-12)
    assert s.mi_xy <= s.mi_xy_in_sample
    assert s.mi_xy_in_sample == pytest.approx(float(pa.gib(0).mutual_information()), rel=1e-12)
    assert s.beta_k < s.beta_tk < s.beta_k_next and 0 < s.i_ty_frac_tk <= 1
    assert len(s.rho) == len(s.lam) == len(s.beta_crit) == 16
    with pytest.raises(ValueError, match="member m=2"):
        pa.heldout_gib(2)


# -- CCA between raw features and their normal scores -----------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_copula_cca_known_answers(seed):
    g = _gen(seed)
    n, d = 20_000, 6
    z = torch.randn(n, d, generator=g, dtype=torch.float64)
    # Gaussian columns (a rotation of independent ones): the normal scores are the data up to
    # rank noise (an ill-conditioned mix would let that noise dominate its weakest directions)
    rotation = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))[0]
    gauss = copula_cca(3.0 * z @ rotation + 1.0, k=3)
    assert float(gauss.rho.min()) > 0.999
    # independent columns z_j = f(g_j): every ρ is corr(f(g), g)
    lognormal = copula_cca((0.5 * z).exp(), k=2)  # corr(e^{σg}, g) = σ/sqrt(e^{σ²} − 1)
    np.testing.assert_allclose(
        lognormal.rho.numpy(), 0.5 / math.sqrt(math.exp(0.25) - 1), atol=0.01
    )
    cubic = copula_cca(z**3, k=2)  # E[g⁴]/sqrt(E[g⁶]) = 3/sqrt(15)
    np.testing.assert_allclose(cubic.rho.numpy(), 3 / math.sqrt(15), atol=0.02)
    assert float(cubic.mean_k) == pytest.approx(float(cubic.rho[:2].mean()), rel=1e-12)
    assert float(cubic.mean_all) == pytest.approx(float(cubic.rho.mean()), rel=1e-12)


def test_copula_cca_monotone_invariance():
    """Increasing per-column transforms leave the normal scores unchanged; an affine map of the
    raw columns then leaves the spectrum unchanged too (ridge 0)."""
    z = torch.randn(3_000, 5, generator=_gen(7), dtype=torch.float64).exp()
    base = copula_cca(z, k=2, ridge=0.0)
    scaled = copula_cca(z * torch.tensor([1e-3, 1.0, 7.0, 100.0, 0.5]) + 4.0, k=2, ridge=0.0)
    np.testing.assert_allclose(scaled.rho.numpy(), base.rho.numpy(), rtol=0, atol=1e-9)
    with pytest.raises(ValueError, match="k=6 is out of range"):
        copula_cca(z, k=6)


@pytest.mark.parametrize("m", [0, 1])
def test_pair_analysis_copula_cca(make_collapsed_pair, m):
    train, test, y, y_test = make_collapsed_pair(1, k=K)
    pa = PairAnalysis(train, test, y, y_test, num_classes=K)
    got = pa.copula_cca(m)
    direct = copula_cca(train[m], k=K, ridge=pa.ridge, labels=y)
    np.testing.assert_allclose(got.rho.numpy(), direct.rho.numpy(), rtol=0, atol=1e-9)
    assert got.k == K and pa.copula_cca(m) is got


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("case", ["plain", "duplicated", "constant"])
def test_copula_cca_from_factors_equals_the_full_cca(seed, case):
    """Singular values only, from the factors of the pair's CCAs: the spectrum of the full
    CCA (with its singular vectors) to 1e-12, and the same warnings."""
    g = _gen(seed)
    z = torch.randn(500, 7, generator=g, dtype=torch.float64).exp() + 1.0
    if case == "duplicated":
        z[:, 6] = z[:, 0]  # rank-deficient Σ_zz and Σ_gg
    if case == "constant":
        z[:, 3] = 2.0
    ridge = 1e-6
    normal = normal_scores(z)
    full = copula_cca_from_covariance(cross_covariance(z, normal), k=3, ridge=ridge)
    factors = []
    for x in (z, normal):
        cov = cross_covariance(x, x).cov_aa
        chol, reg = regularised_cholesky(cov, ridge, "Σ", WarningLog("test"))
        factors.append((cov, chol, reg))
    cross = cross_covariance(z, normal).cov_ab
    fast = copula_cca_from_factors(cross, factors[0], factors[1], k=3, ridge=ridge)
    np.testing.assert_allclose(fast.rho.numpy(), full.rho.numpy(), rtol=0, atol=1e-12)
    for name in ("mean_k", "mean_all", "min_all"):
        assert float(getattr(fast, name)) == pytest.approx(float(getattr(full, name)), abs=1e-12)
    cholesky_notes = [w for w in full.warnings if "Σ_aa" in w or "Σ_bb" in w]
    assert [w for w in fast.warnings if "Σ_aa" in w or "Σ_bb" in w] == cholesky_notes
    if case == "duplicated":  # the check above compared something, on both sides
        assert any("Σ_aa" in w for w in cholesky_notes)
        assert any("Σ_bb" in w for w in cholesky_notes)
    rho = canonical_correlations_from_factors(cross, factors[0][1], factors[1][1], WarningLog("t"))
    cca = canonical_correlations(z, normal, ridge)
    np.testing.assert_allclose(rho.numpy(), cca.rho.numpy(), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="k=8 is out of range"):
        copula_cca_from_factors(cross, factors[0], factors[1], k=8)


# -- edge cases: constant and identical variates, chunked shift, eigenvalues at eps, fields ---


def _fit(seed: int, n=300, n_test=120):
    x, y = _small_pair(seed, n + n_test)
    return canonical_correlations(x[:n], y[:n]), x[n:], y[n:]


def test_heldout_correlations_of_constant_variates_warn_and_count_rows():
    cca, xte, yte = _fit(0)
    xte = torch.full_like(xte, 0.25)  # every variate of X is constant on the test split
    message = (
        "heldout_gib: 3 of 3 canonical variates are constant on the test split; their held-out "
        "correlation is taken as 0"
    )
    with pytest.warns(RuntimeWarning, match=f"^{re.escape(message)}$"):
        held = heldout_correlations(cca, xte, yte)
    assert held.warnings == (message,)
    assert held.corr.tolist() == [0.0, 0.0, 0.0]
    assert held.n_test == 120 and type(held.n_test) is int


@pytest.mark.parametrize("seed", range(6))
def test_heldout_correlation_of_identical_variates_is_at_most_one(seed):
    """One dimension, Y_test = X_test: the correlation is 1, never 1 + ulp (seed 0 rounds so)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(20, 1, generator=g, dtype=torch.float64)
    y = 2 * x + 0.5 * torch.randn(20, 1, generator=g, dtype=torch.float64)
    cca = canonical_correlations(x, y)
    x_test = torch.randn(8, 1, generator=g, dtype=torch.float64)
    held = heldout_correlations(cca, x_test, x_test.clone())
    assert float(held.corr[0]) <= 1.0
    assert float(held.corr[0]) == pytest.approx(1.0, abs=1e-15)


def test_heldout_shift_is_the_mean_of_all_test_chunks(monkeypatch):
    """A test split far from the origin: correlations are translation invariant, which in
    floating point needs the shift by the test mean over all chunks (not the last one)."""
    import ncib.analysis._linalg as linalg

    cca, xte, yte = _fit(2, n_test=1_300)
    near = heldout_correlations(cca, xte, yte)
    monkeypatch.setattr(linalg, "_CHUNK_BYTES", 1)  # 256-row chunks, the last one of 20 rows
    far = heldout_correlations(cca, xte + 1e8, yte - 1e8)
    np.testing.assert_allclose(far.corr.numpy(), near.corr.numpy(), rtol=0, atol=1e-6)


def test_heldout_eigenvalues_at_eps_are_kept_below_are_reported():
    cca, _, _ = _fit(3)
    just_below_one = 1.0 - 2.0**-53  # λ = (1 − ρ)(1 + ρ) rounds to eps exactly
    at_eps = HeldoutCorrelations(torch.tensor([0.3, just_below_one, 0.1], dtype=torch.float64), 9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = heldout_gib_from_correlations(cca, at_eps)
    assert float(res.lam[0]) == EPS and res.warnings == ()
    below = HeldoutCorrelations(torch.tensor([0.3, just_below_one, 1.0], dtype=torch.float64), 9)
    message = (
        "heldout_gib: 1 held-out GIB eigenvalues below 2.2e-16 (X and Y almost deterministically "
        "related on the test split) clamped so that the logs stay finite"
    )
    with pytest.warns(RuntimeWarning, match=f"^{re.escape(message)}$"):
        res = heldout_gib_from_correlations(cca, below)
    assert res.lam.tolist() == [EPS, EPS, (1 - 0.3) * (1 + 0.3)]
    assert res.warnings == (message,)


def test_heldout_gib_result_fields():
    cca, xte, yte = _fit(4)
    held = heldout_correlations(cca, xte, yte)
    held = replace(held, warnings=("heldout_gib: a note",))
    res = heldout_gib_from_correlations(cca, held)
    assert res.n_test == 120 and type(res.n_test) is int
    assert res.warnings == ("heldout_gib: a note",)
    assert res.gib.warnings == res.warnings
    torch.testing.assert_close(res.gib.mean_x, cca.mean_a, rtol=0, atol=0)
    torch.testing.assert_close(res.rho_train, cca.rho, rtol=0, atol=0)
    torch.testing.assert_close(res.corr, held.corr, rtol=0, atol=0)


def test_heldout_summary_fields_and_a_training_correlation_of_one():
    x, y = _small_pair(5, 500)
    res = heldout_gaussian_ib(x[:350], y[:350], x[350:], y[350:])
    summary = heldout_gib_summary(res, 2)
    assert summary.k == 2 and type(summary.k) is int
    lam_train = 1 - res.rho_train.square()
    expected = -0.5 * float(lam_train.log().sum())
    assert summary.mi_xy_in_sample == pytest.approx(expected, rel=1e-12)
    # an in-sample correlation of exactly 1: its λ is clamped to eps, as in the GIB
    exact = replace(res, rho_train=torch.tensor([1.0, 0.6, 0.2], dtype=torch.float64))
    summary = heldout_gib_summary(exact, 1)
    expected = -0.5 * (math.log(EPS) + math.log(0.64) + math.log(0.96))
    assert summary.mi_xy_in_sample == pytest.approx(expected, rel=1e-12)
    assert summary.k == 1
