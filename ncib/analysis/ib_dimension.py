"""The IB-k representation across dimensions k, and K′ (the paper's zero-shot transfer, Table 3
and Fig. 4; docs/math.md §11).

For member m the GIB of its normal scores with respect to the other member's gives, for each k,
the k-dimensional representation T_k (the GIB solution at a β just below β_{k+1}; T_K is the
case k = K). Evaluated on a grid of k: the analysis probe's test accuracy on T_k, the
nearest-class-centre accuracy and its agreement with the probe (NC4), and the feature scaling
α_i / mean α. K′ is the smallest k of the grid whose probe accuracy is within a tolerance of
the probe on the raw features.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .etf import class_means, ncc_predict
from .pair import PairAnalysis
from .probe import fit_logistic_probe

__all__ = ["IBDimensionPoint", "dimension_grid", "ib_dimension_curve", "k_prime"]


@dataclass(frozen=True)
class IBDimensionPoint:
    """Member m's T_k evaluated at one k (accuracies as fractions, float)."""

    k: int
    probe_train_acc: float
    probe_test_acc: float
    ncc_test_acc: float
    nc4_test: float
    feature_scaling: Tensor  # (k,) α_i / mean α
    warnings: tuple[str, ...] = ()


def dimension_grid(
    num_classes: int, feature_dim: int, grid: Sequence[int] | None = None
) -> list[int]:
    """The k to evaluate: ``grid`` (checked, sorted, de-duplicated), or K, 2K, 3K, … up to the
    feature dimension (the feature dimension itself last if it is not a multiple of K)."""
    if grid is None:
        ks = list(range(num_classes, feature_dim + 1, num_classes))
        if not ks or ks[-1] != feature_dim:
            ks.append(feature_dim)
        return ks
    ks = sorted({int(k) for k in grid})
    bad = [k for k in ks if not 1 <= k <= feature_dim]
    if bad or not ks:
        raise ValueError(
            f"transfer.grid={list(grid)}: every k must be in [1, {feature_dim}] (the feature dimension)"
        )
    return ks


def ib_dimension_curve(pa: PairAnalysis, m: int, ks: Sequence[int]) -> list[IBDimensionPoint]:
    """T_k of member ``m`` for every k of ``ks``, evaluated train → test (see the module)."""
    with torch.no_grad():
        train_scores, test_scores = pa.normal(m)
        gib = pa.heldout_gib(m).gib  # T_k placed by the held-out spectrum, as T_K
        points = []
        for k in ks:
            rep = gib.representation(int(k))
            h_train, h_test = rep.transform(train_scores), rep.transform(test_scores)
            probe = fit_logistic_probe(
                h_train,
                pa.y_train,
                h_test,
                pa.y_test,
                num_classes=pa.num_classes,
                shard=pa.shard,
                test_shard=pa.test_shard,
                **pa.probe_kwargs,
            )
            means = class_means(h_train, pa.y_train, pa.num_classes, pa.shard)
            ncc = ncc_predict(h_train, pa.y_train, h_test, pa.num_classes, means)
            points.append(
                IBDimensionPoint(
                    k=int(k),
                    probe_train_acc=float(probe.train_acc),
                    probe_test_acc=float(probe.test_acc),
                    ncc_test_acc=pa.fraction(ncc == pa.y_test, "test"),
                    nc4_test=pa.fraction(ncc == probe.test_pred, "test"),
                    feature_scaling=rep.feature_scaling,
                    warnings=rep.warnings + probe.warnings + means.warnings,
                )
            )
            pa.note_warnings(points[-1].warnings)  # into the epoch record's warnings
        return points


def k_prime(
    points: Sequence[IBDimensionPoint], raw_test_acc: float, tolerance_points: float
) -> int | None:
    """The smallest k whose probe test accuracy is within ``tolerance_points`` percentage points
    of ``raw_test_acc`` (the probe on the raw features), or None if no k of the grid is."""
    if not tolerance_points >= 0 or math.isinf(tolerance_points):
        raise ValueError(
            f"transfer.tolerance={tolerance_points!r} must be a finite number of points >= 0"
        )
    for p in sorted(points, key=lambda p: p.k):
        if 100.0 * (raw_test_acc - p.probe_test_acc) <= tolerance_points:
            return p.k
    return None
