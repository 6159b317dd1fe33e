"""Held-out Gaussian information bottleneck: the GIB spectrum measured on unseen samples.

The in-sample GIB (:mod:`ncib.analysis.gib`) takes ``λ_i = 1 − ρ_i²`` from the canonical
correlations of the very samples the canonical directions were fitted to. Directions along
which X and Y are unrelated still reach ``Σ ρ_i² ≈ d_x·d_y/N`` there, so the in-sample
``I(X;Y) = −½ Σ log λ_i`` carries about ``d²/(2N)`` nats of estimation noise (≈ 40 nats at
d = 2,048, N = 50,000; see ``docs/math.md``, "in-sample vs held-out").

**Estimator.** Fit the CCA on the training split (``W_a``, ``W_b``, training means); on the
``N_t`` test rows form the r pairs of canonical variates ``a_i = (X_test − μ_x) w_{a,i}``,
``b_i = (Y_test − μ_y) w_{b,i}`` and take their Pearson correlations ``c_i`` (re-centred on the
test split). The held-out canonical correlations are

    ρ̃_i = max(c_i, 0),  sorted descending,   λ̃_i = 1 − ρ̃_i²,   β̃_i = 1/(1 − λ̃_i),

and the held-out GIB is the ordinary :class:`~ncib.analysis.gib.GIBResult` built from that
spectrum (``v_i`` = the train-fitted direction of the pair, permuted with the sort), so its
``information_curve``, ``beta_for_k`` and ``representation`` apply unchanged: ``I(X;Y) =
−½ Σ log λ̃_i``, T_K at a β just below ``β̃_{K+1}``.

Why this one:

* Each ``c_i`` is the correlation of a *fixed* pair of linear functions (they do not depend on
  the test rows), so it estimates the population correlation of that pair with the usual
  ``O(1/N_t)`` error and no selection effect. A fitted pair misses the true canonical pair by
  its estimation error, which lowers the correlation of the strong pairs (no pair can exceed
  ``ρ_1``), so the estimate errs low by an attenuation that vanishes as the training split
  grows (−1 to −2 % below) instead of being inflated by ``d²/(2N)``.
* Sign: the training fit orients each pair so that its correlation is positive. A negative test
  correlation says that the pairing does not generalise; counting ``c_i²`` would score it as
  information. Clamping at 0 (λ̃ = 1, β̃ = ∞: "no transition") also halves the bias of the
  pure-noise directions: ``c_i ~ N(0, 1/N_t)`` gives ``E[c_i²] = 1/N_t`` but
  ``E[max(c_i, 0)²] = 1/(2N_t)``, i.e. about ``(r − K)/(4 N_t)`` nats in all (0.05 nats at
  d = 2,048, N_t = 10,000; 0.03 nats measured at d = 512, N_t = 4,000).
* Sorting: the GIB needs the λ ascending; the test correlations of noise pairs come out in no
  particular order, and sorting only reorders pairs (``v`` moves with its ρ̃).

Alternatives measured on the known-answer pair (K = 10 dims at ρ = 0.99 among d, true
I(X;Y) = 19.585 nats; A: d = 512, N = 20,000 train / 4,000 test, mean of 3 seeds; B: d = 2,048,
N = 50,000 / 10,000, one seed; ``tests/analysis/test_heldout_gib.py`` checks the chosen one):

    ========================================  ===============  ===============
    estimator of I(X;Y)                       A                B
    ========================================  ===============  ===============
    in-sample                                 26.27  (+34 %)   63.34  (+223 %)
    test ``c_i²`` (sign ignored)              19.38  (−1.1 %)  19.30  (−1.5 %)
    test ``max(c_i, 0)²`` (this module)       19.35  (−1.2 %)  19.25  (−1.7 %)
    … minus the null ``(1−c²)/(N_t−2)``       19.33  (−1.3 %)  19.22  (−1.9 %)
    two-fold swap (fit on test too, average)  18.73  (−4.4 %)  18.12  (−7.5 %)
    two-fold on pooled equal halves           19.14  (−2.3 %)  18.88  (−3.6 %)
    ridge 1e-3 / 1e-2 / 1e-1 (seed 0)         19.28 / 19.28 / 19.18
    in-sample − Wilks null ``E[−½ log Λ]``    19.55  (−0.2 %)  19.59  (0.0 %)
    ========================================  ===============  ===============

With no planted signal (truth 0, case A) the first six rows give 6.72, 0.062, 0.034, 0.017,
0.020 and 0.011 nats. The remaining error is the attenuation of the strong pairs by the
direction error, which shrinks as N grows; the pure-noise bias is already negligible, so
subtracting a null expectation per pair (which also turns ρ̃ into something that is no longer
a correlation) buys nothing. Cross-fitting fits one fold on fewer samples, so its directions
are worse and its attenuation larger (the swap fits on the 5× smaller test split), and it costs
a second CCA. A larger ridge only helps when Σ is ill-conditioned and here lowers the
estimate. Subtracting from the in-sample I(X;Y) its expectation under independent Gaussian
white noise (Wilks' Λ with ``p = d_x``, ``q = d_y``) is the most accurate figure on this
synthetic pair, but it yields no spectrum (no β_K, no T_K), and it holds only for that null:
with real features the number of directions that carry noise (above the ridge, not already
signal) is unknown. The held-out spectrum assumes nothing beyond independent train and test
samples.

Only the r diagonal pairs are used: a CCA of all r train-fitted variates *on the test split*
would be an in-sample fit again, with ``r²/(2N_t)`` nats of noise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ._checks import WarningLog
from ._linalg import no_tf32, row_chunks, work_dtype
from .cca import CCAResult, canonical_correlations, check_test_split
from .gib import GIBResult, InformationCurve
from .shards import Shard

__all__ = [
    "HeldoutCorrelations",
    "HeldoutGIBResult",
    "HeldoutGIBSummary",
    "heldout_correlations",
    "heldout_gaussian_ib",
    "heldout_gib_from_cca",
    "heldout_gib_from_correlations",
    "heldout_gib_summary",
    "project_variates",
    "test_variates",
    "variate_correlations",
]


@dataclass(frozen=True)
class HeldoutCorrelations:
    """Test-split Pearson correlations of all r pairs of train-fitted canonical variates.

    Attributes:
        corr: ``(r,)`` signed correlations ``c_i`` in the order of the training fit (pair i =
            column i of ``directions_a`` / ``directions_b``), float64.
        n_test: number of test rows N_t.
        warnings: diagnostics of the fit and of the evaluation.
    """

    corr: Tensor
    n_test: int
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class HeldoutGIBResult:
    """The GIB of X w.r.t. Y from the held-out spectrum (see the module docstring), float64.

    Attributes:
        gib: a :class:`GIBResult` with ``lam = 1 − ρ̃²`` ascending, ``v`` the train-fitted
            directions of X in the same order, ``r_i = v_iᵀ Σ_x v_i`` (training Σ_x, regularised),
            ``mean_x`` the training mean; its ``information_curve``, ``beta_for_k`` and
            ``representation`` are the held-out ones.
        rho: ``(r,)`` held-out canonical correlations ``ρ̃ = max(c, 0)``, descending.
        order: ``(r,)`` int64, the training-fit index of each entry of ``rho``
            (``rho = clamp(corr[order], 0)``).
        corr: ``(r,)`` signed test correlations, training order (as in
            :class:`HeldoutCorrelations`).
        rho_train: ``(r,)`` the in-sample canonical correlations of the fit, descending.
        n_test: N_t.
        warnings: diagnostics (those of the fit, the evaluation and the GIB).
        null_rho: the threshold below which a correlation counted as none (0: only negative
            ones did).
    """

    gib: GIBResult
    rho: Tensor
    order: Tensor
    corr: Tensor
    rho_train: Tensor
    n_test: int
    warnings: tuple[str, ...] = ()
    null_rho: float = 0.0

    @property
    def lam(self) -> Tensor:
        """``(r,)`` held-out ``λ̃_i = 1 − ρ̃_i²``, ascending (clamped to [eps, 1])."""
        return self.gib.lam

    @property
    def beta_crit(self) -> Tensor:
        """``(r,)`` held-out critical ``β̃_i = 1/(1 − λ̃_i)``, ascending (inf where ρ̃_i = 0)."""
        return self.gib.beta_crit

    @property
    def mi_xy(self) -> Tensor:
        """Held-out ``I(X;Y) = −½ Σ log λ̃_i`` (nats), 0-dim."""
        return self.gib.mutual_information()

    def information_curve(self, betas: float | Sequence[float] | Tensor) -> InformationCurve:
        """:meth:`GIBResult.information_curve` of the held-out spectrum."""
        return self.gib.information_curve(betas)

    def beta_for_k(self, k: int) -> tuple[float, tuple[str, ...]]:
        """:meth:`GIBResult.beta_for_k` of the held-out spectrum."""
        return self.gib.beta_for_k(k)


@dataclass(frozen=True)
class HeldoutGIBSummary:
    """The held-out GIB numbers at dimension k (plain floats; inf where no transition).

    Attributes:
        k: dimension of T_K.
        mi_xy: held-out I(X;Y) (nats); mi_xy_in_sample: the in-sample one of the same fit.
        beta_k, beta_k_next: held-out β̃_k and β̃_{k+1} (inf when there is none).
        beta_tk: the β of T_K (just below β̃_{k+1}, :meth:`GIBResult.beta_for_k`).
        i_tx_tk, i_ty_tk: I(T;X), I(T;Y) there; i_ty_frac_tk: I(T;Y)/I(X;Y) (0 if I(X;Y) = 0).
        rho, lam, beta_crit: the held-out spectrum ``(r,)`` as lists (ρ̃ descending).
        warnings: those of the result and of the choice of β.
    """

    k: int
    mi_xy: float
    mi_xy_in_sample: float
    beta_k: float
    beta_k_next: float
    beta_tk: float
    i_tx_tk: float
    i_ty_tk: float
    i_ty_frac_tk: float
    rho: list[float]
    lam: list[float]
    beta_crit: list[float]
    warnings: tuple[str, ...] = ()


def test_variates(
    cca: CCAResult,
    a_test: Tensor,
    b_test: Tensor,
    labels: Tensor | None = None,
    columns: int | None = None,
    shard: Shard | None = None,
) -> tuple[Tensor, Tensor]:
    """The first ``columns`` (default all r) pairs of canonical variates of ``cca`` on the
    test rows, ``((N_t, q), (N_t, q))`` float64, each re-centred on the test split.

    ``(X_test − μ) W`` is a product in the working dtype (float32 unless the input is float64).
    With ``labels (N_t,)`` each row is first centred by its test class mean ``s_y``
    (``(X − μ) W = (X − s_y) W + (s_y − μ) W``, the second term in float64): near neural
    collapse the rows are class means of norm ~10 plus a scatter 10⁻³ as large, and the
    within-class canonical directions have weights ~10³, so a float32 product of uncentred
    rows would be mostly rounding (docs/math.md §9). Without labels the test column means are
    the shift (as before).

    ``shard``: the test split shared over ranks (:class:`ncib.analysis.shards.Shard`): the rows
    given are this rank's, the class means and the re-centring are over all ranks' rows, and
    the variates returned are this rank's rows."""
    check_test_split(cca, a_test, b_test, min_rows=2 if shard is None else 0)
    q = cca.directions_a.shape[1] if columns is None else int(columns)
    return project_variates(
        (a_test, b_test),
        (cca.directions_a[:, :q], cca.directions_b[:, :q]),
        (cca.mean_a, cca.mean_b),
        labels,
        shard,
    )


