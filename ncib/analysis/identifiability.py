"""Linear identifiability: summaries of the K leading canonical correlations (docs/math.md §3).

The paper (Fig. 2) reports the mean of the K leading canonical correlations between two
members and their variance / standard deviation; :func:`heldout_identifiability` measures the
same correlations on held-out data with the directions fitted on the training split.
Variances and standard deviations here are **population** statistics (``unbiased=False``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ._checks import WarningLog, check_matrix
from ._linalg import no_tf32, row_chunks, work_dtype
from .cca import CCAResult, canonical_correlations, check_test_split

__all__ = [
    "IdentifiabilityResult",
    "heldout_from_cca",
    "heldout_identifiability",
    "identifiability",
    "identifiability_from_cca",
]


@dataclass(frozen=True)
class IdentifiabilityResult:
    """Summary of the k leading canonical correlations (float64, 0-dim tensors for scalars).

    Attributes:
        k: number of leading correlations summarised.
        rho_k: ``(k,)`` the summarised correlations: in-sample canonical correlations, or for
            the held-out variant the test-split Pearson correlations of the k leading pairs of
            canonical variates.
        mean, var, std: mean, population variance and population std of ``rho_k``.
        spectrum: ``(r,)`` the full in-sample spectrum of the fit, descending.
        heldout: whether ``rho_k`` was measured on held-out data.
        warnings: diagnostics of the fit and of the evaluation.
    """

    k: int
    rho_k: Tensor
    mean: Tensor
    var: Tensor
    std: Tensor
    spectrum: Tensor
    heldout: bool
    warnings: tuple[str, ...] = ()


def _check_k(k: int, r: int, d_a: int, d_b: int) -> int:
    if isinstance(k, bool) or int(k) != k or not 1 <= k <= r:
        raise ValueError(
            f"k={k} is out of range: k must be an integer with 1 <= k <= min(d_a, d_b) = {r} "
            f"(feature dimensions d_a={d_a}, d_b={d_b})"
        )
    return int(k)


def _summary(
    rho_k: Tensor, cca: CCAResult, heldout: bool, warnings: tuple[str, ...]
) -> IdentifiabilityResult:
    return IdentifiabilityResult(
        k=rho_k.shape[0],
        rho_k=rho_k,
        mean=rho_k.mean(),
        var=rho_k.var(unbiased=False),
        std=rho_k.std(unbiased=False),
        spectrum=cca.rho,
        heldout=heldout,
        warnings=warnings,
    )


def identifiability_from_cca(cca: CCAResult, k: int) -> IdentifiabilityResult:
    """Mean, population variance and std of the k leading in-sample correlations of ``cca``."""
    k = _check_k(k, cca.rho.shape[0], cca.directions_a.shape[0], cca.directions_b.shape[0])
    return _summary(cca.rho[:k], cca, False, cca.warnings)


def identifiability(a: Tensor, b: Tensor, k: int, ridge: float = 1e-6) -> IdentifiabilityResult:
    """Linear identifiability of ``a (N, d_a)`` and ``b (N, d_b)``: summary of the k leading ρ.

    Raises:
        ValueError: if k is not in ``[1, min(d_a, d_b)]``.
    """
    check_matrix("a", a)
    check_matrix("b", b)
    _check_k(k, min(a.shape[1], b.shape[1]), a.shape[1], b.shape[1])
    return identifiability_from_cca(canonical_correlations(a, b, ridge), k)


def heldout_from_cca(
    cca: CCAResult, a_test: Tensor, b_test: Tensor, k: int
) -> IdentifiabilityResult:
    """Held-out identifiability: directions of ``cca`` (fitted on train), correlations on test.

    For i < k the score pair ``(A_test − μ_a) W_a[:, i]`` and ``(B_test − μ_b) W_b[:, i]`` (training
    means μ) is correlated with the Pearson correlation on the test rows.

    Args:
        cca: a fit on the training split.
        a_test: ``(N_test, d_a)``; b_test: ``(N_test, d_b)``.
        k: number of leading pairs of canonical variates.
    """
    with no_tf32():
        d_a, d_b = cca.directions_a.shape[0], cca.directions_b.shape[0]
        k = _check_k(k, cca.rho.shape[0], d_a, d_b)
        check_test_split(cca, a_test, b_test)
        log = WarningLog("heldout_identifiability")
        log.extend(cca.warnings)
        scores = []
        for x, w, mu in (
            (a_test, cca.directions_a, cca.mean_a),
            (b_test, cca.directions_b, cca.mean_b),
        ):
            dt = work_dtype(x)
            mu_dt, w_dt = mu.to(dt), w[:, :k].to(dt)
            s = torch.cat([(x[sl].to(dt) - mu_dt) @ w_dt for sl in row_chunks(*x.shape)])
            s = s.to(torch.float64)
            scores.append(s - s.mean(0))
        sa, sb = scores
        denom = (sa.square().sum(0) * sb.square().sum(0)).sqrt()
        flat = denom <= torch.finfo(torch.float64).tiny
        if bool(flat.any()):
            log.warn(
                f"{int(flat.sum())} of {k} canonical variates are constant on the test split; "
                "their held-out correlation is reported as 0"
            )
        rho_k = torch.where(
            flat, 0.0, (sa * sb).sum(0) / denom.clamp_min(torch.finfo(torch.float64).tiny)
        )
        return _summary(rho_k, cca, True, log.as_tuple())


def heldout_identifiability(
    a_train: Tensor,
    b_train: Tensor,
    a_test: Tensor,
    b_test: Tensor,
    k: int,
    ridge: float = 1e-6,
) -> IdentifiabilityResult:
    """Fit CCA on ``(a_train, b_train)`` and measure the k leading correlations on the test split.

    Shapes: ``(N, d_a)``, ``(N, d_b)``, ``(N_test, d_a)``, ``(N_test, d_b)``.
    """
    check_matrix("a_train", a_train)
    check_matrix("b_train", b_train)
    _check_k(k, min(a_train.shape[1], b_train.shape[1]), a_train.shape[1], b_train.shape[1])
    return heldout_from_cca(canonical_correlations(a_train, b_train, ridge), a_test, b_test, k)
