"""One analysis epoch of a seed pair, every expensive quantity computed once (docs/math.md)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from ._checks import WarningLog, check_labels, check_matrix
from ._linalg import concurrently
from .cca import CCAResult, CovarianceBlocks, cca_from_covariance, covariance_from_moments
from .cka import linear_cka_from_covariance
from .classifier import ClassifierStats, classifier_stats
from .copula import normal_scores_train_test, sharded_normal_scores
from .copula_cca import CopulaCCAResult, copula_cca_from_factors
from .etf import (
    ClassMeans,
    ETFStats,
    NC1Result,
    class_means,
    nc1,
    ncc_loo_accuracy,
    ncc_predict,
    simplex_etf_stats,
)
from .gib import GIBResult, IBRepresentation, InformationCurve, gib_from_cca
from .heldout_gib import (
    HeldoutCorrelations,
    HeldoutGIBResult,
    HeldoutGIBSummary,
    heldout_gib_from_correlations,
    heldout_gib_summary,
    test_variates,
    variate_correlations,
)
from .identifiability import (
    IdentifiabilityResult,
    heldout_from_correlations,
    identifiability_from_cca,
)
from .intervals import (
    STATISTICS,
    HeldoutIntervals,
    IntervalSettings,
    _generator,
    heldout_intervals,
    null_threshold,
)
from .moments import class_centred_moments
from .probe import ProbeResult, fit_logistic_probe
from .shards import Shard, broadcast_result

__all__ = ["COVARIANCE_KINDS", "FEATURES", "SPACES", "PairAnalysis"]

FEATURES = ("raw", "normal", "tk")  # raw Z, its normal scores, T_K
COVARIANCE_KINDS = ("raw", "normal", "copula")  # blocks formed by PairAnalysis.covariances
SPACES = ("raw", "tk")  # where class-mean geometry is measured


class PairAnalysis:
    """Lazy, cached analysis of the features of two members on the train and test splits.

    Args:
        train: ``(Z0_train (N, d0), Z1_train (N, d1))``, row-aligned (same samples).
        test: ``(Z0_test (N_test, d0), Z1_test (N_test, d1))``.
        y_train: ``(N,)``; y_test: ``(N_test,)`` labels in ``[0, num_classes)``.
        num_classes: K. k: dimension of T_K and number of leading ρ summarised (default K).
        ridge: relative ridge ε of every covariance (CCA and GIB), relative to the within-class
            variance per dimension (docs/math.md §9).
        probe_kwargs: passed to :func:`ncib.analysis.fit_logistic_probe`.
        intervals: how the held-out numbers' null threshold and intervals are measured
            (:class:`ncib.analysis.intervals.IntervalSettings`); None: no threshold (only
            negative held-out correlations count as none), no intervals, no folds.
        classifier: the classifier rows of each member, ``(W0 (K, d0), W1 (K, d1))`` (row k
            scores class k; any float dtype and device), for NC2 of the classifier and NC3
            (:meth:`classifier`); None (the default): the members train no classifier.
        shard: the training split shared over ranks (:class:`ncib.analysis.shards.Shard`):
            ``train`` and ``y_train`` are then this rank's rows ``shard.rows`` only (``test`` and
            ``y_test`` the whole test split, unless ``test_shard``). Every rank computes the same numbers,
            equal to those of one process up to the order of summation (docs/design.md §3a);
            call the same methods in the same order on every rank (they communicate).
        test_shard: the test split shared over the same ranks (needs ``shard``): ``test`` and
            ``y_test`` are then this rank's test rows ``test_shard.rows`` only. Sums over test
            rows are all-reduced, the null threshold's permutations and the bootstrap are
            those of the whole split, and every refit's directions are broadcast to the ranks
            that project their test rows on them; no rank holds more than its rows of either
            split (docs/design.md §3a). None: every rank holds the whole test split.

    Everything is computed on first request and cached: normal scores per member (train, and
    test scored against train), covariance blocks (raw, normal; train split), CCA, CKA, GIB of
    each member w.r.t. the other (X = normal scores of m, sharing the normal CCA), T_K, class
    means, probes. ``warnings`` collects the warnings of every computed result.

    Feature kinds (:data:`FEATURES`): ``raw`` (the encoder features Z), ``normal`` (their
    normal scores, the paper's "ranked" features) and ``tk`` (T_K, built from the normal
    scores). Class-mean geometry is measured in the spaces :data:`SPACES` (``raw``, ``tk``).

    The GIB eigenvalues (and so β_i, I(X;Y) and the information curve) are the same whichever
    member is X (λ_i = 1 − ρ_i²); the members differ in the eigenvectors, hence in T_K.
    Held out: :meth:`heldout_gib` and :meth:`heldout_gib_summary` give the GIB with the
    spectrum measured on the test split (:mod:`ncib.analysis.heldout_gib`, free of the
    ``d²/(2N)`` nats of in-sample noise); :meth:`copula_cca` the CCA between a member's raw
    features and its normal scores (:mod:`ncib.analysis.copula_cca`).

    The logged keys are made from these values by :mod:`ncib.metrics.outputs`.
    """

    def __init__(
        self,
        train: Sequence[Tensor],
        test: Sequence[Tensor],
        y_train: Tensor,
        y_test: Tensor,
        num_classes: int,
        k: int | None = None,
        ridge: float = 1e-6,
        probe_kwargs: dict[str, Any] | None = None,
        intervals: IntervalSettings | None = IntervalSettings(),  # noqa: B008 (frozen)
        classifier: Sequence[Tensor] | None = None,
        shard: Shard | None = None,
        test_shard: Shard | None = None,
    ) -> None:
        if len(train) != 2 or len(test) != 2:
            raise ValueError("train and test must each be a pair (member 0, member 1) of features")
        if test_shard is not None and (
            shard is None or (test_shard.rank, test_shard.world) != (shard.rank, shard.world)
        ):
            raise ValueError(
                "test_shard needs shard, over the same comm: the test split is shared only over "
                "the ranks that share the training split"
            )
        if test_shard is not None and len(test_shard.rows) != test[0].shape[0]:
            raise ValueError(
                f"the test shard lists {len(test_shard.rows)} rows but test[0] has "
                f"{test[0].shape[0]}"
            )
        if shard is not None and len(shard.rows) != train[0].shape[0]:
            raise ValueError(
                f"the shard lists {len(shard.rows)} rows but train[0] has {train[0].shape[0]}"
            )
        if (
            shard is not None
            and shard.world == 1
            and not torch.equal(shard.rows.cpu(), torch.arange(shard.total))
        ):  # one process analyses the rows in the order given: its folds follow it
            raise ValueError("a shard of one process must list rows 0..N-1 in order")
        if (
            test_shard is not None
            and test_shard.world == 1
            and not torch.equal(test_shard.rows.cpu(), torch.arange(test_shard.total))
        ):
            raise ValueError("a test shard of one process must list rows 0..N_test-1 in order")
        self.shard = shard if shard is not None and shard.world > 1 else None
        self.test_shard = test_shard if self.shard is not None else None
        self.num_train = train[0].shape[0] if shard is None else int(shard.total)
        self.num_test = test[0].shape[0] if self.test_shard is None else int(test_shard.total)
        for m in range(2):
            check_matrix(f"train[{m}]", train[m], min_rows=2 if self.shard is None else 0)
            check_matrix(f"test[{m}]", test[m], min_rows=2 if self.test_shard is None else 0)
            if test[m].shape[1] != train[m].shape[1]:
                raise ValueError(
                    f"member {m}: test features have {test[m].shape[1]} columns, train {train[m].shape[1]}"
                )
        if train[0].shape[0] != train[1].shape[0] or test[0].shape[0] != test[1].shape[0]:
            raise ValueError(
                "the two members' features must be row-aligned (same samples per split)"
            )
        device = train[0].device
        self.y_train = check_labels("y_train", y_train, train[0].shape[0], num_classes).to(device)
        self.y_test = check_labels("y_test", y_test, test[0].shape[0], num_classes).to(device)
        r = min(train[0].shape[1], train[1].shape[1])
        k = num_classes if k is None else k
        if isinstance(k, bool) or int(k) != k or not 1 <= k <= r:
            raise ValueError(
                f"k={k} is out of range: need 1 <= k <= min(d0, d1) = {r} (k defaults to "
                f"num_classes={num_classes}; features with fewer dimensions cannot hold T_K)"
            )
        self.raw = {"train": tuple(train), "test": tuple(test)}
        self.classifier_rows = _classifier_rows(classifier, train, num_classes)
        self.num_classes, self.k, self.ridge = int(num_classes), int(k), float(ridge)
        self.probe_kwargs = dict(probe_kwargs or {})
        self.intervals_settings = intervals
        self._cache: dict[tuple, Any] = {}
        self._dealt = 0  # decompositions dealt out so far (_together)
        log = WarningLog("PairAnalysis")
        for split, y in (("train", self.y_train), ("test", self.y_test)):
            counts = torch.bincount(y, minlength=self.num_classes).to(torch.float64)
            split_shard = self.shard if split == "train" else self.test_shard
            if split_shard is not None:
                split_shard.sum_(counts)
            absent = int((counts == 0).sum())
            if absent:
                log.warn(
                    f"{absent} of {self.num_classes} classes have no samples in the {split} split"
                )
        self.warnings: list[str] = list(log.as_tuple())

    # -- caching -------------------------------------------------------------------------
    def _get(self, key: tuple, compute: Callable[[], Any]) -> Any:
        if key not in self._cache:
            value = compute()
            self.note_warnings(getattr(value, "warnings", ()))
            self._cache[key] = value
        return self._cache[key]

    def note_warnings(self, warnings: Sequence[str]) -> None:
        """Add the warnings of a result computed outside the cache (each once, in order)."""
        for w in warnings:
            if w not in self.warnings:
                self.warnings.append(w)

    def _together(
        self,
        items: Sequence[tuple[tuple, Callable[[], Any]]],
        communicates: bool = False,
        spread: type | None = None,
    ) -> None:
        """Compute the missing ``(key, compute)`` items side by side, one thread each
        (:func:`ncib.analysis._linalg.concurrently`: independent jobs such as the two members'
        decompositions keep both CPU cores busy without synchronising them at every step), in
        the order given. Each job must already have what it depends on in the cache. Jobs that
        ``communicates`` (collectives of a sharded analysis) run one after the other, so that
        every rank issues its collectives in the same order. In a sharded analysis, jobs whose
        results are of the dataclass ``spread`` (a d×d decomposition and its small results)
        are dealt out instead, in turn over the ranks across calls (the n-th such job of the
        analysis to rank n mod R), and each result is broadcast
        (:func:`ncib.analysis.shards.broadcast_result`), so no rank repeats another's."""
        missing = [(key, fn) for key, fn in items if key not in self._cache]
        if spread is not None and self.shard is not None:
            comm = self.shard.comm
            owners = [(self._dealt + i) % comm.world for i in range(len(missing))]
            self._dealt += len(missing)
            mine = {i: fn() for i, (_, fn) in enumerate(missing) if owners[i] == comm.rank}
            for i, (key, _) in enumerate(missing):
                value = broadcast_result(mine.get(i), spread, owners[i], comm, self.y_train.device)
                self._get(key, lambda v=value: v)
            return
        if communicates and self.shard is not None:
            values = [fn() for _, fn in missing]
        else:
            values = concurrently([fn for _, fn in missing], self.y_train.device)
        for (key, _), value in zip(missing, values, strict=True):
            self._get(key, lambda v=value: v)

    def normal(self, m: int) -> tuple[Tensor, Tensor]:
        """Normal scores of member m: ``(train (N, d), test (N_test, d))``, test scored against
        train. Both members' are computed together (side by side on a multi-core CPU)."""
        _check_member(m)

        def scores(i: int) -> tuple[Tensor, Tensor]:
            train, test = self.raw["train"][i], self.raw["test"][i]
            if self.shard is None:
                return normal_scores_train_test(train, test)
            return sharded_normal_scores(train, test, self.shard, self.test_shard)

        self._together(
            [(("normal", i), lambda i=i: scores(i)) for i in range(2)], communicates=True
        )
        return self._cache[("normal", m)]

    def fraction(self, mask: Tensor, split: str) -> float:
        """The fraction of True in ``mask``, a boolean per row of ``split`` this rank holds
        (counted over all ranks when that split is sharded)."""
        if split not in ("train", "test"):
            raise ValueError(f"unknown split {split!r}; expected 'train' or 'test'")
        hits = mask.sum(dtype=torch.float64)
        split_shard = self.shard if split == "train" else self.test_shard
        if split_shard is None:
            return float(hits / mask.numel())
        return float(split_shard.sum_(hits.reshape(1))[0] / split_shard.total)

    def features(self, kind: str, m: int, split: str) -> Tensor:
        """Features of member m: kind ∈ raw, normal, tk; split ∈ train, test."""
        _check_member(m)
        if split not in ("train", "test"):
            raise ValueError(f"unknown split {split!r}; expected 'train' or 'test'")
        if kind == "raw":
            return self.raw[split][m]
        if kind == "normal":
            return self.normal(m)[split == "test"]
        if kind == "tk":
            rep = self.tk(m)
            return (
                rep.features
                if split == "train"
                else self._get(("tk_test", m), lambda: rep.transform(self.normal(m)[1]))
            )
        raise ValueError(f"unknown feature kind {kind!r}; expected one of {FEATURES}")

    def covariances(self, kinds: Sequence[str] = COVARIANCE_KINDS) -> None:
        """Form the training-split covariance blocks of several kinds in one pass over the
        features (those not already formed); :meth:`covariance` and :meth:`copula_cca` then
        use them.

        Kinds: ``raw`` and ``normal`` (the blocks of (m0, m1): Σ_00, Σ_11, Σ_01) and
        ``copula`` (each member's raw features against its own normal scores, Σ_zg; the
        diagonal blocks are those of raw and normal). Each block is bit-identical to the one a
        separate pass forms (:func:`ncib.analysis._linalg.covariance_blocks`); one pass saves
        the centring of the chunks of every matrix per extra pass. Without this call each kind
        is formed by its own pass when first needed; a caller that knows it will need several
        (``identifiability`` needs all three) saves by asking for them together.
        """
        unknown = [k for k in kinds if k not in COVARIANCE_KINDS]
        if unknown:
            raise ValueError(f"unknown covariance kind(s) {unknown}; expected {COVARIANCE_KINDS}")
        missing = [k for k in dict.fromkeys(kinds) if ("cov", k) not in self._cache]
        if not missing:
            return
        mats: list[Tensor] = []
        slots: dict[tuple[str, int], int] = {}

        def slot(kind: str, m: int) -> int:
            if (kind, m) not in slots:
                slots[(kind, m)] = len(mats)
                mats.append(self.features(kind, m, "train"))
            return slots[(kind, m)]

        pairs: list[tuple[int, int]] = []
        for kind in missing:
            if kind == "copula":
                pairs += [(slot("raw", m), slot("normal", m)) for m in range(2)]
            else:
                a, b = slot(kind, 0), slot(kind, 1)
                pairs += [(a, a), (b, b), (a, b)]
        settings = self.intervals_settings
        folds = settings.folds if settings is not None else 1
        fold_pairs = [p for kind in missing if kind != "copula" for p in _kind_pairs(kind, slots)]
        sums = class_centred_moments(
            mats, pairs, self.y_train, self.num_classes, folds, fold_pairs, self.shard
        )
        means, blocks, within = sums.moments()
        for kind in missing:
            if kind == "copula":
                value: Any = tuple(
                    blocks[(slots[("raw", m)], slots[("normal", m)])] for m in range(2)
                )
            else:
                a, b = slots[(kind, 0)], slots[(kind, 1)]
                value = _blocks(mats, a, b, means, blocks, within, sums.resolution, self.num_train)
                self._cache[("sums", kind)] = (sums, mats, a, b)
            self._get(("cov", kind), lambda v=value: v)

    def covariance(self, kind: str) -> CovarianceBlocks:
        """Covariance blocks of (m0, m1) on the training split, kind ∈ raw, normal."""
        if kind not in ("raw", "normal"):
            raise ValueError(
                f"unknown feature kind {kind!r} for covariance; expected raw or normal"
            )
        self.covariances((kind,))
        return self._cache[("cov", kind)]

    def cca(self, kind: str) -> CCAResult:
        """CCA of (m0, m1) on the training split, kind ∈ raw, normal. When the covariance
        blocks of both kinds are already formed (:meth:`covariances`), both CCAs are computed
        together, side by side on a multi-core CPU."""
        kinds = [kind]
        self.covariance(kind)  # validates kind
        if ("cov", "raw") in self._cache and ("cov", "normal") in self._cache:
            kinds = ["raw", "normal"]
        covs = {k: self.covariance(k) for k in kinds}
        self._together(
            [(("cca", k), lambda k=k: cca_from_covariance(covs[k], self.ridge)) for k in kinds],
            spread=CCAResult,
        )
        return self._cache[("cca", kind)]

    def cka(self, kind: str) -> Tensor:
        """Linear CKA of (m0, m1) on the training split, kind ∈ raw, normal (0-dim)."""
        return self._get(("cka", kind), lambda: linear_cka_from_covariance(self.covariance(kind)))

    def identifiability(self, kind: str) -> IdentifiabilityResult:
        """Summary of the k leading in-sample canonical correlations."""
        return self._get(("ident", kind), lambda: identifiability_from_cca(self.cca(kind), self.k))

    def heldout(self, kind: str) -> IdentifiabilityResult:
        """The k leading correlations on the test split, directions fitted on train."""
        return self._get(
            ("heldout", kind),
            lambda: heldout_from_correlations(
                self.cca(kind), self.heldout_correlations(kind).corr, self.k
            ),
        )

    def test_variates(self, kind: str) -> tuple[Tensor, Tensor]:
        """The centred test variates ``((N_t, r), (N_t, r))`` of all r pairs of :meth:`cca`,
        rows centred by test class first (collapse-proof products)."""
        return self._get(
            ("variates", kind),
            lambda: test_variates(
                self.cca(kind),
                *(self.features(kind, m, "test") for m in range(2)),
                self.y_test,
                shard=self.test_shard,
            ),
        )

    def gib(self, m: int) -> GIBResult:
        """GIB compressing the normal scores of member m with respect to the other member's
        (both members' together: side by side, or on two ranks of a sharded analysis)."""
        _check_member(m)
        cca = self.cca("normal")
        self._together(
            [
                (("gib", i), lambda i=i: gib_from_cca(cca if i == 0 else cca.swapped()))
                for i in range(2)
            ],
            spread=GIBResult,
        )
        return self._cache[("gib", m)]

    def heldout_correlations(self, kind: str = "normal") -> HeldoutCorrelations:
        """Test-split correlations of all r pairs of canonical variates of :meth:`cca` (kind ∈
        raw, normal; directions and means from train)."""

        def compute() -> HeldoutCorrelations:
            sa, sb = self.test_variates(kind)
            log = WarningLog("heldout_gib")
            log.extend(self.cca(kind).warnings)
            return HeldoutCorrelations(
                variate_correlations(sa, sb, log, self.test_shard), self.num_test, log.as_tuple()
            )

        return self._get(("heldout_corr", kind), compute)

    def null_rho(self, kind: str = "normal") -> float:
        """The null threshold of held-out correlations of kind (``intervals.permutations``
        permutations of member 1's test rows; 0 without interval settings)."""
        settings = self.intervals_settings
        if settings is None:
            return 0.0

        def compute() -> float:
            gen = _generator(settings.seed, 100 + FEATURES.index(kind))
            return null_threshold(
                *self.test_variates(kind),
                settings.permutations,
                settings.null_level,
                gen,
                self.test_shard,
            )

        return self._get(("null_rho", kind), compute)

    def intervals(self, kind: str = "normal") -> HeldoutIntervals:
        """Intervals of the held-out numbers of kind (raw: the mean of the k leading held-out
        correlations; normal: every statistic of ``ncib.analysis.intervals.STATISTICS``).
        Needs interval settings."""
        settings = self.intervals_settings
        if settings is None:
            raise ValueError("this PairAnalysis has intervals=None: no intervals to give")
        if kind not in ("raw", "normal"):
            raise ValueError(f"unknown feature kind {kind!r} for intervals; expected raw or normal")

        def compute() -> HeldoutIntervals:
            self.covariance(kind)
            sums, mats, a, b = self._cache[("sums", kind)]

            def resample(weights: Tensor) -> CovarianceBlocks:
                means, blocks, within = sums.moments(weights)
                return _blocks(mats, a, b, means, blocks, within, sums.resolution, self.num_train)

            test = (*(self.features(kind, m, "test") for m in range(2)), self.y_test)
            names = STATISTICS if kind == "normal" else ("mean_k",)
            return heldout_intervals(
                self.heldout_correlations(kind).corr,
                self.test_variates(kind),
                resample,
                test,
                self.ridge,
                self.k,
                self.null_rho(kind) if kind == "normal" else 0.0,  # raw: mean_k needs none
                settings,
                names,
                stream=FEATURES.index(kind),
                comm=None if self.shard is None else self.shard.comm,  # refits dealt out
                test_shard=self.test_shard,
            )

        return self._get(("intervals", kind), compute)

    def heldout_gib(self, m: int = 0) -> HeldoutGIBResult:
        """Held-out GIB of member m's normal scores w.r.t. the other's: the normal CCA fitted
        on train, its spectrum measured on test (``lam``, ``rho``, ``beta_crit``, ``mi_xy`` are
        the same for both members; the directions ``gib.v`` are member m's)."""
        _check_member(m)
        return self._get(
            ("heldout_gib", m),
            lambda: heldout_gib_from_correlations(
                self.cca("normal") if m == 0 else self.cca("normal").swapped(),
                self.heldout_correlations("normal"),
                self.gib(m).r,  # the in-sample GIB shares the directions
                self.null_rho("normal"),
            ),
        )

    def heldout_gib_summary(self) -> HeldoutGIBSummary:
        """Held-out I(X;Y), β̃_K, β̃_{K+1}, the β of T_K, I(T_K;X), I(T_K;Y), their ratio to
        I(X;Y), and the held-out spectrum (same for both members)."""
        return self._get(
            ("heldout_gib_summary",), lambda: heldout_gib_summary(self.heldout_gib(0), self.k)
        )

    def copula_cca(self, m: int) -> CopulaCCAResult:
        """CCA between member m's raw features and its normal scores (training split): the
        spectrum and the means of the k leading and of all ρ. Reuses the raw and normal
        covariance blocks and the Cholesky factors of their CCAs; the cross blocks Σ_zg of both
        members are formed in one pass (or in the pass of :meth:`covariances`), and only the
        singular values of the whitened cross block are computed."""
        _check_member(m)
        if ("copula_cca", m) in self._cache:
            return self._cache[("copula_cca", m)]
        self.covariances(COVARIANCE_KINDS)  # the cross blocks of both members in one pass
        covs = {kind: self.covariance(kind) for kind in ("raw", "normal")}
        ccas = {kind: self.cca(kind) for kind in ("raw", "normal")}

        def compute(i: int) -> CopulaCCAResult:
            factors = []
            for kind in ("raw", "normal"):  # Σ and its factor: those of the pair's CCA
                cov, cca = covs[kind], ccas[kind]
                factors.append(
                    (cov.cov_aa, cca.chol_a, cca.reg_a, cov.scale_a, cov.resolution_a)
                    if i == 0
                    else (cov.cov_bb, cca.chol_b, cca.reg_b, cov.scale_b, cov.resolution_b)
                )
            cross = self._cache[("cov", "copula")][i]
            return copula_cca_from_factors(cross, factors[0], factors[1], self.k, self.ridge)

        self._together(
            [(("copula_cca", i), lambda i=i: compute(i)) for i in range(2)], spread=CopulaCCAResult
        )
        return self._cache[("copula_cca", m)]

    def tk(self, m: int) -> IBRepresentation:
        """T_K of member m (features on train; ``transform`` maps other normal scores): the
        GIB solution of the **held-out** spectrum (:meth:`heldout_gib`, transitions only above
        the null threshold) at a β just below its (K+1)-th transition, so that in-sample noise
        does not place it (docs/math.md §5.3)."""

        def compute() -> IBRepresentation:
            rep = self.heldout_gib(m).gib.representation(self.k)
            return replace(rep, features=rep.transform(self.normal(m)[0]))

        return self._get(("tk", m), compute)

    def _space(self, space: str) -> str:
        if space not in SPACES:
            raise ValueError(f"unknown space {space!r}; expected one of {SPACES}")
        return space

    def class_means(self, space: str, m: int) -> ClassMeans:
        """Training class means of member m in space ∈ raw (Z), tk (T_K)."""
        return self._get(
            ("means", space, m),
            lambda: class_means(
                self.features(self._space(space), m, "train"),
                self.y_train,
                self.num_classes,
                self.shard,
            ),
        )

    def etf(self, space: str, m: int) -> ETFStats:
        """Simplex-ETF statistics of the training class means."""
        h = self.features(self._space(space), m, "train")
        return self._get(
            ("etf", space, m),
            lambda: simplex_etf_stats(
                h, self.y_train, self.num_classes, self.class_means(space, m)
            ),
        )

    def nc1(self, space: str, m: int) -> NC1Result:
        """NC1 on the training split."""
        h = self.features(self._space(space), m, "train")
        return self._get(
            ("nc1", space, m),
            lambda: nc1(
                h, self.y_train, self.num_classes, self.class_means(space, m), shard=self.shard
            ),
        )

    def ncc(self, space: str, m: int, split: str) -> Tensor:
        """Nearest-class-centre predictions ``(N_split,)`` with centres from the training split."""
        kind = self._space(space)
        return self._get(
            ("ncc", space, m, split),
            lambda: ncc_predict(
                self.features(kind, m, "train"),
                self.y_train,
                self.features(kind, m, split),
                self.num_classes,
                self.class_means(space, m),
            ),
        )

    def ncc_loo_accuracy(self, space: str, m: int) -> Tensor:
        """Leave-one-out nearest-class-centre accuracy on the training split (0-dim): the
        terminal-phase marker's quantity (docs/math.md §8)."""
        kind = self._space(space)
        return self._get(
            ("ncc_loo", space, m),
            lambda: ncc_loo_accuracy(
                self.features(kind, m, "train"),
                self.y_train,
                self.num_classes,
                self.class_means(space, m),
                self.shard,
            ),
        )

    @property
    def has_classifier(self) -> bool:
        """Whether the members' classifier rows were given (``classifier=``)."""
        return self.classifier_rows is not None

    def classifier(self, m: int) -> ClassifierStats:
        """NC2 of member m's classifier rows and NC3 against its training class means in raw Z
        (:func:`ncib.analysis.classifier_stats`). Raises ValueError when no rows were given."""
        _check_member(m)
        if self.classifier_rows is None:
            raise ValueError(
                "this PairAnalysis has no classifier rows (classifier=None): NC2 of the "
                "classifier and NC3 need the members' classifiers (objective=ce or mse)"
            )
        return self._get(
            ("classifier", m),
            lambda: classifier_stats(self.classifier_rows[m], self.class_means("raw", m)),
        )

    def probe(self, kind: str, m: int) -> ProbeResult:
        """Linear probe of member m on kind ∈ raw, normal, tk (train → test). Both members'
        probes of a kind are fitted together (side by side on a multi-core CPU)."""
        _check_member(m)
        if kind not in FEATURES:
            raise ValueError(f"unknown feature kind {kind!r}; expected one of {FEATURES}")
        if ("probe", kind, m) in self._cache:
            return self._cache[("probe", kind, m)]
        args = []
        for i in range(2):  # what the fits need, computed here (not inside the jobs)
            kwargs = dict(self.probe_kwargs)
            if kind in ("raw", "normal"):  # reuse the covariance blocks: no extra pass
                cov = self.covariance(kind)
                kwargs["moments"] = (cov.mean_a, cov.cov_aa) if i == 0 else (cov.mean_b, cov.cov_bb)
            feats = (self.features(kind, i, "train"), self.features(kind, i, "test"))
            args.append((feats, kwargs))

        def compute(i: int) -> ProbeResult:
            (h_train, h_test), kwargs = args[i]
            return fit_logistic_probe(
                h_train,
                self.y_train,
                h_test,
                self.y_test,
                num_classes=self.num_classes,
                shard=self.shard,
                test_shard=self.test_shard,
                **kwargs,
            )

        self._together(
            [(("probe", kind, i), lambda i=i: compute(i)) for i in range(2)], communicates=True
        )
        return self._cache[("probe", kind, m)]

    def information_curve(self, betas: Sequence[float] | Tensor | None = None) -> InformationCurve:
        """I(T;X), I(T;Y) along β (default: 256 log-spaced β in [1, 10·β_{k+1}])."""
        g = self.gib(0)
        if betas is None:  # up to 10× the larger (K+1)-th transition, in-sample or held out
            tops = [
                float(finite[min(self.k, finite.numel() - 1)])
                for crit in (g.beta_crit, self.heldout_gib(0).beta_crit)
                if (finite := crit[torch.isfinite(crit)]).numel()
            ]
            top = max(tops) if tops else 10.0
            betas = torch.logspace(0.0, math.log10(10.0 * max(top, 1.0)), 256, dtype=torch.float64)
        return g.information_curve(betas)


