"""Class-centred second moments (ncib/analysis/moments.py, docs/math.md §9): exact against a
float64 reference, per-fold sums reweighted, and right in the terminal phase."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from ncib.analysis import (
    PairAnalysis,
    canonical_correlations,
    class_centred_moments,
    cross_covariance,
    nc1,
)
from ncib.analysis.moments import fold_assignment


def _weighted_cov(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    ma, mb = np.average(a, 0, w), np.average(b, 0, w)
    return (w[:, None] * (a - ma)).T @ (b - mb) / w.sum()


def _within(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    total = 0.0
    for c in np.unique(y):
        rows = y == c
        if w[rows].sum() > 0:
            mu = np.average(x[rows], 0, w[rows])
            total += float((w[rows][:, None] * (x[rows] - mu) ** 2).sum())
    return total / w.sum()


def _data(seed: int, n=301, dims=(5, 7), classes=4, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes - 1, (n,), generator=g)  # the last class is absent
    mats = [
        (3.0 * torch.randn(classes, d, generator=g))[y] + torch.randn(n, d, generator=g) + 5.0
        for d in dims
    ]
    return [m.to(dtype) for m in mats], y


@pytest.mark.parametrize("folds", [1, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_moments_equal_a_float64_reference(folds, dtype):
    mats, y = _data(0, dtype=dtype)
    pairs = [(0, 0), (1, 1), (0, 1)]
    sums = class_centred_moments(mats, pairs, y, 4, n_folds=folds)
    means, blocks, within = sums.moments()
    x = [m.double().numpy() for m in mats]
    ones = np.ones(len(y))
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    for i, j in pairs:
        want = _weighted_cov(x[i], x[j], ones)
        np.testing.assert_allclose(blocks[(i, j)].numpy(), want, rtol=0, atol=tol * 10)
    for i in range(2):
        np.testing.assert_allclose(means[i].numpy(), x[i].mean(0), rtol=0, atol=tol)
        assert within[i] == pytest.approx(_within(x[i], y.numpy(), ones), rel=tol * 10)


def test_fold_weights_give_the_moments_of_the_rows_they_repeat():
    """Weights (B,) = how many times each fold is drawn: the moments of the rows repeated so
    (a fold bootstrap); the folds are segments of a fixed permutation (seed 0)."""
    mats, y = _data(1, dtype=torch.float64)
    n, folds = len(y), 4
    sums = class_centred_moments(mats, [(0, 0), (1, 1), (0, 1)], y, 4, n_folds=folds)
    weights = torch.tensor([2.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    means, blocks, within = sums.moments(weights)
    order = fold_assignment(n, folds).numpy()
    fold = np.empty(n, dtype=int)
    for f in range(folds):
        fold[order[round(f * n / folds) : round((f + 1) * n / folds)]] = f
    w = weights.numpy()[fold]
    x = [m.numpy() for m in mats]
    np.testing.assert_allclose(blocks[(0, 1)].numpy(), _weighted_cov(x[0], x[1], w), atol=1e-12)
    np.testing.assert_allclose(blocks[(1, 1)].numpy(), _weighted_cov(x[1], x[1], w), atol=1e-12)
    np.testing.assert_allclose(means[0].numpy(), np.average(x[0], 0, w), atol=1e-12)
    assert within[1] == pytest.approx(_within(x[1], y.numpy(), w), rel=1e-12)
    # the fold sums add up to the whole
    full = sums.moments()[1][(0, 1)]
    np.testing.assert_allclose(full.numpy(), _weighted_cov(x[0], x[1], np.ones(n)), atol=1e-12)


def test_blocks_kept_for_all_rows_only_cannot_be_reweighted():
    mats, y = _data(2, dtype=torch.float64)
    sums = class_centred_moments(mats, [(0, 0), (0, 1)], y, 4, n_folds=3, fold_pairs=[(0, 0)])
    assert sums.grams[(0, 0)].shape[0] == 3 and sums.grams[(0, 1)].shape[0] == 1
    assert set(sums.moments()[1]) == {(0, 0), (0, 1)}
    assert set(sums.moments(torch.ones(3))[1]) == {(0, 0)}
    with pytest.raises(ValueError, match=re.escape("fold weights must be 3 values >= 0")):
        sums.moments(torch.zeros(3))
    with pytest.raises(ValueError, match=re.escape("n_folds=0 must be an integer in [1, N=301]")):
        fold_assignment(301, 0)


# -- the terminal phase (docs/math.md §9) ------------------------------------------------------


def collapse_case(nc1_target: float, k=10, d=256, per_class=2000, c=0.94, seed=1):
    """A planted pair in the terminal phase: K class means of norm 10 (plus an offset of 5 on
    every coordinate) and within-class scatter σ chosen so that NC1 ≈ ``nc1_target``; member 1
    = a rotation of (class means, c·x + sqrt(1 − c²)·e) with x the within-class scatter of
    member 0, so the within-class canonical correlations are c. float32 features."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(k, d, generator=g, dtype=torch.float64)
    means = 10 * means / means.norm(dim=1, keepdim=True)
    means -= means.mean(0)
    y = torch.arange(k).repeat_interleave(per_class)
    between = torch.linalg.eigvalsh(means.T @ means / k)
    sigma = math.sqrt(nc1_target * k / float((1 / between[between > 1e-9 * between.max()]).sum()))
    x = torch.randn(len(y), d, generator=g, dtype=torch.float64)
    e = torch.randn(len(y), d, generator=g, dtype=torch.float64)
    rot = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64)).Q
    a = 5 + means[y] + sigma * x
    b = 5 + (means[y] + sigma * (c * x + math.sqrt(1 - c * c) * e)) @ rot
    return a.float(), b.float(), y


