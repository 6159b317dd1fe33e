"""Encoder features of both members on the train and test splits, extracted once per analysis
(eval mode, no augmentation, float32 whatever the training precision: docs/design.md §3).

A *pair* is anything with ``members`` (a sequence) and ``features(x) -> [(B, d)] * members``,
such as :class:`ncib.models.PairedSupCon`; a *datamodule* provides ``splits``,
``eval_dataloader`` and ``eval_transform`` (:class:`ncib.data.base.PairedViewDataModule`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import torch
from tqdm.auto import tqdm

from ncib.analysis._linalg import no_tf32
from ncib.analysis.shards import Comm, TorchDistributed
from ncib.analysis.shards import SingleProcess as SingleComm
from ncib.console import interactive
from ncib.data.base import stratified_subset

__all__ = [
    "Collective",
    "PairFeatures",
    "SingleProcess",
    "TorchCollective",
    "analysis_rows",
    "extract_pair_features",
    "full_float32",
    "member_features",
    "process_group_comm",
    "reassemble",
]


@dataclass(frozen=True)
class PairFeatures:
    """``train[m]``: ``(N_train, d)`` float32 features of member ``m``; ``y_train``: ``(N_train,)``;
    likewise for test. ``indices`` are the rows of each split that were used.

    When the training split is sharded over ranks (``extract_pair_features(shard_train=True)``),
    ``train`` and ``y_train`` hold this rank's rows only: ``train_positions`` are their positions
    among the ``len(indices["train"])`` analysed training rows (None: all of them); likewise
    ``test_positions`` for the test split (``shard_test=True``)."""

    train: tuple[torch.Tensor, ...]
    test: tuple[torch.Tensor, ...]
    y_train: torch.Tensor
    y_test: torch.Tensor
    indices: dict[str, torch.Tensor]
    train_positions: torch.Tensor | None = None
    test_positions: torch.Tensor | None = None


class Collective(Protocol):
    """The process group the extraction is shared over (one process, or the ranks of DDP);
    ``comm`` gives the analysis its collectives (:mod:`ncib.analysis.shards`)."""

    rank: int
    world: int
    comm: Comm

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """``(B, d)`` on every rank → ``(world, B, d)``."""

    def broadcast_(self, tensor: torch.Tensor) -> None:
        """Overwrite ``tensor`` on every rank with rank 0's, in place."""


class SingleProcess:
    """No process group: rank 0 of 1."""

    rank, world = 0, 1
    comm = SingleComm()

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor[None]

    def broadcast_(self, tensor: torch.Tensor) -> None:
        pass


class TorchCollective:
    """``torch.distributed``'s default process group (initialised by the caller) as a
    :class:`Collective`, without Lightning: ``python -m ncib.analyse`` under ``torchrun``, and
    tests with gloo processes."""

    def __init__(self) -> None:
        self.comm = TorchDistributed()
        self.rank, self.world = self.comm.rank, self.comm.world

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        local = tensor.to(self.comm.device).contiguous()
        parts = [torch.empty_like(local) for _ in range(self.world)]
        dist.all_gather(parts, local)
        return torch.stack(parts).to(tensor.device)

    def broadcast_(self, tensor: torch.Tensor) -> None:
        self.comm.broadcast_(tensor, 0)


def process_group_comm(world: int) -> Comm:
    """The analysis's collectives for ``world`` processes: ``torch.distributed``'s default group
    when there are several and it is initialised (DDP), else this process alone."""
    import torch.distributed as dist

    if world > 1 and dist.is_available() and dist.is_initialized():
        return TorchDistributed()
    return SingleComm()


def analysis_rows(labels: torch.Tensor, max_samples: int | None, seed: int = 0) -> torch.Tensor:
    """Sorted rows to analyse: all of them, or a stratified subset of ``max_samples`` drawn
    with a fixed ``seed`` (the same rows for both members and every epoch)."""
    n = len(labels)
    if max_samples is None or max_samples >= n:
        return torch.arange(n)
    if max_samples < 1:
        raise ValueError(f"analysis.max_samples must be >= 1 or null; got {max_samples}")
    return torch.from_numpy(stratified_subset(labels.cpu().numpy(), int(max_samples), seed))


def reassemble(gathered: torch.Tensor, n: int) -> torch.Tensor:
    """Undo a padded all-gather of strided shards: rank ``r`` of ``world`` held rows
    ``r::world`` of an ``n``-row split, padded to a common length; ``gathered`` is
    ``(world, longest, d)``. Returns ``(n, d)`` with every row once, padding dropped."""
    world = gathered.shape[0]
    out = gathered.new_empty((n, *gathered.shape[2:]))
    for r in range(world):
        rows = torch.arange(r, n, world)
        out[rows] = gathered[r, : len(rows)]
    return out


