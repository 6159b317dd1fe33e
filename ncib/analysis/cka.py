"""Linear centred kernel alignment between two feature sets (Kornblith et al., 2019).

For centred ``A (N, d_a)`` and ``B (N, d_b)``, linear CKA is
``‖Aᵀ B‖_F² / (‖Aᵀ A‖_F ‖Bᵀ B‖_F)`` (docs/math.md §4): the normalised HSIC of the linear kernels
``A Aᵀ`` and ``B Bᵀ``. The factors of N cancel, so it is the same ratio of the population
covariance blocks, ``‖Σ_ab‖_F² / (‖Σ_aa‖_F ‖Σ_bb‖_F)``, and reuses the blocks the CCA already
formed (no extra pass over the data). It lies in [0, 1], is 1 when B is an orthogonal
transform of A times a scalar, and — unlike CCA — is not invariant to invertible linear maps:
it weighs directions by their variance.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .cca import CovarianceBlocks, cross_covariance

__all__ = ["linear_cka", "linear_cka_from_covariance"]


def linear_cka_from_covariance(cov: CovarianceBlocks) -> Tensor:
    """Linear CKA (0-dim float64) from covariance blocks; 0 when either side is constant."""
    num = cov.cov_ab.square().sum()
    den = cov.cov_aa.square().sum().sqrt() * cov.cov_bb.square().sum().sqrt()
    if float(den) <= torch.finfo(torch.float64).tiny:
        return torch.zeros((), dtype=torch.float64, device=num.device)
    return (num / den).clamp_max(1.0)  # ≥ 0 as a ratio of norms; ≤ 1 up to rounding


def linear_cka(a: Tensor, b: Tensor) -> Tensor:
    """Linear CKA between ``a (N, d_a)`` and ``b (N, d_b)`` (rows are paired samples)."""
    return linear_cka_from_covariance(cross_covariance(a, b))
