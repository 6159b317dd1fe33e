"""Bad input to the public analysis functions fails with a message that names the argument, the
value and what is allowed — and the optional arguments reach the computation."""

from __future__ import annotations

import pytest
import torch

from ncib.analysis import (
    canonical_correlations,
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
