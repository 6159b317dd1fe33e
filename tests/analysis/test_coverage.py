"""Coverage of the held-out intervals and the null threshold on planted pairs at CIFAR scale
(docs/math.md §5.5): K = 10 dimensions at ρ = 0.99 among d = 2,048, 20 seeds (0–19) per scale.
``slow``: about an hour per scale on 2 CPU cores (``experiments/heldout_coverage.py`` prints
the per-seed intervals)."""

from __future__ import annotations

import math

import pytest

from ncib.analysis import IntervalSettings
from tests.conftest import REPO_ROOT
from tests.helpers import load_script

SEEDS = range(20)
LEVEL = 0.95  # IntervalSettings().level


def least_accepted(n: int, level: float, alpha: float = 0.05) -> int:
    """The fewest covering seeds of ``n`` that a one-sided binomial test at ``alpha`` accepts as
    consistent with coverage ``level`` (20 seeds at 95 %: 17, since P(≤ 16) = 0.016)."""

    def cdf(c: int) -> float:
        return sum(math.comb(n, i) * level**i * (1 - level) ** (n - i) for i in range(c + 1))

    return next(c for c in range(n + 1) if cdf(c) > alpha)


def _experiment():
    return load_script(REPO_ROOT / "experiments" / "heldout_coverage.py", "heldout_coverage")


@pytest.mark.slow
@pytest.mark.parametrize("n_train", [50_000, 10_000])
def test_heldout_intervals_cover_the_truth_and_invent_no_transition(n_train):
    exp = _experiment()
    d, k = 2048, 10
    results = [exp.run_seed(d, n_train, 10_000, k, seed, IntervalSettings()) for seed in SEEDS]
    cover = exp.coverage(results, d, k)
    least = least_accepted(len(SEEDS), LEVEL)
    for name in ("mean_k", "rho_k", "mi_xy", "i_ty_frac_tk"):
        assert round(cover[name] * len(SEEDS)) >= least, (name, cover)
    # no planted (K+1)-th transition: β̃_{K+1} is none in at least 19 of 20 seeds
    assert cover["rho_k_next"] >= 19 / 20, cover


def test_the_coverage_bound_is_the_binomial_one():
    assert least_accepted(20, 0.95) == 17
    assert least_accepted(100, 0.95) == 91  # P(≤ 90) = 0.028, P(≤ 91) = 0.063
