"""Gaussian information bottleneck (Chechik et al. 2005; docs/math.md §5)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from ncib.analysis import (
    CovarianceBlocks,
    canonical_correlations,
    cross_covariance,
    gaussian_ib,
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
