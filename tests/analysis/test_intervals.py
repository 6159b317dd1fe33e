"""The null threshold and the intervals of the held-out numbers (ncib/analysis/intervals.py,
docs/math.md §5.5). Every key's value is also re-derived by the reference (tests/metrics/test_keys.py);
the coverage on planted pairs at CIFAR scale is tests/analysis/test_coverage.py (slow)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from scipy.stats import norm

from ncib.analysis import (
    HeldoutCorrelations,
    IntervalSettings,
    PairAnalysis,
    canonical_correlations,
    heldout_gib_from_correlations,
    heldout_gib_summary,
)
from ncib.analysis.intervals import (
    Interval,
    bootstrap_correlations,
    bracket_interval,
    null_threshold,
    spectrum_statistics,
)


def _spectrum_case(seed: int, d=12, n=400, ties=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = 0.8 * x @ torch.randn(d, d, generator=g, dtype=torch.float64) / math.sqrt(d)
    y += torch.randn(n, d, generator=g, dtype=torch.float64)
    cca = canonical_correlations(x, y)
    corr = torch.rand(d, generator=g, dtype=torch.float64) * 1.2 - 0.2
    if ties:
        corr[:4] = 0.5
    return cca, corr.clamp(-1, 1)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("null_rho", [0.0, 0.3])
@pytest.mark.parametrize("k", [1, 3, 11, 12])
def test_spectrum_statistics_equal_the_heldout_gib_summary(seed, null_rho, k):
    """The vectorised statistics of the resamples are those of the held-out GIB itself."""
    cca, corr = _spectrum_case(seed, ties=seed == 3)
    held = heldout_gib_from_correlations(cca, HeldoutCorrelations(corr, 100), null_rho=null_rho)
    s = heldout_gib_summary(held, k)
    got = spectrum_statistics(corr[None], k, corr.numel(), null_rho)[0].tolist()
    assert got[0] == pytest.approx(float(corr[:k].mean()), abs=1e-14)
    assert got[1] == pytest.approx(float(held.rho[k - 1]), abs=1e-14)
    assert got[2] == pytest.approx(float(held.rho[k]) if k < corr.numel() else 0.0, abs=1e-14)
    assert got[3] == pytest.approx(s.mi_xy, rel=1e-12)
    assert got[4] == pytest.approx(s.i_ty_frac_tk, rel=1e-10, abs=1e-14)
    # a spectrum of fewer pairs counts the rest as none
    short = spectrum_statistics(corr[None, :k], k, corr.numel(), null_rho)[0]
    padded = torch.cat([corr[:k], corr.new_zeros(corr.numel() - k)])
    want = spectrum_statistics(padded[None], k, corr.numel(), null_rho)[0]
    torch.testing.assert_close(short, want, rtol=0, atol=1e-14)


def test_a_correlation_at_or_below_the_null_counts_as_none():
    cca, corr = _spectrum_case(0)
    corr[:] = torch.linspace(0.9, 0.05, corr.numel(), dtype=torch.float64)
    null = float(corr[5])
    held = heldout_gib_from_correlations(cca, HeldoutCorrelations(corr, 100), null_rho=null)
    assert int((held.rho > 0).sum()) == 5 and held.null_rho == null
    assert torch.isinf(held.beta_crit[5:]).all()
    s = heldout_gib_summary(held, 5)
    assert math.isinf(s.beta_k_next) and s.beta_tk == pytest.approx(2 * s.beta_k)


def test_bracket_interval_spans_the_estimate_and_its_corrected_value():
    z = 1.96
    plain = bracket_interval("mi_xy", 10.0, [torch.full((5,), 9.0)], z)  # no spread, bias −1
    assert (plain.estimate, plain.lo, plain.hi) == (10.0, 10.0, 11.0)
    spread = bracket_interval(
        "mi_xy", 10.0, [torch.tensor([9.0, 11.0]), torch.tensor([10.0, 10.0, 10.0])], z
    )
    assert spread.lo == pytest.approx(10.0 - z * math.sqrt(2.0))
    assert spread.hi == pytest.approx(10.0 + z * math.sqrt(2.0))
    clipped = bracket_interval("rho_k", 0.99, [torch.tensor([0.9, 1.0, 0.95])], z)
    assert clipped.hi == 1.0 and clipped.lo < 0.99
    # non-finite replicates are left out; a source of fewer than two is skipped
    same = bracket_interval("mi_xy", 3.0, [torch.tensor([math.inf, 3.0]), torch.tensor([])], z)
    assert (same.lo, same.hi) == (3.0, 3.0)
    beta = Interval(0.5, 0.0, 0.8).as_beta()
    assert beta.estimate == 4.0 and beta.lo == pytest.approx(1 / 0.64) and beta.hi == math.inf


def test_bootstrap_correlations_are_those_of_resampled_rows():
    g = torch.Generator().manual_seed(3)
    sa = torch.randn(50, 3, generator=g, dtype=torch.float64)
    sb = sa + torch.randn(50, 3, generator=g, dtype=torch.float64)
    got = bootstrap_correlations(sa, sb, 4, torch.Generator().manual_seed(7))
    draws = torch.multinomial(
        torch.full((50,), 1 / 50, dtype=torch.float64),
        200,
        True,
        generator=torch.Generator().manual_seed(7),
    )
    for b in range(4):
        idx = draws[b * 50 : (b + 1) * 50].numpy()
        want = [np.corrcoef(sa[idx, i], sb[idx, i])[0, 1] for i in range(3)]
        np.testing.assert_allclose(got[b].numpy(), want, rtol=0, atol=1e-12)


def test_the_null_threshold_is_what_noise_reaches():
    """Independent variates: about 1 % of null draws exceed the 1 % family-wise threshold,
    which sits near the Šidák value Φ⁻¹((0.99)^{1/r})/sqrt(N_t) of r independent Gaussian
    correlations."""
    n, r = 2000, 64
    g = torch.Generator().manual_seed(0)
    sa = torch.randn(n, r, generator=g, dtype=torch.float64)
    sb = torch.randn(n, r, generator=g, dtype=torch.float64)
    sa, sb = sa - sa.mean(0), sb - sb.mean(0)
    thr = null_threshold(sa, sb, 400, 0.01, torch.Generator().manual_seed(1))
    sidak = norm.ppf(0.99 ** (1 / r)) / math.sqrt(n)
    assert thr == pytest.approx(sidak, rel=0.15)
    exceed = 0
    for seed in range(100):
        h = torch.Generator().manual_seed(100 + seed)
        a = torch.randn(n, r, generator=h, dtype=torch.float64)
        b = torch.randn(n, r, generator=h, dtype=torch.float64)
        corr = ((a - a.mean(0)) * (b - b.mean(0))).sum(0) / (
            (a - a.mean(0)).norm(dim=0) * (b - b.mean(0)).norm(dim=0)
        )
        exceed += int(corr.max() > thr)
    assert exceed <= 5


def test_interval_settings_refuse_bad_values_naming_them():
    with pytest.raises(ValueError, match=re.escape("intervals.folds=1 must be an integer >= 2")):
        IntervalSettings(folds=1)
    with pytest.raises(ValueError, match=re.escape("intervals.level=1.5 must be a number in")):
        IntervalSettings(level=1.5)
    with pytest.raises(ValueError, match="too few for null_level"):
        IntervalSettings(permutations=50, null_level=0.01)


def test_pair_analysis_intervals_hold_their_estimates(make_collapsed_pair):
    train, test, y, y_test = make_collapsed_pair(0, k=4)
    pa = PairAnalysis(train, test, y, y_test, num_classes=4)
    iv = pa.intervals("normal")
    assert iv.refits == 20 and iv.bootstrap == 200 and "refits" in iv.covers
    for name, value in iv.values.items():
        assert value.lo <= value.estimate <= value.hi, name
    assert iv.values["mi_xy"].estimate == pytest.approx(pa.heldout_gib_summary().mi_xy)
    assert set(pa.intervals("raw").values) == {"mean_k"}
    off = PairAnalysis(train, test, y, y_test, num_classes=4, intervals=None)
    assert off.null_rho() == 0.0
    with pytest.raises(ValueError, match="intervals=None"):
        off.intervals()
    no_refits = PairAnalysis(
        train, test, y, y_test, num_classes=4, intervals=IntervalSettings(refits=0)
    )
    assert "not covered" in no_refits.intervals().covers