def project_variates(
    tests: Sequence[Tensor],
    directions: Sequence[Tensor],
    means: Sequence[Tensor],
    labels: Tensor | None = None,
    shard: Shard | None = None,
) -> tuple[Tensor, Tensor]:
    """:func:`test_variates` from the directions ``(d_m, q)`` and training means ``(d_m,)`` of
    both sides (the fit's, or a refit's broadcast to every rank)."""
    f64 = torch.float64
    out = []
    with no_tf32():
        for x, w, mu in zip(tests, directions, means, strict=True):
            dt = work_dtype(x)
            n_here = x.shape[0]
            if labels is None:
                group = torch.zeros(n_here, dtype=torch.long, device=x.device)
            else:
                group = labels.to(x.device)
            groups = _groups(group, shard)
            sums = torch.zeros(groups, x.shape[1], dtype=f64, device=x.device)
            for sl in row_chunks(n_here, x.shape[1]):
                sums.index_add_(0, group[sl], x[sl].to(f64))
            count = torch.bincount(group, minlength=groups).to(f64)
            if shard is not None:  # the test class means of all ranks' rows
                shard.sum_(sums)
                shard.sum_(count)
            n = n_here if shard is None else shard.total
            shift = (sums / count.clamp_min(1.0)[:, None]).to(dt)
            offset = (shift.to(f64) - mu.to(f64)) @ w.to(f64)  # (groups, q): (s_g − μ) W
            offset -= (count / n) @ offset  # centred: exactly 0 for one group
            w_dt = w.to(dt)
            s = torch.empty(n_here, w.shape[1], dtype=f64, device=x.device)
            for sl in row_chunks(n_here, x.shape[1] + w.shape[1]):
                s[sl] = ((x[sl].to(dt) - shift.index_select(0, group[sl])) @ w_dt).to(f64)
            if shard is None:
                s -= s.mean(0)
            else:
                s -= shard.sum_(s.sum(0)) / n
            for sl in row_chunks(n_here, w.shape[1]):
                s[sl] += offset.index_select(0, group[sl])
            out.append(s)
    return out[0], out[1]


