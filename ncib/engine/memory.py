"""The memory one rank needs for the per-epoch analysis, and the check made before training.

A pure model of what a rank holds during a sharded :class:`~ncib.analysis.PairAnalysis`
(:mod:`ncib.analysis.shards`; docs/design.md §3b tables it at the ImageNet32 shape), and
:func:`check_analysis_memory`, which the run calls before the first step
(:class:`ncib.callbacks.AnalysisMemoryCheck`): it refuses a run whose analysis would not fit,
saying what it needs, what there is, and what to set. Imports no Lightning.

What a rank holds (N training rows over R ranks, n = ⌈N/R⌉ of them here; N_t test rows, d
features, T_K of dimension k, K classes, B folds; float32 = 4 bytes, float64 = 8):

================================  =============================================================
train features, 2 members         2 · n · d · 4
their normal scores               2 · n · d · 4
T_K of the shard, 2 members       2 · n · k · 4
normal-score pass                 per member: (N + N_t) · ⌈d/R⌉ · 4 (the column block
                                  transposed for the sort) + 64 · max(2²⁰, N + N_t) (the sort's
                                  block workspace); with R > 1 also 2 · N · ⌈d/R⌉ · 4 (the
                                  received column block and its concatenation), 2 · n · d · 4
                                  (the contiguous blocks sent and the scores sent back) and
                                  N_t · d · 4 (the test scores gathered)
test split, 2 members             2 · N_t · (2d + k) · 4 (raw, normal scores, T_K)
test variates, 2 members          2 · N_t · d · 8 (float64)
probe                             per member: n · d · 4 (standardised copy of the shard)
                                  + 2 · n · K · 4 (logits and their gradient)
probe state                       per member: 90 · d · K · 8 (the L-BFGS history of float64
                                  d × K iterates and what the allocator keeps of them: fitted
                                  to the measured peaks at K = 1,000, d = 2,048)
d × d statistics                  12 · d² · 8 (float64 blocks: raw and normal scores 3 each,
                                  copula 2, and 4 of decomposition workspace)
per-fold grams                    6 · B · d² · 4 (float32; none without intervals)
workspace                         10 % of the above (row chunks of the covariance pass,
                                  decompositions, the allocator's slack)
CUDA overhead (on a GPU)          25 % of the above (the caching allocator's blocks, cuBLAS and
                                  cuSOLVER workspaces): one H200 at N = 100,000 + 50,000,
                                  d = 2,048, K = 1,000 peaked at 18.1 GiB
                                  (``torch.cuda.max_memory_allocated``) where the parts above
                                  give 14.9
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
import os
from dataclasses import dataclass

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
]

GIB = 2**30
FLOAT32, FLOAT64 = 4, 8
DD_BLOCKS = 12  # float64 d × d: raw 3, normal 3, copula 2, decomposition workspace 4
FOLD_BLOCKS = 6  # per-fold float32 grams per fold (ncib/analysis/intervals.py)
SORT_WORKSPACE = 64  # bytes per value of a block of the normal-score sort (copula._score)
SORT_BLOCK = 2**20  # values sorted at once, at least one column (copula._BLOCK_ELEMENTS)
PROBE_STATE = 90  # d × K float64 arrays per member's probe (module docstring; measured)
WORKSPACE = 0.10  # the rest, as a share of the named parts (module docstring)
CUDA_OVERHEAD = 0.25  # on a GPU, a share of all the above (measured: module docstring)
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
) -> AnalysisMemory:
    """What one of ``world`` ranks holds when ``n_train`` training rows (sharded ``rank::world``)
    and ``n_test`` test rows of ``d`` features are analysed with T_K of dimension ``k`` and
    ``classes`` classes (default ``k``), ``folds`` training folds for the intervals (None or 0:
    no intervals); ``side_by_side``: members whose transients are held at once (default: 2
    unsharded, as on a multi-core CPU; 1 sharded; pass 1 for a GPU); ``cuda``: on a GPU (adds
    the measured CUDA overhead)."""
    for name, v in (("n_train", n_train), ("n_test", n_test), ("d", d), ("k", k), ("world", world)):
        if int(v) != v or v < (0 if name == "n_test" else 1):
            raise ValueError(f"{name} must be a positive integer; got {v!r}")
    classes = k if classes is None else classes
    n = math.ceil(n_train / world)  # the largest shard
    cols = math.ceil(d / world)
    if side_by_side is None:  # members at once (module docstring)
        side_by_side = 2 if world == 1 else 1
    parts = {
        "train features": 2 * n * d * FLOAT32,
        "train normal scores": 2 * n * d * FLOAT32,
        "T_K of the shard": 2 * n * k * FLOAT32,
        "normal-score pass": side_by_side
        * ((n_train + n_test) * cols * FLOAT32 + SORT_WORKSPACE * max(SORT_BLOCK, n_train + n_test))
        + ((2 * n_train * cols + 2 * n * d + n_test * d) * FLOAT32 if world > 1 else 0),
        "test split": 2 * n_test * (2 * d + k) * FLOAT32,
        "test variates": 2 * n_test * d * FLOAT64,
        "probe": side_by_side * (n * d + 2 * n * classes) * FLOAT32,
        "probe state": side_by_side * PROBE_STATE * d * classes * FLOAT64,
        "d x d statistics": DD_BLOCKS * d * d * FLOAT64,
        "per-fold grams": FOLD_BLOCKS * (folds or 0) * d * d * FLOAT32,
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
) -> int:
    """Total bytes of :func:`analysis_memory`."""
    return analysis_memory(n_train, n_test, d, k, world, folds, classes, side_by_side, cuda).total


@dataclass(frozen=True)
class MemoryBudget:
    """Memory the analysis of one rank may use: ``bytes`` of ``what`` (for the messages)."""

    bytes: int
    what: str


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def available_memory(device, ranks_on_host: int = 1) -> MemoryBudget:
    """The memory one rank's analysis may use on ``device`` (a ``torch.device`` or string): the
    GPU's total memory for CUDA; on the CPU the host's available memory (``MemAvailable``)
    shared by the ``ranks_on_host`` ranks of this node."""
    kind = getattr(device, "type", str(device).split(":")[0])
    if kind == "cuda":
        import torch

        total = torch.cuda.get_device_properties(device).total_memory
        return MemoryBudget(total, f"{total / GIB:.1f} GiB of GPU memory on {device}")
    avail = _meminfo_available()
    if avail is None:
        avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    share = avail // max(1, ranks_on_host)
    shared = f", shared by {ranks_on_host} ranks on this host" if ranks_on_host > 1 else ""
    return MemoryBudget(share, f"{avail / GIB:.1f} GiB of available host memory{shared}")


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
) -> int | None:
    """The largest training subset in ``[least, n_train]`` whose analysis fits ``budget``
    bytes per rank, or None when not even ``least`` does."""

    def fits(n: int) -> bool:
        return (
            analysis_bytes_per_rank(n, n_test, d, k, world, folds, classes, side_by_side, cuda)
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
) -> AnalysisMemory:
    """Raise ``MemoryError`` when the analysis of ``min(n_train, max_samples)`` training rows
    over ``world`` ranks needs more than :data:`HEADROOM` of ``budget`` per rank; the message
    gives the GiB per rank, the memory available, and what to set (``analysis.max_samples=`` the
    largest that fits, or the ranks that would fit the whole split). Returns the estimate."""
    n = n_train if max_samples is None else min(n_train, int(max_samples))
    need = analysis_memory(n, n_test, d, k, world, folds, classes, side_by_side, cuda)
    allowed = int(HEADROOM * budget.bytes)
    if need.total <= allowed:
        return need
    fixes = []
    largest = largest_fitting_samples(
        n, n_test, d, k, world, folds, classes, allowed, least, side_by_side, cuda
    )
    if largest is not None:
        fixes.append(f"analysis.max_samples={largest} (the largest training subset that fits)")
    ranks = next(
        (
            r
            for r in range(world + 1, 4097)
            if analysis_bytes_per_rank(n, n_test, d, k, r, folds, classes, side_by_side, cuda)
            <= allowed
        ),
        None,
    )
    if ranks is not None:
        fixes.append(f"run on {ranks} or more ranks (trainer.devices / trainer.num_nodes)")
    if (
        folds
        and analysis_bytes_per_rank(n, n_test, d, k, world, 2, classes, side_by_side, cuda)
        <= allowed
    ):
        fixes.append(f"fewer analysis.intervals.folds (B={folds}: {6 * folds} d x d float32)")
    rows = "all" if max_samples is None or n == n_train else f"max_samples={n} of"
    raise MemoryError(
        f"the analysis would need {size(need.total)} per rank ({rows} {n_train} training "
        f"rows over {world} rank{'s' if world > 1 else ''}, {n_test} test rows, d={d}, "
        f"k={k}; {need.describe()}) but {budget.what} allows {size(allowed)} "
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
    :class:`ncib.callbacks.AnalysisMemoryCheck`, ``python -m ncib.analyse``): the shape from
    the settings and ``splits`` (:func:`planned_shape`), ``world`` ranks, the memory of
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
