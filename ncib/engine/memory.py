"""The memory one rank needs for the per-epoch analysis, and the check made before training.

A pure model of what a rank holds during a sharded :class:`~ncib.analysis.PairAnalysis`
(:mod:`ncib.analysis.shards`; docs/design.md §3b tables it at the ImageNet32 shape), and
:func:`check_analysis_memory`, which the run calls before the first step
(:class:`ncib.callbacks.AnalysisMemoryCheck`): it refuses a run whose analysis would not fit,
saying what it needs, what there is, and what to set. Imports no Lightning.

What a rank holds (N training rows and N_t test rows, each split sharded over R ranks: n = ⌈N/R⌉
and n_t = ⌈N_t/R⌉ of them here; d features, T_K of dimension k, K classes, B folds, S bootstrap
resamples and P permutations of the intervals; w bytes a value in the working dtype of
``analysis.precision``: 4 for float32, 8 for float64; float64 = 8 bytes, int64 = 8):

================================  =============================================================
train features, 2 members         2 · n · d · w
their normal scores               2 · n · d · w
T_K of the shard, 2 members       2 · n · k · w
normal-score pass                 per member: (N + N_t) · ⌈d/R⌉ · w (the column block
                                  transposed for the sort) + 16 · w · max(2²⁰, N + N_t) (the
                                  sort's block workspace: 64 bytes a float32 value); with R > 1
                                  also 2 · (N + N_t) · ⌈d/R⌉ · w (the received column blocks over
                                  all rows of both splits and their concatenation) and
                                  2 · (n + n_t) · d · w (the contiguous blocks sent and the
                                  scores sent back)
test split, 2 members             2 · n_t · (2d + k) · w (raw, normal scores, T_K)
test variates, 2 members         4 · n_t · d · 8 (float64; raw and normal scores kept)
probe                             per member: n · d · w (standardised copy of the shard)
                                  + 2 · n · K · w (logits and their gradient)
probe state                       per member: 90 · d · K · 8 (the L-BFGS history of float64
                                  d × K iterates and what the allocator keeps of them: fitted
                                  to the measured peaks at K = 1,000, d = 2,048)
d × d statistics                  30 · d² · 8 (float64: 19 kept — covariance blocks, both
                                  CCAs, GIB and held-out GIB — and one refit's 11; 19 · d² · 8
                                  without intervals)
per-fold grams                    6 · B · d² · w (accumulated in the working dtype; none
                                  without intervals)
per-fold class sums               4 · B · K · d · 8 (float64, raw and normal scores of both
                                  members; none without intervals)
bootstrap weights                 S · N_t · (8 + 8) (float64 weights and int64 draws over the
                                  whole test split; none without intervals)
null threshold                    with R > 1: n_t · d · 8 (one rank's test variates at a time)
                                  + 3 · P · n_t · 8 (int64 partners, their ranks, positions); none
                                  without intervals
refit directions                  with R > 1: 2 · d² · 8 (one refit's directions broadcast at a
                                  time); none without intervals
workspace                         10 % of the above (row chunks of the covariance pass,
                                  decompositions, the allocator's slack)
CUDA overhead (on a GPU)          10 % of the above (the caching allocator's blocks, cuBLAS and
                                  cuSOLVER workspaces): one H200 at N = 100,000 + 50,000,
                                  d = 2,048, K = 1,000 peaked at 18.1 GiB
                                  (``torch.cuda.max_memory_allocated``) where the parts above
                                  give 18.7 (15.1 before the kept d × d blocks and both kinds'
                                  test variates were counted, when this share was 25 %)
================================  =============================================================

The per-member transients (the normal-score pass and the probe) count twice where both
members are computed side by side: one unsharded process on a multi-core CPU
(:func:`ncib.analysis._linalg.concurrently`); sharded ranks and GPUs compute them one after
the other (``side_by_side``).
The model is checked against measured peaks by ``experiments/benchmarks/analysis.py --world``
(docs/design.md §3b).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ncib.engine.budget import GIB, MemoryBudget, available_memory

__all__ = [
    "AnalysisMemory",
    "MemoryBudget",
    "analysis_bytes_per_rank",
    "analysis_memory",
    "available_memory",
    "check_analysis_memory",
    "check_planned_analysis",
    "pair_feature_dim",
    "largest_fitting_samples",
    "planned_shape",
    "size",
    "working_bytes",
]

FLOAT32, FLOAT64, INT64 = 4, 8, 8
WORKING_BYTES = {"float32": FLOAT32, "float64": FLOAT64}  # analysis.precision: bytes a value
BOOTSTRAP = 200  # resamples of the test rows (analysis.intervals.bootstrap's default)
PERMUTATIONS = 200  # permutations of the null threshold (analysis.intervals.permutations')
# float64 d × d kept: covariance blocks raw 3, normal 3, copula 2; CCA raw and normal 4 each;
# GIB and held-out GIB 1 each per member (tests/engine/test_memory.py counts them) ...
DD_KEPT = 19
DD_REFIT = 11  # ... and one refit's at a time: its blocks 3, CCA 4, decomposition workspace 4
DD_BLOCKS = DD_KEPT + DD_REFIT
FOLD_SUMS = 4  # per-fold class sums (B, K, d) float64: raw and normal scores of both members
FOLD_BLOCKS = 6  # per-fold grams per fold, in the working dtype (ncib/analysis/intervals.py)
SORT_WORKSPACE = 64  # bytes per float32 value of a block of the normal-score sort (copula._score)
SORT_BLOCK = 2**20  # values sorted at once, at least one column (copula._BLOCK_ELEMENTS)
PROBE_STATE = 90  # d × K float64 arrays per member's probe (module docstring; measured)
WORKSPACE = 0.10  # the rest, as a share of the named parts (module docstring)
CUDA_OVERHEAD = 0.10  # on a GPU, a share of all the above (measured: module docstring)
HEADROOM = 0.9  # the analysis may use this share of what is available
MIN_SAMPLES_PER_CLASS = 5  # the least analysis.max_samples per class that ncib.config accepts


@dataclass(frozen=True)
class AnalysisMemory:
    """Bytes one rank holds during the analysis, by part (the module docstring's table)."""

    parts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    def describe(self) -> str:
        return "; ".join(f"{name} {size(b)}" for name, b in self.parts.items() if b)


def size(b: float) -> str:
    """``b`` bytes in GiB (one decimal), or MiB below 1 GiB."""
    return f"{b / GIB:.1f} GiB" if b >= GIB else f"{b / 2**20:.1f} MiB"


def working_bytes(precision: str) -> int:
    """Bytes of one value in the working dtype of ``analysis.precision`` (4 or 8)."""
    if precision not in WORKING_BYTES:
        raise ValueError(f"precision must be 'float32' or 'float64'; got {precision!r}")
    return WORKING_BYTES[precision]


def analysis_memory(
    n_train: int,
    n_test: int,
    d: int,
    k: int,
    world: int = 1,
    folds: int | None = 20,
    classes: int | None = None,
    side_by_side: int | None = None,
    cuda: bool = False,
    *,
    precision: str = "float32",
    bootstrap: int = BOOTSTRAP,
    permutations: int = PERMUTATIONS,
) -> AnalysisMemory:
    """What one of ``world`` ranks holds when ``n_train`` training rows and ``n_test`` test
    rows (both sharded ``rank::world``) of ``d`` features are analysed with T_K of dimension
    ``k`` and ``classes`` classes (default ``k``), ``folds`` training folds for the intervals
    (None or 0: no intervals), ``bootstrap`` resamples of the test rows and ``permutations``
    for the null threshold; ``precision``: ``analysis.precision``, the dtype of the features
    and of what is computed from them (``float32``: 4 bytes a value, ``float64``: 8);
    ``side_by_side``: members whose transients are held at once (default: 2 unsharded, as on a
    multi-core CPU; 1 sharded; pass 1 for a GPU); ``cuda``: on a GPU (adds the measured CUDA
    overhead)."""
    for name, v in (("n_train", n_train), ("n_test", n_test), ("d", d), ("k", k), ("world", world)):
        if int(v) != v or v < (0 if name == "n_test" else 1):
            raise ValueError(f"{name} must be a positive integer; got {v!r}")
    for name, v in (("bootstrap", bootstrap), ("permutations", permutations)):
        if isinstance(v, bool) or int(v) != v or v < 0:
            raise ValueError(f"{name} must be an integer >= 0; got {v!r}")
    w = working_bytes(precision)
    classes = k if classes is None else classes
    n = math.ceil(n_train / world)  # the largest shard of each split
    n_t = math.ceil(n_test / world)
    cols = math.ceil(d / world)
    intervals = bool(folds)
    if side_by_side is None:  # members at once (module docstring)
        side_by_side = 2 if world == 1 else 1
    sharded = world > 1
    parts = {
        "train features": 2 * n * d * w,
        "train normal scores": 2 * n * d * w,
        "T_K of the shard": 2 * n * k * w,
        "normal-score pass": side_by_side
        * (
            (n_train + n_test) * cols * w
            + SORT_WORKSPACE * w // FLOAT32 * max(SORT_BLOCK, n_train + n_test)
        )
        + ((2 * (n_train + n_test) * cols + 2 * (n + n_t) * d) * w if sharded else 0),
        "test split": 2 * n_t * (2 * d + k) * w,
        "test variates": 4 * n_t * d * FLOAT64,
        "probe": side_by_side * (n * d + 2 * n * classes) * w,
        "probe state": side_by_side * PROBE_STATE * d * classes * FLOAT64,
        "d x d statistics": (DD_BLOCKS if intervals else DD_KEPT) * d * d * FLOAT64,
        "per-fold grams": FOLD_BLOCKS * (folds or 0) * d * d * w,
        "per-fold class sums": FOLD_SUMS * (folds or 0) * classes * d * FLOAT64,
        "bootstrap weights": bootstrap * n_test * (FLOAT64 + INT64) if intervals else 0,
        "null threshold": n_t * d * FLOAT64 + 3 * permutations * n_t * INT64
        if intervals and sharded
        else 0,
        "refit directions": 2 * d * d * FLOAT64 if intervals and sharded else 0,
    }
    parts["workspace"] = int(WORKSPACE * sum(parts.values()))
    if cuda:
        parts["CUDA overhead"] = int(CUDA_OVERHEAD * sum(parts.values()))
    return AnalysisMemory(parts)


def analysis_bytes_per_rank(
    n_train: int,
    n_test: int,
    d: int,
    k: int,
    world: int = 1,
    folds: int | None = 20,
    classes: int | None = None,
    side_by_side: int | None = None,
    cuda: bool = False,
    *,
    precision: str = "float32",
    bootstrap: int = BOOTSTRAP,
    permutations: int = PERMUTATIONS,
) -> int:
    """Total bytes of :func:`analysis_memory`."""
    return analysis_memory(
        n_train,
        n_test,
        d,
        k,
        world,
        folds,
        classes,
        side_by_side,
        cuda,
        precision=precision,
        bootstrap=bootstrap,
        permutations=permutations,
    ).total


def largest_fitting_samples(
    n_train: int,
    n_test: int,
    d: int,
    k: int,
    world: int,
    folds,
    classes,
    budget: int,
    least: int,
    side_by_side: int | None = None,
    cuda: bool = False,
    *,
    precision: str = "float32",
    bootstrap: int = BOOTSTRAP,
    permutations: int = PERMUTATIONS,
) -> int | None:
    """The largest training subset in ``[least, n_train]`` whose analysis fits ``budget``
    bytes per rank, or None when not even ``least`` does (``precision``, ``bootstrap``,
    ``permutations``: as :func:`analysis_memory`)."""
    opts = dict(precision=precision, bootstrap=bootstrap, permutations=permutations)

    def fits(n: int) -> bool:
        return (
            analysis_bytes_per_rank(
                n, n_test, d, k, world, folds, classes, side_by_side, cuda, **opts
            )
            <= budget
        )

    if not fits(least):
        return None
    lo, hi = least, n_train
    while lo < hi:  # the bytes grow with n
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


def planned_shape(settings, splits, num_classes: int) -> dict:
    """The arguments of :func:`check_analysis_memory` that a run's analysis settings
    (:class:`ncib.engine.AnalysisSettings`) and its data (``splits``: ``{"train": (images,
    labels), "test": …}``) fix; the feature dimension, ranks and budget come from the job."""
    intervals = settings.intervals
    return {
        "n_train": len(splits["train"][1]),
        "n_test": len(splits["test"][1]),
        "k": settings.k or num_classes,
        "folds": None if intervals is None else intervals.folds,
        "classes": num_classes,
        "max_samples": settings.max_samples,
        "least": MIN_SAMPLES_PER_CLASS * num_classes,
        "precision": settings.precision,
        "bootstrap": BOOTSTRAP if intervals is None else intervals.bootstrap,
        "permutations": PERMUTATIONS if intervals is None else intervals.permutations,
    }


def check_analysis_memory(
    n_train: int,
    n_test: int,
    d: int,
    k: int,
    world: int,
    folds: int | None,
    budget: MemoryBudget,
    classes: int | None = None,
    max_samples: int | None = None,
    least: int = 1,
    side_by_side: int | None = None,
    cuda: bool = False,
    *,
    precision: str = "float32",
    bootstrap: int = BOOTSTRAP,
    permutations: int = PERMUTATIONS,
) -> AnalysisMemory:
    """Raise ``MemoryError`` when the analysis of ``min(n_train, max_samples)`` training rows
    over ``world`` ranks needs more than :data:`HEADROOM` of ``budget`` per rank; the message
    gives the GiB per rank, the memory available, and what to set (``analysis.max_samples=`` the
    largest that fits, or the ranks that would fit the whole split). ``precision``,
    ``bootstrap``, ``permutations``: as :func:`analysis_memory`. Returns the estimate."""
    n = n_train if max_samples is None else min(n_train, int(max_samples))
    opts = dict(
        classes=classes,
        side_by_side=side_by_side,
        cuda=cuda,
        precision=precision,
        bootstrap=bootstrap,
        permutations=permutations,
    )
    need = analysis_memory(n, n_test, d, k, world, folds, **opts)
    allowed = int(HEADROOM * budget.bytes)
    if need.total <= allowed:
        return need
    fixes = []
    largest = largest_fitting_samples(
        n, n_test, d, k, world, folds, budget=allowed, least=least, **opts
    )
    if largest is not None:
        fixes.append(f"analysis.max_samples={largest} (the largest training subset that fits)")
    ranks = next(
        (
            r
            for r in range(world + 1, 4097)
            if analysis_bytes_per_rank(n, n_test, d, k, r, folds, **opts) <= allowed
        ),
        None,
    )
    if ranks is not None:
        fixes.append(f"run on {ranks} or more ranks (trainer.devices / trainer.num_nodes)")
    if folds and analysis_bytes_per_rank(n, n_test, d, k, world, 2, **opts) <= allowed:
        fixes.append(
            f"fewer analysis.intervals.folds (B={folds}: {FOLD_BLOCKS * folds} d x d {precision})"
        )
    if precision != "float32" and (
        analysis_bytes_per_rank(n, n_test, d, k, world, folds, **(opts | {"precision": "float32"}))
        <= allowed
    ):
        fixes.append("analysis.precision=float32 (half the feature memory)")
    rows = "all" if max_samples is None or n == n_train else f"max_samples={n} of"
    raise MemoryError(
        f"the analysis would need {size(need.total)} per rank ({rows} {n_train} training "
        f"rows over {world} rank{'s' if world > 1 else ''}, {n_test} test rows, d={d}, "
        f"k={k}, {precision}; {need.describe()}) but {budget.what} allows {size(allowed)} "
        f"({HEADROOM:.0%}); set {' or '.join(fixes) or 'a smaller analysis'}"
    )


def pair_feature_dim(pair) -> int | None:
    """The dimension of the features the analysis studies (the first member's encoder); None
    for a module that is not a pair."""
    members = getattr(pair, "members", None)
    if not members:
        return None
    dim = getattr(getattr(members[0], "encoder", None), "feature_dim", None)
    return int(dim) if dim is not None else None


def check_planned_analysis(
    settings,
    splits,
    num_classes: int,
    d: int,
    device,
    world: int,
    ranks_on_host: int = 1,
    held_images: int = 0,
) -> AnalysisMemory:
    """The check of a job's planned analysis, before it starts (a training run's
    :class:`ncib.callbacks.AnalysisMemoryCheck`, ``python -m ncib.analyse``): the shape, the
    precision and the intervals' resamples from the settings and ``splits``
    (:func:`planned_shape`), ``world`` ranks, the memory of
    ``device`` — a GPU's own (one member at a time, with the CUDA overhead) less
    ``held_images`` bytes of training images on it, or the host's shared by its
    ``ranks_on_host`` ranks. Raises ``MemoryError`` as :func:`check_analysis_memory`."""
    cuda = getattr(device, "type", str(device).split(":")[0]) == "cuda"
    budget = available_memory(device, ranks_on_host=1 if cuda else ranks_on_host)
    if held_images:
        budget = MemoryBudget(
            budget.bytes - held_images, f"{budget.what} less {size(held_images)} of training images"
        )
    return check_analysis_memory(
        **planned_shape(settings, splits, num_classes),
        d=d,
        world=world,
        budget=budget,
        side_by_side=1 if cuda else None,  # a GPU: one member at a time
        cuda=cuda,
    )
