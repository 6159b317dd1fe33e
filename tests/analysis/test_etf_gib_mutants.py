"""Edge cases of the ETF, GIB and held-out GIB analyses: exact messages and warnings, result
fields, degenerate spectra and the numerics of float32 and offset inputs."""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

from ncib.analysis import (
    GIBResult,
    class_means,
    gaussian_ib,
    gib_from_cca,
    heldout_correlations,
    heldout_gaussian_ib,
    heldout_gib_from_correlations,
    heldout_gib_summary,
    nc1,
    ncc_predict,
)
from ncib.analysis.cca import canonical_correlations
from ncib.analysis.heldout_gib import HeldoutCorrelations

EPS = torch.finfo(torch.float64).eps


def _labelled(seed: int, n=200, d=6, k=4):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, k, (n,), generator=g)
    y[:k] = torch.arange(k)  # every class present
    centres = 2.0 * torch.randn(k, d, generator=g, dtype=torch.float64)
    return centres[y] + torch.randn(n, d, generator=g, dtype=torch.float64), y


def _nc1_reference(h: np.ndarray, y: np.ndarray, k: int, rcond: float) -> float:
    """tr(Σ_W Σ_B⁺)/K with numpy's pinv cutting singular values of Σ_B at ``rcond·σ_max``."""
    mus = np.stack([h[y == c].mean(0) for c in range(k)])
    m = mus - mus.mean(0)
    resid = h - mus[y]
    sw = resid.T @ resid / len(y)
    sb = m.T @ m / k
    return float(np.trace(sw @ np.linalg.pinv(sb, rcond=rcond)) / k)


# -- etf --------------------------------------------------------------------------------------


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
    expected = _nc1_reference(h.numpy(), y.numpy(), 4, rcond=rtol)
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


# -- gib --------------------------------------------------------------------------------------


def _pair(seed: int, n=400, d_x=4, d_y=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d_x, generator=g, dtype=torch.float64)
    y = x[:, :d_y] * torch.tensor([1.5, 0.8, 0.3], dtype=torch.float64)
    return x, y + torch.randn(n, d_y, generator=g, dtype=torch.float64)


def test_gib_reports_and_clamps_eigenvalues_below_eps():
    x, y = _pair(0)
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
    x, y = _pair(1)
    rep = gaussian_ib(x, y).representation(2)
    with pytest.raises(TypeError, match=r"^x must be a torch\.Tensor of shape \(N, d\), got list$"):
        rep.transform(x.tolist())
    out64 = rep.transform(x)
    torch.testing.assert_close(out64, (x - rep.mean) @ rep.matrix.T, rtol=1e-12, atol=1e-12)
    out32 = rep.transform(x.float())
    assert out32.dtype == torch.float32 and out32.shape == (x.shape[0], 2)
    torch.testing.assert_close(out32.double(), out64, rtol=0, atol=1e-4)


# -- held-out GIB -----------------------------------------------------------------------------


def _fit(seed: int, n=300, n_test=120):
    x, y = _pair(seed, n + n_test)
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
    x, y = _pair(5, 500)
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