def _groups(group: Tensor, shard: Shard | None) -> int:
    """The number of row groups (1 + the largest label), over all ranks of a shard."""
    here = int(group.max()) + 1 if group.numel() else 0
    if shard is None:
        return here
    each = torch.zeros(shard.world, dtype=torch.float64)
    each[shard.rank] = here
    return int(shard.sum_(each).max())


def variate_correlations(
    sa: Tensor, sb: Tensor, log: WarningLog, shard: Shard | None = None
) -> Tensor:
    """``(q,)`` Pearson correlations of the columns of centred variates ``sa``, ``sb``
    ``(N_t, q)``; a constant variate gets 0 (warning on ``log``). ``shard``: the rows are this
    rank's of a test split shared over ranks; the sums are over all ranks."""
    sums = torch.stack([sa.square().sum(0), sb.square().sum(0), (sa * sb).sum(0)])
    if shard is not None:
        shard.sum_(sums)
    var_a, var_b, cross = sums
    denom = (var_a * var_b).sqrt()
    tiny = torch.finfo(torch.float64).tiny
    flat = denom <= tiny
    if bool(flat.any()):
        log.warn(
            f"{int(flat.sum())} of {sa.shape[1]} canonical variates are constant on the test "
            "split; their held-out correlation is taken as 0"
        )
    corr = torch.where(flat, 0.0, cross / denom.clamp_min(tiny))
    return corr.clamp(-1.0, 1.0)


