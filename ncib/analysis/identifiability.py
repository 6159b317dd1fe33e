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
from ._linalg import no_tf32
from .cca import CCAResult, canonical_correlations
from .heldout_gib import test_variates, variate_correlations

__all__ = [
    "IdentifiabilityResult",
    "heldout_from_cca",
    "heldout_from_correlations",
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


def identifiability(
    a: Tensor, b: Tensor, k: int, ridge: float = 1e-6, labels: Tensor | None = None
) -> IdentifiabilityResult:
    """Linear identifiability of ``a (N, d_a)`` and ``b (N, d_b)``: summary of the k leading ρ
    (``labels (N,)``: class-centred moments, as :func:`ncib.analysis.cross_covariance`).

    Raises:
        ValueError: if k is not in ``[1, min(d_a, d_b)]``.
    """
    check_matrix("a", a)
    check_matrix("b", b)
    _check_k(k, min(a.shape[1], b.shape[1]), a.shape[1], b.shape[1])
    return identifiability_from_cca(canonical_correlations(a, b, ridge, labels), k)


def heldout_from_cca(
    cca: CCAResult, a_test: Tensor, b_test: Tensor, k: int, labels: Tensor | None = None
) -> IdentifiabilityResult:
    """Held-out identifiability: directions of ``cca`` (fitted on train), correlations on test.

    For i < k the score pair ``(A_test − μ_a) W_a[:, i]`` and ``(B_test − μ_b) W_b[:, i]`` (training
    means μ) is correlated with the Pearson correlation on the test rows.

    Args:
        cca: a fit on the training split.
        a_test: ``(N_test, d_a)``; b_test: ``(N_test, d_b)``.
        k: number of leading pairs of canonical variates.
        labels: ``(N_test,)`` test labels: rows centred by class before the products
            (:func:`ncib.analysis.heldout_gib.test_variates`, collapse-proof).
    """
    with no_tf32():
        d_a, d_b = cca.directions_a.shape[0], cca.directions_b.shape[0]
        k = _check_k(k, cca.rho.shape[0], d_a, d_b)
        log = WarningLog("heldout_identifiability")
        log.extend(cca.warnings)
        sa, sb = test_variates(cca, a_test, b_test, labels, columns=k)
        return heldout_from_correlations(cca, variate_correlations(sa, sb, log), k, log)


def heldout_from_correlations(
    cca: CCAResult, corr: Tensor, k: int, log: WarningLog | None = None
) -> IdentifiabilityResult:
    """Held-out identifiability from test correlations ``corr (q,)`` (q >= k) of the pairs of
    ``cca`` in training order (as :func:`ncib.analysis.heldout_correlations` gives them)."""
    k = _check_k(k, cca.rho.shape[0], cca.directions_a.shape[0], cca.directions_b.shape[0])
    warnings = log.as_tuple() if log is not None else cca.warnings
    return _summary(corr[:k].to(torch.float64), cca, True, warnings)


def heldout_identifiability(
    a_train: Tensor,
    b_train: Tensor,
    a_test: Tensor,
    b_test: Tensor,
    k: int,
    ridge: float = 1e-6,
    labels: tuple[Tensor, Tensor] | None = None,
) -> IdentifiabilityResult:
    """Fit CCA on ``(a_train, b_train)`` and measure the k leading correlations on the test split.

    Shapes: ``(N, d_a)``, ``(N, d_b)``, ``(N_test, d_a)``, ``(N_test, d_b)``; ``labels``:
    ``(train (N,), test (N_test,))`` for class-centred products.
    """
    check_matrix("a_train", a_train)
    check_matrix("b_train", b_train)
    _check_k(k, min(a_train.shape[1], b_train.shape[1]), a_train.shape[1], b_train.shape[1])
    train_labels, test_labels = labels if labels is not None else (None, None)
    cca = canonical_correlations(a_train, b_train, ridge, train_labels)
    return heldout_from_cca(cca, a_test, b_test, k, test_labels)
