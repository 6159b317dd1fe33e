"""The grid of dimensions k and K′ (docs/math.md §11); T_k itself is checked in test_keys.py."""

from __future__ import annotations

import math

import pytest
import torch

from ncib.analysis import IBDimensionPoint, dimension_grid, k_prime


@pytest.mark.parametrize(
    ("num_classes", "feature_dim", "expected"),
    [
        (10, 64, [10, 20, 30, 40, 50, 60, 64]),  # the feature dimension last
        (10, 60, [10, 20, 30, 40, 50, 60]),  # ... once when it is a multiple of K
        (10, 5, [5]),  # fewer dimensions than classes
        (3, 3, [3]),
    ],
)
def test_the_default_grid_is_multiples_of_k_then_the_feature_dimension(
    num_classes, feature_dim, expected
):
    assert dimension_grid(num_classes, feature_dim) == expected


def test_a_given_grid_is_sorted_deduplicated_and_checked():
    assert dimension_grid(10, 64, [30, 10, 30, 64]) == [10, 30, 64]
    for grid in ([0, 10], [10, 65], []):
        with pytest.raises(ValueError, match=r"transfer\.grid=.*must be in \[1, 64\]"):
            dimension_grid(10, 64, grid)


def _point(k: int, acc: float) -> IBDimensionPoint:
    return IBDimensionPoint(k, acc, acc, acc, 1.0, torch.ones(k))


def test_k_prime_is_the_smallest_k_within_the_tolerance_in_points():
    # 0.75 − 0.5 = 0.25 and 0.75 − 0.625 = 0.125 are exact in binary: 25 and 12.5 points
    points = [_point(30, 0.75), _point(10, 0.5), _point(20, 0.625)]  # any order
    assert k_prime(points, 0.75, 25.0) == 10  # exactly at the tolerance counts
    assert k_prime(points, 0.75, 24.9) == 20
    assert k_prime(points, 0.75, 12.5) == 20
    assert k_prime(points, 0.75, 0.0) == 30  # tolerance 0: the raw accuracy itself
    assert k_prime(points, 0.75, 0.5) == 30
    assert k_prime(points, 0.875, 12.4) is None  # no k of the grid is close enough
    assert k_prime(points, 0.875, 12.5) == 30
    assert k_prime([_point(10, 0.5)], 0.75, 25.1) == 10  # points are 100×, not 101×, the gap


@pytest.mark.parametrize("tolerance", [-1.0, math.inf, math.nan])
def test_k_prime_rejects_a_tolerance_that_is_not_finite_and_non_negative(tolerance):
    with pytest.raises(
        ValueError,
        match=rf"^transfer\.tolerance={tolerance!r} must be a finite number of points >= 0$",
    ):
        k_prime([_point(10, 0.5)], 0.75, tolerance)


def test_the_curve_passes_on_the_warnings_of_its_probes_and_means(make_collapsed_pair, monkeypatch):
    """A T_k probe's or class means' warning reaches the point and the pair's warnings (the
    epoch record), once each."""
    import dataclasses

    import ncib.analysis.ib_dimension as ib_dimension
    from ncib.analysis import PairAnalysis, ib_dimension_curve

    train, test, y, y_test = make_collapsed_pair(0, k=4)
    pa = PairAnalysis(train, test, y, y_test, num_classes=4)
    fit, means = ib_dimension.fit_logistic_probe, ib_dimension.class_means

    def probe(*args, **kwargs):
        result = fit(*args, **kwargs)
        return dataclasses.replace(result, warnings=(*result.warnings, "probe: planted"))

    def class_means(*args, **kwargs):
        result = means(*args, **kwargs)
        return dataclasses.replace(result, warnings=(*result.warnings, "means: planted"))

    monkeypatch.setattr(ib_dimension, "fit_logistic_probe", probe)
    monkeypatch.setattr(ib_dimension, "class_means", class_means)
    points = ib_dimension_curve(pa, 0, [1, 3])
    for p in points:
        assert p.warnings[-2:] == ("probe: planted", "means: planted")
    assert pa.warnings.count("probe: planted") == 1 and pa.warnings.count("means: planted") == 1
