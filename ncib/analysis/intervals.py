"""Uncertainty of the held-out numbers: a null threshold for transitions, and intervals.

The held-out spectrum (:mod:`ncib.analysis.heldout_gib`) has two sources of error
(docs/math.md §5.5):

* **the test rows** — each ``c_i`` is a correlation of a fixed pair of variates over N_t rows;
* **the training fit** — the canonical directions are estimated from N training rows; their
  error lowers the test correlations of the strong pairs (attenuation: −1 to −2 % of I(X;Y) at
  d = 2,048, N = 50,000; −13 % at N = 10,000) and varies from one training sample to another.

**Null threshold.** Permuting the rows of one member's test variates breaks every pairing
while keeping each variate's distribution: the largest of the r correlations under a
permutation is what noise alone reaches. The threshold ``ρ_null`` is the ``1 − null_level``
quantile of that maximum over ``permutations`` permutations (family-wise over the r pairs). A
held-out correlation at or below it counts as no shared information (λ̃ = 1): β̃_{K+1} is ∞
when the (K+1)-th correlation does not clear it.

**Intervals.** For a statistic θ (mean ρ̃_K, ρ̃_K, ρ̃_{K+1}, Ĩ(X;Y), Ĩ(T_K;Y)/Ĩ(X;Y)):

* test rows: ``bootstrap`` resamples of the test rows with the fitted directions fixed (costs
  projections only): bias ``b_t`` = mean − θ̂ and variance ``v_t``;
* training fit: ``refits`` bootstrap resamples of the B training folds (the fold sums of
  :mod:`ncib.analysis.moments`, no further pass over the data), each a CCA refit evaluated on
  the test split: bias ``b_f`` and variance ``v_f``;
* the interval is ``[min(θ̂, θ̂ − b_t − b_f) − z·s, max(θ̂, θ̂ − b_t − b_f) + z·s]``,
  ``s = sqrt(v_t + v_f)``, z the normal quantile of ``level``, clipped to the statistic's range.

It spans the estimate and its bias-corrected value, widened by the sampling error: the
bootstrap bias correction is close to right when N ≫ d and overshoots at N/d ≈ 5, so neither
end alone covers in both regimes (coverage measured on planted pairs: docs/math.md §5.5). It
does not cover a failure of the Gaussian-copula model, nor, for trained encoders, the
difference between the training and test distributions (it is an interval for the
population of the analysed split's distribution).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import torch
from torch import Tensor

from ._checks import WarningLog
from .cca import CovarianceBlocks, cca_from_covariance
from .heldout_gib import project_variates, test_variates, variate_correlations
from .shards import Comm, Shard

__all__ = [
    "STATISTICS",
    "HeldoutIntervals",
    "Interval",
    "IntervalSettings",
    "bootstrap_correlations",
    "bracket_interval",
    "null_threshold",
    "heldout_intervals",
    "interval_settings",
    "spectrum_statistics",
]

STATISTICS = ("mean_k", "rho_k", "rho_k_next", "mi_xy", "i_ty_frac_tk")
"""The statistics of a held-out spectrum that get intervals (:func:`spectrum_statistics`)."""

_BOUNDS = {
    "mean_k": (-1.0, 1.0),
    "rho_k": (0.0, 1.0),
    "rho_k_next": (0.0, 1.0),
    "mi_xy": (0.0, math.inf),
    "i_ty_frac_tk": (0.0, 1.0),
}


@dataclass(frozen=True)
class IntervalSettings:
    """How the held-out numbers' uncertainty is measured (``analysis.intervals`` in conf).

    Attributes:
        folds: B, training folds kept apart in the covariance pass (memory: B·d² float32 per
            covariance block).
        refits: bootstrap resamples of the folds, each a CCA refit (0: intervals cover the test
            rows only, and say so).
        bootstrap: resamples of the test rows.
        permutations: permutations of one member's test rows for the null threshold.
        null_level: family-wise level of the null threshold.
        level: coverage aimed at by the intervals.
        seed: seed of the resampling (the analysis is deterministic given the features).
    """

    folds: int = 20
    refits: int = 20
    bootstrap: int = 200
    permutations: int = 200
    null_level: float = 0.01
    level: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        for name, low in (("folds", 2), ("refits", 0), ("bootstrap", 2), ("permutations", 10)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"intervals.{name}={value!r} must be an integer >= {low}")
        for name in ("null_level", "level"):
            value = getattr(self, name)
            if not (isinstance(value, float | int) and 0.0 < value < 1.0):
                raise ValueError(f"intervals.{name}={value!r} must be a number in (0, 1)")
        if self.permutations * self.null_level < 1.0:
            raise ValueError(
                f"intervals.permutations={self.permutations} is too few for null_level="
                f"{self.null_level}: need permutations·null_level >= 1"
            )


def interval_settings(values: Mapping | None) -> IntervalSettings | None:
    """The ``analysis.intervals`` config mapping as :class:`~ncib.analysis.IntervalSettings`
    (None stays None: no intervals). An unknown key or a bad value is a ``ValueError`` naming
    ``analysis.intervals.<key>``, the value and what is allowed."""
    if values is None:
        return None
    if not isinstance(values, Mapping):
        raise ValueError(
            f"analysis.intervals must be a mapping of interval settings or null (none); got "
            f"{values!r}"
        )
    allowed = [f.name for f in dataclasses.fields(IntervalSettings)]
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ValueError(f"analysis.intervals has no key {unknown}; its keys are {allowed}")
    try:
        return IntervalSettings(**{k: values[k] for k in values})
    except ValueError as err:
        raise ValueError(f"analysis.{err}") from None


@dataclass(frozen=True)
class Interval:
    """An estimate and its interval (plain floats; inf where a β has no transition)."""

    estimate: float
    lo: float
    hi: float

    def as_beta(self) -> Interval:
        """The interval of ``β = 1/ρ²`` for an interval of a correlation ρ (∞ at ρ = 0)."""

        def beta(rho: float) -> float:
            return 1.0 / (rho * rho) if rho > 0.0 else math.inf

        return Interval(beta(self.estimate), beta(self.hi), beta(self.lo))


@dataclass(frozen=True)
class HeldoutIntervals:
    """Intervals of the held-out numbers of one feature kind (see the module docstring).

    Attributes:
        values: statistic name (:data:`STATISTICS`) → :class:`Interval`.
        null_rho: the null threshold ρ_null of the held-out correlations.
        refits, bootstrap: resamples actually used (refits 0: the training fit's error is
            not covered).
        covers: one line saying what the intervals cover.
        warnings: diagnostics.
    """

    values: dict[str, Interval]
    null_rho: float
    refits: int
    bootstrap: int
    covers: str
    warnings: tuple[str, ...] = ()


def _generator(seed: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + stream)


def null_threshold(
    sa: Tensor,
    sb: Tensor,
    permutations: int,
    null_level: float,
    gen: torch.Generator,
    shard: Shard | None = None,
) -> float:
    """The ``1 − null_level`` quantile of ``max_i corr(sa_i, sb_i[π])`` over random row
    permutations π (``sa``, ``sb``: centred variates ``(N_t, q)``).

    ``shard``: the rows are this rank's of a test split shared over ranks
    (:class:`ncib.analysis.shards.Shard`; every rank passes a generator in the same state).
    The permutations are those of the whole split, the same as one process draws: each rank
    broadcasts its rows of ``sb`` once, in turn, and every rank adds the products of its rows
    of ``sa`` with the partners they receive under every permutation. One rank's rows are held
    at a time; the sums of all ranks are added at the end (:func:`_sharded_permuted_sums`)."""
    if shard is None:
        n = sa.shape[0]
        norm = (sa.square().sum(0) * sb.square().sum(0)).sqrt()
        perms = (torch.randperm(n, generator=gen) for _ in range(permutations))
        sums = torch.stack([(sa * sb.index_select(0, p.to(sb.device))).sum(0) for p in perms]).to(
            torch.float64
        )
    else:
        squares = shard.sum_(torch.stack([sa.square().sum(0), sb.square().sum(0)]))
        norm = (squares[0] * squares[1]).sqrt()
        sums = _sharded_permuted_sums(sa, sb, permutations, gen, shard)
    maxima = (sums / norm.clamp_min(torch.finfo(sa.dtype).tiny)).max(1).values
    return float(torch.quantile(maxima.to(device="cpu", dtype=torch.float64), 1.0 - null_level))


def _sharded_permuted_sums(
    sa: Tensor, sb: Tensor, permutations: int, gen: torch.Generator, shard: Shard
) -> Tensor:
    """``(permutations, q)`` ``Σ_i sa_i · sb_{π(i)}`` over the whole split for the permutations
    π drawn from ``gen``, with the rows shared over ranks (see :func:`null_threshold`)."""
    comm, n, dev = shard.comm, shard.total, sa.device
    rows = shard.rows.to("cpu")
    # where every global row lives: its rank and its position there (each row is on one rank)
    owner = torch.zeros(2, n, dtype=torch.float64)
    owner[0, rows] = float(comm.rank)
    owner[1, rows] = torch.arange(rows.numel(), dtype=torch.float64)
    owner = comm.all_reduce_(owner).to(torch.int64)
    # the partner of each of this rank's rows under each permutation (global row, its owner)
    partners = torch.stack([torch.randperm(n, generator=gen)[rows] for _ in range(permutations)])
    held_by = owner[0].index_select(0, partners.flatten()).view_as(partners)
    position = owner[1].index_select(0, partners.flatten()).view_as(partners)
    del partners, owner
    sums = torch.zeros(permutations, sa.shape[1], dtype=torch.float64, device=dev)
    sizes = shard.sizes()
    for src in range(comm.world):  # rank src's rows of sb, to every rank in turn
        block = sb if src == comm.rank else sb.new_empty(sizes[src], sb.shape[1])
        comm.broadcast_(block, src)
        for p in range(permutations):
            mine = (held_by[p] == src).nonzero().squeeze(1)
            if mine.numel():
                there = position[p].index_select(0, mine).to(dev)
                sums[p] += (sa.index_select(0, mine.to(dev)) * block.index_select(0, there)).sum(0)
        del block
    return comm.all_reduce_(sums)


def bootstrap_correlations(
    sa: Tensor,
    sb: Tensor,
    replicates: int,
    gen: torch.Generator,
    shard: Shard | None = None,
) -> Tensor:
    """``(replicates, q)`` correlations of the variate pairs over bootstrap resamples of the
    rows (weighted moments: one product per moment, no copies of the rows). ``shard``: the
    rows are this rank's of a test split shared over ranks: every rank draws the resamples of
    the whole split (the same as one process) and weights its own rows; the weighted sums are
    added over the ranks."""
    n = sa.shape[0] if shard is None else shard.total
    counts = torch.multinomial(
        torch.full((n,), 1.0 / n, dtype=torch.float64), n * replicates, True, generator=gen
    )
    # row i's multiplicity in resample r: the draws of each resample counted (exact integers)
    counts.view(replicates, n).add_(torch.arange(replicates)[:, None] * n)
    w = torch.bincount(counts, minlength=replicates * n).view(replicates, n).to(torch.float64)
    del counts
    if shard is not None:
        w = w[:, shard.rows.to("cpu")]
    w = (w / n).to(sa.device)
    moments = torch.stack(
        [w @ sa, w @ sb, w @ sa.square(), w @ sb.square(), w @ (sa * sb)]
    )  # (5, replicates, q)
    if shard is not None:
        shard.sum_(moments)
    ma, mb, saa, sbb, sab = moments
    var_a = (saa - ma.square()).clamp_min(0.0)
    var_b = (sbb - mb.square()).clamp_min(0.0)
    cov = sab - ma * mb
    denom = (var_a * var_b).sqrt()
    return torch.where(denom > 0, cov / denom.clamp_min(torch.finfo(sa.dtype).tiny), 0.0).clamp(
        -1.0, 1.0
    )


def spectrum_statistics(corr: Tensor, k: int, r: int, null_rho: float) -> Tensor:
    """``(R, 5)`` statistics (:data:`STATISTICS`) of R held-out spectra ``corr (R, q)``
    (signed correlations of the first q ≤ r pairs in training order; pairs beyond q count as
    none): mean of the first k (training order, signed: the held-out identifiability),
    and of the spectrum ``ρ̃ = c`` where ``c > null_rho`` (else 0), sorted: ρ̃_k, ρ̃_{k+1},
    ``Ĩ(X;Y) = −½ Σ log(1 − ρ̃²)`` and ``Ĩ(T_K;Y)/Ĩ(X;Y)`` at the β of T_K
    (:meth:`ncib.analysis.GIBResult.beta_for_k`). Equal to :func:`heldout_gib_summary` of
    :func:`heldout_gib_from_correlations` with the same threshold (tested). Computed on the
    CPU whatever the device of ``corr``: R × q numbers, and the β of each replicate is chosen
    in a Python loop."""
    corr = corr.to(device="cpu", dtype=torch.float64)
    reps, q = corr.shape
    mean_k = corr[:, :k].mean(1)
    rho = torch.where(corr > null_rho, corr, 0.0).clamp(0.0, 1.0)
    if q < r:
        rho = torch.cat([rho, rho.new_zeros(reps, r - q)], 1)
    rho = rho.sort(1, descending=True).values
    eps = torch.finfo(torch.float64).eps
    lam = ((1.0 - rho) * (1.0 + rho)).clamp(eps, 1.0)
    crit = 1.0 / (1.0 - lam)  # inf where ρ̃ = 0
    i_xy = -0.5 * lam.log().sum(1)
    rho_k = rho[:, k - 1]
    rho_next = rho[:, k] if k < r else rho.new_zeros(reps)
    beta = torch.empty(reps, dtype=torch.float64)
    for i in range(reps):  # the β of T_K, exactly as GIBResult.beta_for_k chooses it
        finite = crit[i, :k][torch.isfinite(crit[i, :k])]
        if finite.numel() < k:
            beta[i] = 2.0 * float(finite[-1]) if finite.numel() else 1.0
            continue
        b_k = float(crit[i, k - 1])
        b_next = float(crit[i, k]) if k < r else math.inf
        if not math.isfinite(b_next):
            beta[i] = 2.0 * b_k
            continue
        b = b_next * (1.0 - 1e-6)
        if b <= b_k:
            b = 0.5 * (b_k + b_next)
        beta[i] = b if b_k < b < b_next else b_k * (1.0 + 1e-6)
    b = beta[:, None]
    active = b > crit
    t_x = torch.where(active, ((b - 1.0) * (1.0 - lam) / lam).log(), 0.0).sum(1)
    t_y = torch.where(active, (b * (1.0 - lam)).log(), 0.0).sum(1)
    i_ty = 0.5 * t_x - 0.5 * t_y
    frac = torch.where(i_xy > 0, i_ty / i_xy.clamp_min(torch.finfo(torch.float64).tiny), 0.0)
    return torch.stack([mean_k, rho_k, rho_next, i_xy, frac], 1)


def bracket_interval(
    name: str,
    estimate: float,
    replicates: Sequence[Tensor],
    z: float,
) -> Interval:
    """The interval of the module docstring from the point estimate and the replicates of
    each source of error (a list of 1-d tensors: test-row bootstrap, refits; empty ones are
    skipped)."""
    bias, var = 0.0, 0.0
    for rep in replicates:
        rep = rep[torch.isfinite(rep)]
        if rep.numel() >= 2:
            bias += float(rep.mean()) - estimate
            var += float(rep.var())
    corrected = estimate - bias
    half = z * math.sqrt(var)
    lo_bound, hi_bound = _BOUNDS[name]
    lo = min(max(min(estimate, corrected) - half, lo_bound), estimate)
    hi = max(min(max(estimate, corrected) + half, hi_bound), estimate)
    return Interval(float(estimate), float(lo), float(hi))


def refit_correlations(
    covariances: Sequence[CovarianceBlocks],
    ridge: float,
    q: int,
    a_test: Tensor,
    b_test: Tensor,
    labels: Tensor | None,
) -> Tensor:
    """``(len(covariances), q)`` test correlations of the q leading pairs of a CCA refitted to
    each of ``covariances`` (resampled training moments). Each refit is a full CCA: a truncated
    SVD by subspace iteration was tried and converges slowly exactly where refits matter (at
    N/d ≈ 5 the noise bulk of the whitened cross block comes within a few percent of the
    signal); only the q leading pairs are projected on the test rows."""
    rows = []
    log = WarningLog("heldout_intervals")
    # each refit meets the conditioning the fit itself warned about: one warning for all
    # refits instead of one per refit (20 by default) in the log
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for cov in covariances:
            cca = cca_from_covariance(cov, ridge)
            sa, sb = test_variates(cca, a_test, b_test, labels, columns=q)
            rows.append(variate_correlations(sa, sb, log))
    _warn_once(caught, f"{len(covariances)} CCA refits")
    return torch.stack(rows)


def _warn_once(caught: Sequence[warnings.WarningMessage], where: str) -> None:
    """One RuntimeWarning for the warnings ``caught`` in the refits (none if there were none)."""
    if caught:
        first = str(caught[0].message).split(":", 1)[0]
        warnings.warn(
            f"heldout_intervals: {len(caught)} warning(s) in {where}, the first from {first}: "
            f"{str(caught[0].message)[:300]}",
            RuntimeWarning,
            stacklevel=3,
        )


def _sharded_refit_correlations(
    weights: Sequence[Tensor],
    resample: Callable[[Tensor], CovarianceBlocks],
    ridge: float,
    q: int,
    test: tuple[Tensor, Tensor, Tensor | None],
    shard: Shard,
) -> Tensor:
    """:func:`refit_correlations` of the fold ``weights`` with the test split shared over
    ranks: in rounds of R refits, rank c fits refit ``round + c`` (the R CCAs side by side),
    then each in turn broadcasts the q leading directions and the means of its fit, and every
    rank projects its test rows on them (one fit's directions received at a time). Returns
    ``(len(weights), q)`` on every rank."""
    comm = shard.comm
    a_test, b_test, labels = test
    dev, f64 = a_test.device, torch.float64
    rows = torch.empty(len(weights), q, dtype=f64, device=dev)
    log = WarningLog("heldout_intervals")
    caught: list = []
    for start in range(0, len(weights), comm.world):
        mine = start + comm.rank
        fit = None
        if mine < len(weights):
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                fit = cca_from_covariance(resample(weights[mine]), ridge)
            caught += seen
        for src in range(min(comm.world, len(weights) - start)):
            parts = [
                torch.empty(a_test.shape[1], q, dtype=f64, device=dev),
                torch.empty(b_test.shape[1], q, dtype=f64, device=dev),
                torch.empty(a_test.shape[1], dtype=f64, device=dev),
                torch.empty(b_test.shape[1], dtype=f64, device=dev),
            ]
            if src == comm.rank:
                for part, value in zip(
                    parts,
                    (fit.directions_a[:, :q], fit.directions_b[:, :q], fit.mean_a, fit.mean_b),
                    strict=True,
                ):
                    part.copy_(value)
            for part in parts:
                comm.broadcast_(part, src)
            sa, sb = project_variates((a_test, b_test), parts[:2], parts[2:], labels, shard)
            rows[start + src] = variate_correlations(sa, sb, log, shard)
    _warn_once(caught, "this rank's CCA refits")  # each rank warns of the refits it fitted
    return rows


def normal_quantile(level: float) -> float:
    """z with P(|Z| <= z) = level for a standard normal Z."""
    return NormalDist().inv_cdf(0.5 + 0.5 * level)


def heldout_intervals(
    corr: Tensor,
    variates: tuple[Tensor, Tensor],
    resample: Callable[[Tensor], CovarianceBlocks] | None,
    test: tuple[Tensor, Tensor, Tensor | None],
    ridge: float,
    k: int,
    null_rho: float,
    settings: IntervalSettings,
    names: Sequence[str] = STATISTICS,
    stream: int = 0,
    comm: Comm | None = None,
    test_shard: Shard | None = None,
) -> HeldoutIntervals:
    """Intervals of the held-out statistics ``names`` of one fit (see the module docstring).

    Args:
        corr: ``(r,)`` test correlations of the fit's r pairs (training order).
        variates: its centred test variates ``((N_t, r), (N_t, r))`` (the bootstrap resamples
            their rows).
        resample: fold weights ``(B,)`` → the training :class:`CovarianceBlocks` of that
            resample (None: no refits).
        test: ``(a_test, b_test, labels)`` for evaluating the refits.
        ridge, k: as in the fit; null_rho: the null threshold.
        stream: distinguishes the random streams of several calls with one seed.
        comm: the ranks of a sharded analysis (:mod:`ncib.analysis.shards`), every one with the
            same arguments: the refits (a d×d CCA each) are dealt out, rank r fitting refits
            r, r+R, …, and their test correlations summed over the ranks; every rank returns
            the same intervals, those of one process.
        test_shard: the test split shared over the ranks of ``comm``: ``variates`` and
            ``test`` are this rank's rows. The bootstrap weights each rank's rows of the whole
            split's resamples; each refit is fitted by one rank and its directions broadcast,
            and every rank projects its test rows (:func:`_sharded_refit_correlations`).
    """
    r = corr.shape[0]
    cols = [STATISTICS.index(n) for n in names]
    z = normal_quantile(settings.level)
    estimate = spectrum_statistics(corr[None], k, r, null_rho)[0]
    gen = _generator(settings.seed, 2 * stream)
    boot = spectrum_statistics(
        bootstrap_correlations(*variates, settings.bootstrap, gen, test_shard), k, r, null_rho
    )
    refits = 0
    fits = estimate.new_zeros(0, len(STATISTICS))
    if resample is not None and settings.refits > 0:
        gen = _generator(settings.seed, 2 * stream + 1)
        significant = int((corr > null_rho).sum())
        only_mean = set(names) <= {"mean_k"}
        q = min(r, k if only_mean else max(2 * significant, k + 1) + 10)
        folds = settings.folds
        rank, world = (0, 1) if comm is None else (comm.rank, comm.world)
        weights = [  # every rank draws every resample: the same stream
            torch.bincount(torch.randint(folds, (folds,), generator=gen), minlength=folds).to(
                torch.float64
            )
            for _ in range(settings.refits)
        ]
        if test_shard is not None and world > 1:
            mine = _sharded_refit_correlations(weights, resample, ridge, q, test, test_shard)
        else:
            covs = [resample(w) for i, w in enumerate(weights) if i % world == rank]
            mine = refit_correlations(covs, ridge, q, *test) if covs else corr.new_zeros(0, q)
        if world > 1 and test_shard is None:
            spread = corr.new_zeros(settings.refits, q, dtype=torch.float64)
            spread[rank::world] = mine.to(torch.float64)
            mine = comm.all_reduce_(spread)
        fits = spectrum_statistics(mine, k, r, null_rho)
        refits = settings.refits
    values = {
        n: bracket_interval(n, float(estimate[c]), [boot[:, c], fits[:, c]], z)
        for n, c in zip(names, cols, strict=True)
    }
    covers = (
        f"{settings.level:.0%} intervals over {settings.bootstrap} resamples of the test rows"
        + (
            f" and {refits} refits on resamples of {settings.folds} training folds"
            if refits
            else " only (no refits: the error of the fitted directions is not covered)"
        )
    )
    return HeldoutIntervals(values, float(null_rho), refits, settings.bootstrap, covers)
