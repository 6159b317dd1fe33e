"""CCA and linear identifiability (docs/math.md §3)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import ncib.analysis._linalg as linalg
from ncib.analysis import (
    CovarianceBlocks,
    canonical_correlations,
    canonical_correlations_from_factors,
    cca_from_covariance,
    cross_covariance,
    heldout_from_cca,
    heldout_identifiability,
    identifiability,
)
from ncib.analysis._checks import WarningLog

SEEDS = [0, 1, 2]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(g, *shape) -> torch.Tensor:
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def _invertible(g, d: int) -> torch.Tensor:
    return _randn(g, d, d) + 2.0 * torch.eye(d, dtype=torch.float64)


def _correlated(g, n=800, d_a=6, d_b=5, shared=3):
    latent = _randn(g, n, shared)
    a = torch.cat([latent, _randn(g, n, d_a - shared)], 1) @ _invertible(g, d_a)
    b = torch.cat([latent + 0.7 * _randn(g, n, shared), _randn(g, n, d_b - shared)], 1)
    return a, b @ _invertible(g, d_b)


def _textbook_cca(a: np.ndarray, b: np.ndarray, ridge: float):
    """Slow reference: numpy covariances, inverse square roots by eigendecomposition."""
    d_a = a.shape[1]
    cov = np.cov(np.hstack([a, b]), rowvar=False, bias=True)
    caa, cbb, cab = cov[:d_a, :d_a], cov[d_a:, d_a:], cov[:d_a, d_a:]

    def inv_sqrt(c):
        c = c + ridge * np.trace(c) / c.shape[0] * np.eye(c.shape[0])
        w, v = np.linalg.eigh(c)
        return v @ np.diag(w**-0.5) @ v.T

    ia, ib = inv_sqrt(caa), inv_sqrt(cbb)
    u, s, vt = np.linalg.svd(ia @ cab @ ib)
    r = min(a.shape[1], b.shape[1])
    return s, ia @ u[:, :r], ib @ vt[:r].T


@pytest.mark.parametrize("seed", SEEDS)
def test_rho_is_one_for_an_invertible_map(seed):
    g = _gen(seed)
    a = _randn(g, 500, 6)
    res = canonical_correlations(a, a @ _invertible(g, 6), ridge=0.0)
    np.testing.assert_allclose(res.rho.numpy(), np.ones(6), atol=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
def test_invariant_to_invertible_maps_and_shifts(seed):
    g = _gen(seed)
    a, b = _correlated(g)
    base = canonical_correlations(a, b, ridge=0.0).rho
    moved = canonical_correlations(
        a @ _invertible(g, a.shape[1]) + 5.0, b @ _invertible(g, b.shape[1]) - 3.0, ridge=0.0
    ).rho
    np.testing.assert_allclose(moved.numpy(), base.numpy(), atol=1e-8)
    assert not np.allclose(base.numpy(), 1.0)  # the test data is not trivially correlated


@pytest.mark.parametrize("seed", SEEDS)
def test_planted_correlations_recovered(seed):
    g = _gen(seed)
    n = 20000
    planted = torch.tensor([0.9, 0.7, 0.5, 0.3], dtype=torch.float64)
    x = _randn(g, n, 4)
    a = torch.cat([x, _randn(g, n, 2)], 1)
    b = torch.cat([planted * x + (1 - planted**2).sqrt() * _randn(g, n, 4), _randn(g, n, 1)], 1)
    a, b = a @ _invertible(g, 6), b @ _invertible(g, 5)
    rho = canonical_correlations(a, b).rho[:4]
    # sampling s.e. of a canonical correlation ≈ (1 − ρ²)/√N, plus an O(d/N) bias
    tol = 5 * (1 - planted**2) / math.sqrt(n) + 12 / n
    assert torch.all((rho - planted).abs() < tol), (rho, planted, tol)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("ridge", [0.0, 1e-3])
def test_matches_textbook_implementation(seed, ridge):
    g = _gen(seed)
    a, b = _correlated(g, n=400, d_a=7, d_b=5)
    res = canonical_correlations(a, b, ridge=ridge)
    rho, wa, wb = _textbook_cca(a.numpy(), b.numpy(), ridge)
    np.testing.assert_allclose(res.rho.numpy(), rho[:5], atol=1e-8)
    for w_ours, w_ref in ((res.directions_a, wa), (res.directions_b, wb)):
        sign = np.sign(np.sum(w_ours.numpy() * w_ref, axis=0))
        np.testing.assert_allclose(w_ours.numpy(), w_ref * sign, atol=1e-7)


@pytest.mark.parametrize("seed", SEEDS)
def test_directions_whiten_and_diagonalise(seed):
    g = _gen(seed)
    a, b = _correlated(g, d_a=5, d_b=8)
    res = canonical_correlations(a, b, ridge=0.0)
    cov = cross_covariance(a, b)
    wa, wb = res.directions_a, res.directions_b
    eye = torch.eye(5, dtype=torch.float64)
    torch.testing.assert_close(wa.T @ cov.cov_aa @ wa, eye, atol=1e-9, rtol=0)
    torch.testing.assert_close(wb.T @ cov.cov_bb @ wb, eye, atol=1e-9, rtol=0)
    torch.testing.assert_close(wa.T @ cov.cov_ab @ wb, torch.diag(res.rho), atol=1e-9, rtol=0)
    assert torch.all(res.rho[:-1] >= res.rho[1:])


@pytest.mark.parametrize("seed", SEEDS)
def test_swapping_sides(seed):
    a, b = _correlated(_gen(seed))
    ab, ba = canonical_correlations(a, b), canonical_correlations(b, a)
    torch.testing.assert_close(ab.rho, ba.rho, atol=1e-10, rtol=0)
    sw = ab.swapped()
    for field in ("directions", "mean", "chol", "reg"):  # every per-side field exchanged
        assert getattr(sw, f"{field}_a") is getattr(ab, f"{field}_b")
        assert getattr(sw, f"{field}_b") is getattr(ab, f"{field}_a")
    assert sw.rho is ab.rho and sw.n == ab.n and sw.ridge == ab.ridge
    cov = cross_covariance(a, b)
    cs = cov.swapped()  # every block and mean exchanged
    assert cs.mean_a is cov.mean_b and cs.mean_b is cov.mean_a
    assert cs.cov_aa is cov.cov_bb and cs.cov_bb is cov.cov_aa
    assert torch.equal(cs.cov_ab, cov.cov_ab.T) and cs.n == cov.n


@pytest.mark.parametrize("seed", SEEDS)
def test_chunked_covariance_equals_one_shot(seed, monkeypatch):
    g = _gen(seed)
    a, b = _correlated(g, n=1000)
    a = a + 1e3  # a large offset exercises the centring
    one_shot = cross_covariance(a, b)
    monkeypatch.setattr(linalg, "_CHUNK_BYTES", 1)  # 256-row chunks
    chunked = cross_covariance(a, b)
    for name in ("cov_aa", "cov_bb", "cov_ab", "mean_a"):
        torch.testing.assert_close(
            getattr(chunked, name), getattr(one_shot, name), rtol=1e-12, atol=1e-9
        )
    ref = np.cov(np.hstack([a.numpy(), b.numpy()]), rowvar=False, bias=True)
    np.testing.assert_allclose(one_shot.cov_ab.numpy(), ref[:6, 6:], atol=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
def test_float32_inputs_close_to_float64(seed):
    g = _gen(seed)
    a, b = _correlated(g, n=3000)
    a, b = a + 100.0, b - 50.0  # offsets large relative to the spread
    r64 = canonical_correlations(a, b).rho
    res32 = canonical_correlations(a.float(), b.float())
    assert res32.rho.dtype == torch.float64
    np.testing.assert_allclose(res32.rho.numpy(), r64.numpy(), atol=2e-5)


@pytest.mark.parametrize("seed", SEEDS)
def test_identifiability_summary(seed):
    a, b = _correlated(_gen(seed))
    res = identifiability(a, b, k=3)
    rho = canonical_correlations(a, b).rho.numpy()
    assert res.k == 3 and not res.heldout
    np.testing.assert_allclose(res.rho_k.numpy(), rho[:3])
    np.testing.assert_allclose(float(res.mean), rho[:3].mean(), rtol=1e-12)
    np.testing.assert_allclose(float(res.var), rho[:3].var(ddof=0), rtol=1e-10)
    np.testing.assert_allclose(float(res.std), rho[:3].std(ddof=0), rtol=1e-10)
    np.testing.assert_allclose(res.spectrum.numpy(), rho)


@pytest.mark.parametrize("seed", SEEDS)
def test_heldout_on_training_rows_gives_insample_rho(seed):
    a, b = _correlated(_gen(seed))
    cca = canonical_correlations(a, b, ridge=0.0)
    held = heldout_from_cca(cca, a, b, k=4)
    np.testing.assert_allclose(held.rho_k.numpy(), cca.rho[:4].numpy(), atol=1e-9)
    assert held.heldout


@pytest.mark.parametrize("seed", SEEDS)
def test_heldout_matches_manual_projection(seed):
    g = _gen(seed)
    a, b = _correlated(g, n=1200)
    tr, te = slice(0, 900), slice(900, None)
    res = heldout_identifiability(a[tr], b[tr], a[te], b[te], k=3)
    cca = canonical_correlations(a[tr], b[tr])
    pa = (a[te] - a[tr].mean(0)).numpy() @ cca.directions_a[:, :3].numpy()
    pb = (b[te] - b[tr].mean(0)).numpy() @ cca.directions_b[:, :3].numpy()
    manual = [np.corrcoef(pa[:, i], pb[:, i])[0, 1] for i in range(3)]
    np.testing.assert_allclose(res.rho_k.numpy(), manual, atol=1e-10)
    # held-out correlations are typically below the in-sample ones, never above 1
    assert np.all(np.abs(res.rho_k.numpy()) <= 1)


def test_correlations_above_one_are_clamped_with_a_warning():
    """Blocks no data can produce (Σ_ab = 1.5·I with Σ_aa = Σ_bb = I) give singular values 1.5:
    reported as 1, with a warning, by the CCA and by the shared factor routine."""
    eye = torch.eye(2, dtype=torch.float64)
    blocks = CovarianceBlocks(
        torch.zeros(2, dtype=torch.float64),
        torch.zeros(2, dtype=torch.float64),
        eye,
        eye,
        1.5 * eye,
        n=10,
    )
    res = cca_from_covariance(blocks, ridge=0.0)
    assert torch.equal(res.rho, torch.ones(2, dtype=torch.float64))
    assert res.warnings == (
        "canonical_correlations: largest canonical correlation 1.500000 > 1 clamped to 1",
    )
    log = WarningLog("test")
    rho = canonical_correlations_from_factors(1.5 * eye, eye, eye, log)
    assert torch.equal(rho, torch.ones(2, dtype=torch.float64)) and len(log.as_tuple()) == 1


def test_identical_sides_give_one_without_a_warning():
    """ρ = 1 up to rounding (an identical copy) is no clamp worth a warning."""
    a = torch.randn(300, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    res = canonical_correlations(a, a.clone(), ridge=0.0)
    torch.testing.assert_close(res.rho, torch.ones(4, dtype=torch.float64))
    assert res.warnings == ()
    assert canonical_correlations(a, a, ridge=1e-3).ridge == 1e-3  # the ridge it was fitted with
