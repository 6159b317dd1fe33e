"""Gaussian information bottleneck (Chechik et al. 2005; docs/math.md §5)."""

from __future__ import annotations

import math
import re
from dataclasses import replace

import numpy as np
import pytest
import scipy.linalg
import torch

from ncib.analysis import (
    CovarianceBlocks,
    GIBResult,
    canonical_correlations,
    cross_covariance,
    gaussian_ib,
    gib_from_cca,
    gib_from_covariance,
    ib_representation,
)

SEEDS = [0, 1, 2]
RIDGE = 1e-6


def _pair(seed: int, n=1500, d_x=6, d_y=5):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d_x, generator=g, dtype=torch.float64) @ torch.randn(
        d_x, d_x, generator=g, dtype=torch.float64
    )
    strength = torch.linspace(1.5, 0.1, d_y, dtype=torch.float64)
    y = x[:, :d_y] * strength + torch.randn(n, d_y, generator=g, dtype=torch.float64)
    return x, y


def _regularised_blocks(x: torch.Tensor, y: torch.Tensor, ridge: float):
    """numpy covariances (divisor N) with the ridge ε·tr/d on the diagonal blocks."""
    d_x = x.shape[1]
    cov = np.cov(np.hstack([x.numpy(), y.numpy()]), rowvar=False, bias=True)
    sx, sy, sxy = cov[:d_x, :d_x], cov[d_x:, d_x:], cov[:d_x, d_x:]
    sx = sx + ridge * np.trace(sx) / sx.shape[0] * np.eye(sx.shape[0])
    sy = sy + ridge * np.trace(sy) / sy.shape[0] * np.eye(sy.shape[0])
    return sx, sy, sxy


@pytest.mark.parametrize("seed", SEEDS)
def test_lambda_is_one_minus_rho_squared(seed):
    x, y = _pair(seed)
    gib = gaussian_ib(x, y, ridge=RIDGE)
    rho = canonical_correlations(x, y, ridge=RIDGE).rho
    np.testing.assert_allclose(gib.lam.numpy(), (1 - rho**2).numpy(), atol=1e-8)
    assert torch.all(gib.lam[:-1] <= gib.lam[1:])  # ascending