def heldout_correlations(
    cca: CCAResult, a_test: Tensor, b_test: Tensor, labels: Tensor | None = None
) -> HeldoutCorrelations:
    """Pearson correlations on the test split of all r pairs of canonical variates of ``cca``.

    ``c_i = corr_test((A_test − μ_a) w_{a,i}, (B_test − μ_b) w_{b,i})`` for i < r, with
    ``W_a, W_b, μ`` from the training fit and the correlation re-centred on the test rows.

    Args:
        cca: a fit on the training split.
        a_test: ``(N_t, d_a)``; b_test: ``(N_t, d_b)``, row-aligned.
        labels: ``(N_t,)`` test labels: rows centred by class first (:func:`test_variates`).
    """
    with no_tf32():
        log = WarningLog("heldout_gib")
        log.extend(cca.warnings)
        sa, sb = test_variates(cca, a_test, b_test, labels)
        return HeldoutCorrelations(variate_correlations(sa, sb, log), sa.shape[0], log.as_tuple())


def heldout_gib_from_correlations(
    cca: CCAResult,
    held: HeldoutCorrelations,
    r_train: Tensor | None = None,
    null_rho: float = 0.0,
) -> HeldoutGIBResult:
    """Held-out GIB of X = the "a" side of ``cca`` w.r.t. Y = the "b" side from precomputed
    test correlations (use ``cca.swapped()`` with the same ``held`` for the other member: the
    correlation of a pair is symmetric, so both members share ρ̃, λ̃, β̃ and I(X;Y)).

    Args:
        cca: the training fit; held: :func:`heldout_correlations` of that fit.
        r_train: ``(r,)`` ``r_i = w_iᵀ Σ_x w_i`` in training order, i.e. ``gib_from_cca(cca).r``
            when that is at hand (saves a ``d_x²·r`` product); computed when None.
        null_rho: correlations at or below it count as none (ρ̃ = 0, λ̃ = 1, no transition):
            the null threshold of :func:`ncib.analysis.intervals.null_threshold`.
    """
    with no_tf32():
        r = cca.directions_a.shape[1]
        if held.corr.shape != (r,):
            raise ValueError(
                f"held-out correlations have shape {tuple(held.corr.shape)} but the CCA has r={r} "
                "pairs of canonical variates"
            )
        if r_train is not None and r_train.shape != (r,):
            raise ValueError(f"r_train has shape {tuple(r_train.shape)}, expected ({r},)")
        log = WarningLog("heldout_gib")
        log.extend(held.warnings)
        corr = held.corr.to(torch.float64)
        clamped = torch.where(corr > null_rho, corr, 0.0).clamp(0.0, 1.0)
        rho, order = torch.sort(clamped, descending=True, stable=True)
        lam = (1.0 - rho) * (1.0 + rho)
        eps = torch.finfo(torch.float64).eps
        if bool((lam < eps).any()):
            log.warn(
                f"{int((lam < eps).sum())} held-out GIB eigenvalues below {eps:.1e} (X and Y almost "
                "deterministically related on the test split) clamped so that the logs stay finite"
            )
        lam = lam.clamp(eps, 1.0)
        v = cca.directions_a[:, order]
        if r_train is None:
            r_i = (cca.chol_a.T @ v).square().sum(0)  # v_iᵀ (L Lᵀ) v_i, 1 up to rounding
        else:
            r_i = r_train.to(torch.float64)[order]
        beta_crit = 1.0 / (1.0 - lam)  # inf where ρ̃ = 0
        gib = GIBResult(lam, v, r_i, beta_crit, cca.mean_a, log.as_tuple())
        return HeldoutGIBResult(
            gib, rho, order, held.corr, cca.rho, held.n_test, log.as_tuple(), float(null_rho)
        )