def _reference_rho(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Canonical correlations of the same float32 features in float64, no ridge (numpy)."""
    x, z = a.double().numpy(), b.double().numpy()
    x, z = x - x.mean(0), z - z.mean(0)

    def inv_sqrt(s):
        w, v = np.linalg.eigh(s)
        return (v / np.sqrt(w)) @ v.T

    n = len(x)
    m = inv_sqrt(x.T @ x / n) @ (x.T @ z / n) @ inv_sqrt(z.T @ z / n)
    return np.linalg.svd(m, compute_uv=False)


def test_canonical_correlations_stay_right_at_nc1_1e_7():
    """Class-centred float32 products and a ridge relative to the within-class variance give
    ρ_K within 10⁻³ of a float64 computation on the same features (the issue's planted
    collapse; ρ_K = 0.956 here); the globally centred float32 products give ≈ 1.0 and say that
    they cannot resolve the spectrum."""
    a, b, y = collapse_case(1e-7)
    assert float(nc1(a.double(), y, 10).value) == pytest.approx(1e-7, rel=0.1)
    ref = _reference_rho(a, b)
    got = canonical_correlations(a, b, labels=y)
    np.testing.assert_allclose(got.rho[:50].numpy(), ref[:50], rtol=0, atol=1e-3)
    assert abs(float(got.rho[9]) - ref[9]) < 1e-4
    assert not [w for w in got.warnings if "resolution" in w]
    with pytest.warns(RuntimeWarning, match="below the resolution of its computation"):
        old = canonical_correlations(a, b)  # globally centred: the within-class part is lost
    assert float(old.rho[9]) > ref[9] + 0.03


def test_the_pair_analysis_uses_the_collapse_proof_moments():
    """PairAnalysis's raw CCA and held-out correlations on the planted collapse (test rows
    centred by class before the float32 products) agree with float64 to 10⁻³."""
    a, b, y = collapse_case(1e-7, per_class=1200)
    n = len(y)
    pa = PairAnalysis((a, b), (a[: n // 4], b[: n // 4]), y, y[: n // 4], 10, intervals=None)
    ref = _reference_rho(a, b)
    np.testing.assert_allclose(pa.cca("raw").rho[:50].numpy(), ref[:50], rtol=0, atol=1e-3)
    # held out on a subset of the training rows: correlations of the fitted pairs, in float64
    held = pa.heldout_correlations("raw").corr[:50].numpy()
    w = pa.cca("raw")
    sa = (a[: n // 4].double() - w.mean_a) @ w.directions_a[:, :50]
    sb = (b[: n // 4].double() - w.mean_b) @ w.directions_b[:, :50]
    want = [np.corrcoef(sa[:, i], sb[:, i])[0, 1] for i in range(50)]
    np.testing.assert_allclose(held, want, rtol=0, atol=1e-3)


def test_the_ridge_is_relative_to_the_within_class_variance():
    """ε·tr(Σ_W)/d: the same relative effect on the within-class directions at any collapse."""
    for level in (1e-3, 1e-7):
        a, b, y = collapse_case(level, per_class=600)
        cov = cross_covariance(a, b, y)
        within = (
            float(
                (a.double() - torch.stack([a[y == c].double().mean(0) for c in range(10)])[y])
                .square()
                .sum()
            )
            / len(y)
            / a.shape[1]
        )
        assert cov.scale_a == pytest.approx(within, rel=1e-4)
        assert cross_covariance(a, b).scale_a is None  # unlabelled: tr(Σ)/d as before