@pytest.mark.parametrize("seed", SEEDS)
def test_eigenproblem_matches_naive_reference(seed):
    x, y = _pair(seed)
    gib = gaussian_ib(x, y, ridge=RIDGE)
    sx, sy, sxy = _regularised_blocks(x, y, RIDGE)
    cond = sx - sxy @ np.linalg.inv(sy) @ sxy.T
    m = cond @ np.linalg.inv(sx)  # Σ_{x|y} Σ_x⁻¹
    w, vl = scipy.linalg.eig(m, left=True, right=False)
    order = np.argsort(w.real)
    w, vl = w.real[order], vl.real[:, order]
    # d_x = 6 > d_y = 5: one eigenvalue is exactly 1 (no correlation), beyond r = 5
    np.testing.assert_allclose(gib.lam.numpy(), w[:5], atol=1e-8)
    v = gib.v.numpy()
    np.testing.assert_allclose(v.T @ m, gib.lam.numpy()[:, None] * v.T, atol=1e-8 * np.abs(v).max())
    for i in range(5):  # same left eigenvectors up to scale (eigenvalues are distinct here)
        cos = abs(v[:, i] @ vl[:, i]) / np.linalg.norm(v[:, i]) / np.linalg.norm(vl[:, i])
        assert cos > 1 - 1e-9
    np.testing.assert_allclose(gib.r.numpy(), np.einsum("ji,jk,ki->i", v, sx, v), rtol=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
def test_information_curve_shape(seed):
    x, y = _pair(seed)
    gib = gaussian_ib(x, y, ridge=RIDGE)
    crit = gib.beta_crit[torch.isfinite(gib.beta_crit)]
    betas = (
        torch.cat(
            [torch.logspace(0, 4, 400, dtype=torch.float64), crit * (1 - 1e-9), crit * (1 + 1e-9)]
        )
        .sort()
        .values
    )
    c = gib.information_curve(betas)
    i_xy = float(c.i_xy)
    assert torch.all(c.i_tx.diff() >= -1e-12) and torch.all(c.i_ty.diff() >= -1e-12)
    assert torch.all(c.i_ty <= i_xy + 1e-12) and torch.all(c.i_ty <= c.i_tx + 1e-12)
    assert float(c.i_tx[0]) == 0.0  # β = 1: nothing is transmitted
    far = gib.information_curve([1e9])
    np.testing.assert_allclose(float(far.i_ty[0]), i_xy, rtol=1e-7)
    # I(X;Y) of the (regularised) Gaussian, from log-determinants
    sx, sy, sxy = _regularised_blocks(x, y, RIDGE)
    joint = np.block([[sx, sxy], [sxy.T, sy]])
    mi = 0.5 * (np.linalg.slogdet(sx)[1] + np.linalg.slogdet(sy)[1] - np.linalg.slogdet(joint)[1])
    np.testing.assert_allclose(i_xy, mi, rtol=1e-8)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("beta_factor", [1.3, 3.0, 50.0])
def test_projection_attains_the_curve(seed, beta_factor):
    """T = A X + ξ: I(T;X), I(T;Y) from log-determinants equal the closed-form curve."""
    x, y = _pair(seed)
    gib = gaussian_ib(x, y, ridge=RIDGE)
    beta = float(gib.beta_crit[0]) * beta_factor
    a = gib.projection(beta).numpy()
    sx, sy, sxy = _regularised_blocks(x, y, RIDGE)
    cond = sx - sxy @ np.linalg.inv(sy) @ sxy.T
    eye = np.eye(a.shape[0])
    i_tx = 0.5 * np.linalg.slogdet(eye + a @ sx @ a.T)[1]
    i_ty = i_tx - 0.5 * np.linalg.slogdet(eye + a @ cond @ a.T)[1]
    c = gib.information_curve([beta])
    np.testing.assert_allclose(float(c.i_tx[0]), i_tx, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(float(c.i_ty[0]), i_ty, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_active_dimensions_step_at_critical_betas(seed):
    x, y = _pair(seed)
    gib = gaussian_ib(x, y, ridge=RIDGE)
    for i, crit in enumerate(gib.beta_crit.tolist()):
        for beta, expected in ((crit * (1 - 1e-9), i), (crit * (1 + 1e-9), i + 1)):
            rows = gib.projection(beta).norm(dim=1)
            assert int((rows > 0).sum()) == expected == gib.n_active(beta)
            assert torch.all(rows[:expected] > 0)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("k", [1, 3, 5])
def test_ib_representation(seed, k):
    x, y = _pair(seed)
    gib = gaussian_ib(x, y, ridge=RIDGE)
    rep = ib_representation(x, k, gib=gib)
    beta = float(rep.beta)
    assert rep.features.shape == (x.shape[0], k) and rep.matrix.shape == (k, x.shape[1])
    assert gib.n_active(beta) == k
    if k < 5:
        assert gib.beta_crit[k - 1] < beta < gib.beta_crit[k]
        np.testing.assert_allclose(beta, float(gib.beta_crit[k]) * (1 - 1e-6), rtol=1e-12)
        assert rep.warnings == ()
    else:
        np.testing.assert_allclose(beta, 2 * float(gib.beta_crit[k - 1]))
    torch.testing.assert_close(rep.features, (x - x.mean(0)) @ gib.projection(beta)[:k].T)
    torch.testing.assert_close(rep.transform(x), rep.features)
    np.testing.assert_allclose(float(rep.feature_scaling.mean()), 1.0, rtol=1e-12)
    torch.testing.assert_close(gib.feature_scaling(k), rep.alphas / rep.alphas.mean())
    assert torch.all(rep.alphas > 0)
    via_y = ib_representation(x, k, y=y, ridge=RIDGE)
    torch.testing.assert_close(via_y.features, rep.features)


def test_tied_transitions_warn():
    d = 3
    eye = torch.eye(d, dtype=torch.float64)
    blocks = CovarianceBlocks(
        mean_a=torch.zeros(d, dtype=torch.float64),
        mean_b=torch.zeros(d, dtype=torch.float64),
        cov_aa=eye,
        cov_bb=eye,
        cov_ab=torch.diag(torch.tensor([0.8, 0.8, 0.5], dtype=torch.float64)),
        n=100,
    )
    gib = gib_from_covariance(blocks, ridge=0.0)
    assert float(gib.beta_crit[0]) == float(gib.beta_crit[1])
    with pytest.warns(RuntimeWarning, match="tied"):
        rep = gib.representation(1)
    assert rep.matrix.shape == (1, d) and any("tied" in w for w in rep.warnings)
    assert gib.n_active(float(rep.beta)) == 2  # documented: both tied transitions are active


@pytest.mark.parametrize("seed", SEEDS)
def test_members_share_eigenvalues_and_reuse_covariance(seed):
    x, y = _pair(seed, d_x=5, d_y=5)
    cov = cross_covariance(x, y)
    gx, gy = gib_from_covariance(cov), gib_from_covariance(cov.swapped())
    torch.testing.assert_close(gx.lam, gy.lam, atol=1e-12, rtol=0)
    torch.testing.assert_close(gy.lam, gaussian_ib(y, x).lam, atol=1e-12, rtol=0)
    torch.testing.assert_close(gx.mutual_information(), gy.mutual_information())


def test_k_out_of_range():
    x, y = _pair(0)
    gib = gaussian_ib(x, y)
    with pytest.raises(ValueError, match=r"k=6 is out of range.*1 <= k <= 5"):
        gib.representation(6)
    with pytest.raises(ValueError, match="k=0"):
        gib.representation(0)


# --- GIBResult's closed forms and the choice of β, on hand-built results ------------------------
# Built directly (not from data) so that r ≠ 1 and the critical β can be placed exactly: at ties,
# at adjacent floats, closer than the 1e-6 margin, or infinite (λ = 1).


def _built(beta_crit, r=None) -> GIBResult:
    crit = torch.tensor(beta_crit, dtype=torch.float64)
    lam = torch.where(torch.isfinite(crit), 1.0 - 1.0 / crit, torch.ones_like(crit))
    n = crit.shape[0]
    r = torch.ones(n, dtype=torch.float64) if r is None else torch.tensor(r, dtype=torch.float64)
    v = torch.eye(n + 1, n, dtype=torch.float64)  # d_x = n + 1
    return GIBResult(lam, v, r, crit, torch.zeros(n + 1, dtype=torch.float64))


def test_alphas_and_curve_follow_the_closed_forms_for_any_r():
    lam = [0.2, 0.5, 0.9]
    gib = _built([1 / (1 - v) for v in lam], r=[0.5, 2.0, 4.0])  # β_i = 1.25, 2, 10
    beta = 3.0
    expected = [math.sqrt((beta * (1 - v) - 1) / (v * r)) for v, r in ((0.2, 0.5), (0.5, 2.0))]
    np.testing.assert_allclose(gib.alphas(beta).numpy(), [*expected, 0.0], rtol=1e-14)
    c = gib.information_curve([beta, 1.0])
    i_tx = 0.5 * (math.log((beta - 1) * 0.8 / 0.2) + math.log((beta - 1) * 0.5 / 0.5))
    i_ty = i_tx - 0.5 * (math.log(beta * 0.8) + math.log(beta * 0.5))
    np.testing.assert_allclose(c.i_tx.numpy(), [i_tx, 0.0], rtol=1e-14)
    np.testing.assert_allclose(c.i_ty.numpy(), [i_ty, 0.0], rtol=1e-14)
    np.testing.assert_allclose(float(c.i_xy), -0.5 * sum(math.log(v) for v in lam), rtol=1e-14)


def test_a_transition_is_active_only_strictly_above_its_critical_beta():
    gib = _built([1.25, 2.0, 10.0])
    assert [gib.n_active(b) for b in (1.25, 2.0, 10.0, 10.5)] == [0, 1, 2, 3]
    assert [int((gib.alphas(b) > 0).sum()) for b in (1.25, 2.0, 10.5)] == [0, 1, 3]


def test_beta_for_k_below_the_next_transition_and_its_margin():
    gib = _built([2.0, 4.0, 9.0])
    assert gib.beta_for_k(1) == (4.0 * (1 - 1e-6), ())
    assert gib.beta_for_k(3) == (18.0, ())  # no β_{k+1}: 2 β_k
    # β_k and β_{k+1} closer than the 1e-6 margin: the midpoint
    close = _built([2.0, 2.0 * (1 + 1e-7), 9.0])
    assert close.beta_for_k(1) == (0.5 * (2.0 + 2.0 * (1 + 1e-7)), ())
    # the margin lands exactly on β_k: still strictly between, by the midpoint
    on = _built([4.0 * (1 - 1e-6), 4.0, 9.0])
    assert on.beta_for_k(1) == (0.5 * (4.0 * (1 - 1e-6) + 4.0), ())


@pytest.mark.parametrize("b_k", [2.0, float(np.nextafter(2.0, 3.0))])
def test_adjacent_float_transitions_are_a_tie(b_k):
    """No float lies strictly between β_k and the next float: warned as a tie, β above both.
    (2.0's midpoint with its successor rounds down to β_k, its successor's rounds up to β_{k+1}.)
    """
    gib = _built([b_k, float(np.nextafter(b_k, 3.0)), 9.0])
    with pytest.warns(RuntimeWarning, match=r"gib\.beta_for_k: β_1 = β_2 = 2 \(tied GIB"):
        beta, notes = gib.beta_for_k(1)
    assert beta == b_k * (1 + 1e-6) and gib.n_active(beta) == 2
    assert len(notes) == 1 and notes[0].startswith("gib.beta_for_k: β_1 = β_2 = 2 (tied")


def test_fewer_finite_transitions_than_k():
    gib = _built([2.0, 5.0, 7.0, math.inf, math.inf])
    with pytest.warns(RuntimeWarning, match="only 3 of the first k=4") as caught:
        beta, notes = gib.beta_for_k(4)
    assert beta == 14.0 and gib.n_active(beta) == 3  # 2 × the last finite β
    assert notes == (
        "gib.beta_for_k: only 3 of the first k=4 GIB eigenvalues are below 1 (X and Y are "
        "uncorrelated along the others); those rows of T_K are zero",
    )
    assert [str(w.message) for w in caught] == list(notes)
    with pytest.warns(RuntimeWarning, match="only 3 of the first k=5"):
        rep = gib.representation(5)
    assert rep.k == 5 and type(rep.k) is int and float(rep.beta) == 14.0
    assert rep.alphas[3:].eq(0).all() and rep.alphas[:3].gt(0).all()
    assert rep.warnings == (notes[0].replace("k=4", "k=5"),)


def test_no_finite_transition_gives_beta_one_and_zero_scaling():
    gib = _built([math.inf, math.inf])
    with pytest.warns(RuntimeWarning, match="only 0 of the first k=2"):
        rep = gib.representation(2)
    assert float(rep.beta) == 1.0
    assert rep.alphas.eq(0).all() and rep.matrix.eq(0).all()
    assert rep.feature_scaling.eq(0).all()  # α/mean(α) would be 0/0


@pytest.mark.parametrize("k", [True, 1.5, 0, 4])
def test_beta_for_k_rejects_what_is_not_a_k(k):
    gib = _built([2.0, 4.0, 9.0])
    message = rf"k={k} is out of range: .* 1 <= k <= 3 \(the number of GIB eigenvalues, min\(d_x"
    with pytest.raises(ValueError, match=message):
        gib.beta_for_k(k)


def test_representation_carries_the_gib_warnings_once_each():
    gib = _built([2.0, 2.0, 9.0])
    gib = GIBResult(gib.lam, gib.v, gib.r, gib.beta_crit, gib.mean_x, ("gaussian_ib: a", "b"))
    with pytest.warns(RuntimeWarning, match="tied"):
        rep = gib.representation(1)
    assert rep.warnings[:2] == ("gaussian_ib: a", "b") and "tied" in rep.warnings[2]
    assert len(rep.warnings) == 3


def test_the_ridge_reaches_the_cca():
    x, y = _pair(0)
    default, strong = gaussian_ib(x, y), gaussian_ib(x, y, ridge=0.5)
    torch.testing.assert_close(default.lam, gaussian_ib(x, y, ridge=1e-6).lam, rtol=0, atol=0)
    assert (strong.lam - default.lam).abs().max() > 1e-3
    cov = cross_covariance(x, y)
    torch.testing.assert_close(gib_from_covariance(cov, 0.5).lam, strong.lam, rtol=0, atol=0)
    assert (gib_from_covariance(cov).lam - strong.lam).abs().max() > 1e-3
    rep = ib_representation(x, 2, y=y)
    torch.testing.assert_close(rep.matrix, default.representation(2).matrix, rtol=0, atol=0)
    rep = ib_representation(x, 2, y=y, ridge=0.5)
    torch.testing.assert_close(rep.matrix, strong.representation(2).matrix, rtol=0, atol=0)


def test_ib_representation_names_its_bad_input():
    x, y = _pair(0)
    with pytest.raises(ValueError, match=r"^x must be 2-D \(N, d\), got shape \(1500,\)$"):
        ib_representation(x[:, 0], 1, y=y)
    with pytest.raises(
        ValueError, match="^ib_representation needs either gib=GIBResult or the partner y$"
    ):
        ib_representation(x, 1)


EPS = torch.finfo(torch.float64).eps


def _small_pair(seed: int, n=400, d_x=4, d_y=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d_x, generator=g, dtype=torch.float64)
    y = x[:, :d_y] * torch.tensor([1.5, 0.8, 0.3], dtype=torch.float64)
    return x, y + torch.randn(n, d_y, generator=g, dtype=torch.float64)


def test_gib_reports_and_clamps_eigenvalues_below_eps():
    x, y = _small_pair(0)
    cca = canonical_correlations(x, y)
    assert cca.warnings == ()
    exact = replace(cca, rho=torch.tensor([1.0, 1.0, 0.5], dtype=torch.float64))
    message = (
        "gaussian_ib: 2 GIB eigenvalues below 2.2e-16 (X and Y almost deterministically "
        "related) clamped so that the logs stay finite"
    )
    with pytest.warns(RuntimeWarning, match=f"^{re.escape(message)}$"):
        gib = gib_from_cca(exact)
    assert gib.warnings == (message,)
    assert gib.lam.tolist() == [EPS, EPS, 0.75]
    assert math.isfinite(float(gib.mutual_information()))
    # X = Y: the CCA's correlations round to 1 and the same warning (its count is the data's)
    with pytest.warns(RuntimeWarning, match=r"^gaussian_ib: \d GIB eigenvalues below 2\.2e-16"):
        same = gaussian_ib(x, x.clone(), ridge=0.0)
    assert float(same.lam.min()) == EPS


def test_alphas_of_an_uncorrelated_direction_stay_zero_even_at_infinite_beta():
    lam = torch.tensor([0.2, 0.5, 1.0], dtype=torch.float64)  # β_crit = 1.25, 2, inf
    d = torch.eye(3, dtype=torch.float64)
    gib = GIBResult(lam, d, torch.ones(3, dtype=torch.float64), 1 / (1 - lam), torch.zeros(3))
    alphas = gib.alphas(math.inf)
    assert alphas.tolist() == [math.inf, math.inf, 0.0]
    assert int((alphas > 0).sum()) == gib.n_active(math.inf) == 2


def test_transform_names_its_bad_input_and_keeps_float32():
    x, y = _small_pair(1)
    rep = gaussian_ib(x, y).representation(2)
    with pytest.raises(TypeError, match=r"^x must be a torch\.Tensor of shape \(N, d\), got list$"):
        rep.transform(x.tolist())
    out64 = rep.transform(x)
    torch.testing.assert_close(out64, (x - rep.mean) @ rep.matrix.T, rtol=1e-12, atol=1e-12)
    out32 = rep.transform(x.float())
    assert out32.dtype == torch.float32 and out32.shape == (x.shape[0], 2)
    torch.testing.assert_close(out32.double(), out64, rtol=0, atol=1e-4)