def heldout_gib_from_cca(cca: CCAResult, x_test: Tensor, y_test: Tensor) -> HeldoutGIBResult:
    """Held-out GIB of X w.r.t. Y: ``cca`` fitted on the training split (X = its "a" side),
    ``x_test (N_t, d_x)``, ``y_test (N_t, d_y)`` the test rows."""
    return heldout_gib_from_correlations(cca, heldout_correlations(cca, x_test, y_test))


def heldout_gaussian_ib(
    x_train: Tensor,
    y_train: Tensor,
    x_test: Tensor,
    y_test: Tensor,
    ridge: float = 1e-6,
    labels: tuple[Tensor, Tensor] | None = None,
    null_rho: float = 0.0,
) -> HeldoutGIBResult:
    """Fit the CCA of ``x_train (N, d_x)``, ``y_train (N, d_y)`` and measure the GIB spectrum on
    ``x_test (N_t, d_x)``, ``y_test (N_t, d_y)`` (see the module docstring). ``labels``:
    ``(train (N,), test (N_t,))`` class labels for class-centred products (docs/math.md §9);
    ``null_rho``: as in :func:`heldout_gib_from_correlations`."""
    train_labels, test_labels = labels if labels is not None else (None, None)
    cca = canonical_correlations(x_train, y_train, ridge, train_labels)
    held = heldout_correlations(cca, x_test, y_test, test_labels)
    return heldout_gib_from_correlations(cca, held, null_rho=null_rho)


def heldout_gib_summary(result: HeldoutGIBResult, k: int) -> HeldoutGIBSummary:
    """β̃_k, β̃_{k+1}, the β of T_K and ``I(T_K;Y)/I(X;Y)`` of a held-out GIB (as in-sample:
    T_K at a β just below β̃_{k+1}, :meth:`GIBResult.beta_for_k`).

    Raises:
        ValueError: if k is not an integer in ``[1, r]``.
    """
    beta, notes = result.beta_for_k(k)  # validates k
    curve = result.information_curve(beta)
    crit = result.beta_crit
    i_xy = float(curve.i_xy)
    i_ty = float(curve.i_ty[0])
    eps = torch.finfo(torch.float64).eps
    lam_in = ((1.0 - result.rho_train) * (1.0 + result.rho_train)).clamp(eps, 1.0)
    in_sample = -0.5 * lam_in.log().sum()  # as GIBResult.mutual_information of the fit
    return HeldoutGIBSummary(
        k=int(k),
        mi_xy=i_xy,
        mi_xy_in_sample=float(in_sample),
        beta_k=float(crit[k - 1]),
        beta_k_next=float(crit[k]) if k < crit.shape[0] else math.inf,
        beta_tk=float(beta),
        i_tx_tk=float(curve.i_tx[0]),
        i_ty_tk=i_ty,
        i_ty_frac_tk=i_ty / i_xy if i_xy > 0 else 0.0,
        rho=result.rho.tolist(),
        lam=result.lam.tolist(),
        beta_crit=crit.tolist(),
        warnings=tuple(dict.fromkeys((*result.warnings, *notes))),  # in order, once each
    )
