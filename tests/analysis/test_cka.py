"""Linear CKA against the kernel definition and its known invariances."""

import numpy as np
import pytest
import torch

from ncib.analysis import cross_covariance, linear_cka, linear_cka_from_covariance


def kernel_cka(a: np.ndarray, b: np.ndarray) -> float:
    """Slow reference: HSIC of the linear kernels with the centring matrix H (Kornblith et al.)."""
    n = a.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    k, lk = a @ a.T, b @ b.T
    hsic = lambda x, y: np.trace(x @ h @ y @ h)  # noqa: E731
    return hsic(k, lk) / np.sqrt(hsic(k, k) * hsic(lk, lk))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_the_kernel_definition(seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(60, 7, generator=g, dtype=torch.float64) + 3.0
    b = a[:, :5] @ torch.randn(5, 4, generator=g, dtype=torch.float64) + 0.5 * torch.randn(
        60, 4, generator=g, dtype=torch.float64
    )
    expected = kernel_cka(a.numpy(), b.numpy())
    assert 0.05 < expected < 0.99  # a case where a wrong normalisation shows
    assert linear_cka(a, b).item() == pytest.approx(expected, rel=1e-12)
    assert linear_cka(b, a).item() == pytest.approx(expected, rel=1e-12)


def test_invariant_to_orthogonal_maps_and_scale_but_not_to_general_linear_maps():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(200, 6, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g, dtype=torch.float64))
    assert linear_cka(a, 4.0 * a @ q + 1.0).item() == pytest.approx(1.0, abs=1e-12)
    stretch = a @ torch.diag(torch.tensor([10.0, 1, 1, 1, 1, 0.1], dtype=torch.float64))
    assert linear_cka(a, stretch).item() < 0.6  # CCA would say 1 here


def test_independent_features_give_nearly_zero_and_constants_zero():
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(20000, 8, generator=g), torch.randn(20000, 8, generator=g)
    assert linear_cka(a, b).item() < 0.01
    assert linear_cka(a, torch.ones(20000, 3)).item() == 0.0
    assert linear_cka_from_covariance(cross_covariance(a, b)).dtype == torch.float64


def test_identical_sides_give_exactly_one_and_constants_a_float64_zero():
    # seed 0: ‖C‖²/(‖C‖·‖C‖) rounds to 1 + 2⁻⁵² here; CKA is capped at 1
    a = torch.randn(20, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    cov = cross_covariance(a, a)
    num = cov.cov_ab.square().sum()
    assert float(num / (cov.cov_aa.square().sum().sqrt() * cov.cov_bb.square().sum().sqrt())) > 1
    assert float(linear_cka(a, a)) == 1.0
    zero = linear_cka(torch.ones(20, 3, dtype=torch.float64), a)
    assert zero.dtype == torch.float64 and zero.shape == () and float(zero) == 0.0


def test_cka_is_zero_at_and_below_the_smallest_normal_scale():
    """``‖Σ_aa‖·‖Σ_bb‖`` at the smallest normal float64 (2⁻⁵¹¹·2⁻⁵¹¹) counts as a constant side
    (CKA 0), not a ratio of underflowing numbers."""
    from ncib.analysis import CovarianceBlocks

    one = torch.ones(1, 1, dtype=torch.float64)
    zero = torch.zeros(1, dtype=torch.float64)
    blocks = CovarianceBlocks(zero, zero, 2.0**-511 * one, 2.0**-511 * one, 2.0**-520 * one, n=3)
    assert 2.0**-511 * 2.0**-511 == torch.finfo(torch.float64).tiny
    assert float(linear_cka_from_covariance(blocks)) == 0.0