@contextlib.contextmanager
def full_float32() -> Iterator[None]:
    """float32 forward passes at full precision: no autocast, and no TF32 in matmuls
    (:func:`ncib.analysis._linalg.no_tf32`) or cuDNN convolutions (on by default in torch)."""
    restore = None
    try:
        if torch.backends.cudnn.allow_tf32:
            torch.backends.cudnn.allow_tf32 = False
            restore = ("legacy", True)
    except RuntimeError:  # torch >= 2.9 after the fp32_precision API was used: stay with it
        conv = torch.backends.cudnn.conv
        if conv.fp32_precision not in ("ieee", "none"):
            restore = ("new", conv.fp32_precision)
            conv.fp32_precision = "ieee"
    try:
        with no_tf32(), torch.autocast("cuda", enabled=False), torch.autocast("cpu", enabled=False):
            yield
    finally:
        if restore is not None:
            if restore[0] == "legacy":
                torch.backends.cudnn.allow_tf32 = restore[1]
            else:
                torch.backends.cudnn.conv.fp32_precision = restore[1]


@torch.inference_mode()
def member_features(pair, datamodule, split, rows, device, progress=True) -> list[torch.Tensor]:
    """``[(len(rows), d)] * members`` float32 features of ``split`` (all rows if ``rows`` is
    None), in batches on ``device``, with the pair as it is (put it in eval mode first).

    Autocast and TF32 are switched off (:func:`full_float32`): under bf16 training the pooled
    features would keep an 8-bit mantissa (TF32: 10 bits), a precision floor for ranks and for
    1 − ρ² near ρ = 1.
    """
    outs: list[list[torch.Tensor]] = [[] for _ in pair.members]
    loader = datamodule.eval_dataloader(split, rows)
    # a bar only on a terminal: in a file its redraws are cursor codes (ncib/console.py)
    bar = progress and interactive()
    for batch in tqdm(loader, desc=f"features/{split}", leave=False, disable=not bar):
        x = datamodule.eval_transform(batch["x"].to(device, non_blocking=True))
        with full_float32():
            feats = pair.features(x.float())
        for m, f in enumerate(feats):
            outs[m].append(f.float())
    return [torch.cat(o) for o in outs]


def extract_pair_features(
    pair,
    datamodule,
    device: torch.device,
    max_samples: int | None = None,
    collective: Collective | None = None,
    progress: bool = True,
    shard_train: bool = False,
    shard_test: bool = False,
) -> PairFeatures:
    """Features of every member on both splits, in eval mode, each row once.

    With a ``collective`` of several ranks, each rank extracts rows ``rank::world`` of the
    (sub-sampled) split. The test shards are all-gathered and put back in order, so every sample
    appears exactly once; so are the training shards, unless ``shard_train``: then each rank
    keeps its own (``PairFeatures.train_positions``) for a sharded analysis
    (:class:`ncib.analysis.shards.Shard`), and likewise the test shards with ``shard_test``
    (``PairFeatures.test_positions``). The training subset (``max_samples``) is the same for
    every call.
    """
    collective = collective or SingleProcess()
    world, rank = collective.world, collective.rank
    if world > 1:
        # Buffers (BatchNorm running statistics) are per rank under DDP: it broadcasts rank 0's
        # before each training forward, after which every rank updates its own copy with its
        # own batch. Rank 0's are the ones checkpointed, so every rank extracts with those.
        for buffer in pair.buffers():
            collective.broadcast_(buffer)
    was_training = pair.training
    pair.eval()
    try:
        feats, labels, used = {}, {}, {}
        positions: dict[str, torch.Tensor | None] = {"train": None, "test": None}
        keep = {"train": shard_train, "test": shard_test}
        for split in ("train", "test"):
            y_all = datamodule.splits[split][1]
            rows = (
                analysis_rows(y_all, max_samples) if split == "train" else torch.arange(len(y_all))
            )
            used[split], labels[split] = rows, y_all[rows]
            local = member_features(pair, datamodule, split, rows[rank::world], device, progress)
            if world > 1 and keep[split]:
                positions[split] = torch.arange(rank, len(rows), world)
                labels[split] = labels[split][positions[split]]
            elif world > 1:
                longest = -(-len(rows) // world)  # rank 0 holds the most rows
                padded = [torch.cat([f, f.new_zeros(longest - len(f), f.shape[1])]) for f in local]
                local = [reassemble(collective.all_gather(f), len(rows)) for f in padded]
            feats[split] = tuple(local)
    finally:
        pair.train(was_training)
    return PairFeatures(
        feats["train"],
        feats["test"],
        labels["train"].to(device),
        labels["test"].to(device),
        used,
        positions["train"],
        positions["test"],
    )
