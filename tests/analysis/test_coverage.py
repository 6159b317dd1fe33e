"""Coverage of the held-out intervals and the null threshold on planted pairs at CIFAR scale
(docs/math.md §5.5): K = 10 dimensions at ρ = 0.99 among d = 2,048, 20 seeds (0–19) per scale.
``slow``: about an hour per scale on 2 CPU cores (``experiments/heldout_coverage.py`` prints
the per-seed intervals)."""

from __future__ import annotations

import importlib.util

import pytest

from ncib.analysis import IntervalSettings
from tests.conftest import REPO_ROOT

SEEDS = range(20)


def _experiment():
    path = REPO_ROOT / "experiments" / "heldout_coverage.py"
    spec = importlib.util.spec_from_file_location("heldout_coverage", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize("n_train", [50_000, 10_000])
def test_heldout_intervals_cover_the_truth_and_invent_no_transition(n_train):
    exp = _experiment()
    d, k = 2048, 10
    results = [exp.run_seed(d, n_train, 10_000, k, seed, IntervalSettings()) for seed in SEEDS]
    cover = exp.coverage(results, d, k)
    for name in ("mean_k", "rho_k", "mi_xy", "i_ty_frac_tk"):
        assert cover[name] >= 0.9, (name, cover)
    # no planted (K+1)-th transition: β̃_{K+1} is none in at least 19 of 20 seeds
    assert cover["rho_k_next"] >= 19 / 20, cover