def _kind_pairs(kind: str, slots: dict[tuple[str, int], int]) -> list[tuple[int, int]]:
    a, b = slots[(kind, 0)], slots[(kind, 1)]
    return [(a, a), (b, b), (a, b)]


def _blocks(mats, a, b, means, blocks, within, resolution, n) -> CovarianceBlocks:
    """:class:`CovarianceBlocks` of matrices a, b of a class-centred moment pass: the ridge
    scaled by the within-class variance per dimension, the resolution of each side."""
    return covariance_from_moments(
        mats[a],
        mats[b],
        means[a],
        means[b],
        blocks[(a, a)],
        blocks[(b, b)],
        blocks[(a, b)],
        scales=(within[a] / mats[a].shape[1], within[b] / mats[b].shape[1]),
        resolutions=(resolution[a], resolution[b]),
        n=n,
    )


def _classifier_rows(
    classifier: Sequence[Tensor] | None, train: Sequence[Tensor], num_classes: int
) -> tuple[Tensor, Tensor] | None:
    """The classifier rows of both members, checked against the features and K."""
    if classifier is None:
        return None
    if len(classifier) != 2:
        raise ValueError(
            f"classifier must be a pair (member 0, member 1) of (K, d) rows, got {len(classifier)}"
        )
    for m, w in enumerate(classifier):
        check_matrix(f"classifier[{m}]", w)
        want = (num_classes, train[m].shape[1])
        if tuple(w.shape) != want:
            raise ValueError(
                f"member {m}: classifier rows have shape {tuple(w.shape)}, expected {want} "
                f"(num_classes={num_classes} rows over the member's {want[1]} features)"
            )
    return tuple(classifier)


def _check_member(m: int) -> None:
    if isinstance(m, bool) or m not in (0, 1):
        raise ValueError(f"member m={m!r} is not 0 or 1 (a pair has members 0 and 1)")
