"""Bad input to the public analysis functions fails with a message that names the argument, the
value and what is allowed — and the optional arguments reach the computation."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from ncib.analysis import (
    canonical_correlations,
    cross_covariance,
    heldout_from_cca,
    heldout_identifiability,
    identifiability,
    identifiability_from_cca,
)


def _data(n=200, d_a=5, d_b=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(n, d_a, generator=g, dtype=torch.float64)
    b = a[:, :d_b] + 0.5 * torch.randn(n, d_b, generator=g, dtype=torch.float64)
    return a, b


def test_identifiability_names_a_bad_matrix_and_k():
    a, b = _data()
    with pytest.raises(ValueError, match=r"^a must be 2-D \(N, d\), got shape \(200,\)$"):
        identifiability(a[:, 0], b, 1)
    with pytest.raises(ValueError, match=r"^b must be 2-D \(N, d\), got shape \(200,\)$"):
        identifiability(a, b[:, 0], 1)
    message = (
        r"^k=4 is out of range: k must be an integer with 1 <= k <= min\(d_a, d_b\) = 3 "
        r"\(feature dimensions d_a=5, d_b=3\)$"
    )
    with pytest.raises(ValueError, match=message):
        identifiability(a, b, 4)
    with pytest.raises(ValueError, match=message):  # the sizes of the fit's directions
        identifiability_from_cca(canonical_correlations(a, b), 4)
    for k in (True, 1.5, 0):
        with pytest.raises(ValueError, match=f"^k={k} is out of range"):
            identifiability(a, b, k)
    for k in (1, 3, 2.0):  # the ends of the range; an integral float
        result = identifiability(a, b, k)
        assert result.k == int(k) and result.heldout is False


def test_heldout_identifiability_names_a_bad_matrix_and_k():
    a, b = _data()
    with pytest.raises(ValueError, match=r"^a_train must be 2-D \(N, d\), got shape \(200,\)$"):
        heldout_identifiability(a[:, 0], b, a, b, 1)
    with pytest.raises(ValueError, match=r"^b_train must be 2-D \(N, d\), got shape \(200,\)$"):
        heldout_identifiability(a, b[:, 0], a, b, 1)
    with pytest.raises(ValueError, match=r"\(feature dimensions d_a=5, d_b=3\)$"):
        heldout_identifiability(a, b, a, b, 4)
    message = (
        r"^k=4 is out of range: k must be an integer with 1 <= k <= min\(d_a, d_b\) = 3 "
        r"\(feature dimensions d_a=3, d_b=5\)$"
    )
    cca = canonical_correlations(b, a)  # d_a = 3 < d_b = 5
    with pytest.raises(ValueError, match=message):
        identifiability_from_cca(cca, 4)
    with pytest.raises(ValueError, match=message):
        heldout_from_cca(cca, b, a, 4)
    assert heldout_identifiability(a, b, a, b, 1).heldout is True


def test_identifiability_uses_its_ridge():
    a, b = _data()
    for ridge in (1e-6, 0.5):
        cca = canonical_correlations(a, b, ridge)
        expected = identifiability_from_cca(cca, 2).rho_k
        torch.testing.assert_close(identifiability(a, b, 2, ridge).rho_k, expected, rtol=0, atol=0)
        held = heldout_identifiability(a[:150], b[:150], a[150:], b[150:], 2, ridge)
        fit = canonical_correlations(a[:150], b[:150], ridge)
        assert torch.equal(held.spectrum, fit.rho)
    assert identifiability(a, b, 2).mean > identifiability(a, b, 2, 0.5).mean + 1e-3


def test_cross_covariance_checks_and_warnings():
    a, b = _data()
    with pytest.raises(ValueError, match=r"^a must be 2-D \(N, d\), got shape \(200,\)$"):
        cross_covariance(a[:, 0], b)
    with pytest.raises(ValueError, match=r"^b must be 2-D \(N, d\), got shape \(200,\)$"):
        cross_covariance(a, b[:, 0])
    for x, y, name in ((a[:1], b[:1], "a"), (a[:2], b[:1], "b")):  # a covariance needs 2 rows
        with pytest.raises(ValueError, match=rf"^{name} has shape \(1, \d\); need at least 2"):
            cross_covariance(x, y)
    with pytest.raises(
        ValueError,
        match=r"^a and b must have the same number of rows \(paired samples\), got "
        r"200 and 150$",
    ):
        cross_covariance(a, b[:150])
    assert cross_covariance(a, b).n == 200
    bad = b.clone()
    bad[3, 1] = float("nan")  # in b only
    message = "^the features contain NaN or inf; covariances need finite values$"
    with pytest.raises(ValueError, match=message):
        cross_covariance(a, bad)
    with pytest.raises(ValueError, match=message):
        cross_covariance(bad, a)


def test_cross_covariance_names_constant_columns_and_too_few_samples():
    a, b = _data()
    b = b.clone()
    b[:, 0] = 7.0
    with pytest.warns(RuntimeWarning) as caught:
        cov = cross_covariance(a[:5], b[:5])  # N = 5 = d_a
    assert (
        [str(w.message) for w in caught]
        == list(cov.warnings)
        == [
            "cross_covariance: N=5 samples <= d=5 columns of a: its covariance is singular and the "
            "canonical correlations rely on the ridge",
            "cross_covariance: 1 of 3 columns of b are constant (zero variance)",
        ]
    )
    with pytest.warns(RuntimeWarning, match="^cross_covariance: 5 of 5 columns of a are constant"):
        cross_covariance(torch.zeros(200, 5, dtype=torch.float64), b)  # mean 0, variance 0


def test_constant_means_below_the_resolution_of_the_magnitude():
    """A column counts as constant when its spread is within a few ulps of its magnitude
    (floor ε²·(mean² + the largest variance of the matrix)); a small but real spread is not,
    nor is a matrix whose columns all have tiny spreads around 0."""
    g = torch.Generator().manual_seed(0)
    n = 200
    ulp_spread = 1000.0 + torch.randint(0, 4, (n,), generator=g).double() * math.ulp(1000.0)
    small = 1e-6 * torch.randn(n, generator=g, dtype=torch.float64) + 1000.0  # var 1e-12
    other = torch.randn(n, 2, generator=g, dtype=torch.float64)
    with pytest.warns(RuntimeWarning) as caught:
        cross_covariance(torch.stack([ulp_spread, small, other[:, 0]], 1), other)
    assert [str(w.message) for w in caught] == [
        "cross_covariance: 1 of 3 columns of a are constant (zero variance)"
    ]
    tiny = 1e-17 * torch.randn(n, 2, generator=g, dtype=torch.float64)  # var 1e-34, mean ≈ 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cross_covariance(tiny, other)


def test_a_test_split_is_checked_against_the_fit():
    a, b = _data()
    cca = canonical_correlations(a, b)
    with pytest.raises(ValueError, match=r"^a_test must be 2-D \(N, d\)"):
        heldout_from_cca(cca, a[:, 0], b, 1)
    with pytest.raises(ValueError, match=r"^b_test must be 2-D \(N, d\)"):
        heldout_from_cca(cca, a, b[:, 0], 1)
    for x, y, name in ((a[:1], b[:1], "a_test"), (a[:2], b[:1], "b_test")):
        with pytest.raises(ValueError, match=rf"^{name} has shape \(1, \d\); need at least 2"):
            heldout_from_cca(cca, x, y, 1)
    with pytest.raises(
        ValueError, match=r"^a_test and b_test must be paired \(same rows\), got 50 and 49$"
    ):
        heldout_from_cca(cca, a[:50], b[:49], 1)
    assert heldout_from_cca(cca, a[:2], b[:2], 1).rho_k.shape == (1,)  # two rows suffice


def test_constant_test_variates_are_named_and_count_as_zero():
    a, b = _data()
    b_test = (b[:1] * 4).round().div(4).repeat(50, 1)  # dyadic: the test mean is exact
    with pytest.warns(RuntimeWarning) as caught:
        result = heldout_identifiability(a, b, a[:50], b_test, 2)
    messages = [str(w.message) for w in caught]
    assert (
        "heldout_identifiability: 2 of 2 canonical variates are constant on the test split; "
        "their held-out correlation is taken as 0"
    ) in messages
    assert torch.equal(result.rho_k, torch.zeros(2, dtype=torch.float64))


def test_copula_cca_names_mismatched_normal_scores():
    from ncib.analysis import copula_cca

    a, _ = _data()
    with pytest.raises(
        ValueError,
        match=r"^normal has shape \(200, 4\) but raw \(200, 5\); pass the normal scores of raw "
        r"itself$",
    ):
        copula_cca(a, 2, normal=a[:, :4])
