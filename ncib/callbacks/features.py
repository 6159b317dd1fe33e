"""Encoder features of both members on the train and test splits, extracted once per
analysis epoch (eval mode, no augmentation) and shared by every analysis callback."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ncib.data.base import stratified_subset

__all__ = ["PairFeatures", "analysis_rows", "extract_features", "member_features", "reassemble"]


@dataclass(frozen=True)
class PairFeatures:
    """``train[m]``: ``(N_train, d)`` float32 features of member ``m``; ``y_train``: ``(N_train,)``;
    likewise for test. ``indices`` are the rows of each split that were used."""

    train: tuple[torch.Tensor, ...]
    test: tuple[torch.Tensor, ...]
    y_train: torch.Tensor
    y_test: torch.Tensor
    indices: dict[str, torch.Tensor]


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


@torch.inference_mode()
def member_features(pl_module, datamodule, split, rows, device, progress=True) -> list[torch.Tensor]:
    """``[(len(rows), d)] * members`` float32 features of ``split`` (all rows if ``rows`` is
    None), computed in batches on ``device`` with the module as it is (call ``eval()`` first)."""
    outs: list[list[torch.Tensor]] = [[] for _ in pl_module.members]
    loader = datamodule.eval_dataloader(split, rows)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    for batch in tqdm(loader, desc=f"features/{split}", leave=False, disable=not progress):
        x = datamodule.eval_transform(batch["x"].to(device, non_blocking=True))
        with autocast:
            feats = pl_module.features(x)
        for m, f in enumerate(feats):
            outs[m].append(f.float())
    return [torch.cat(o) for o in outs]


def extract_features(trainer, pl_module, max_samples: int | None = None, progress: bool = True) -> PairFeatures:
    """Features of every member on both splits, in eval mode, each row once.

    Under DDP each rank extracts rows ``rank::world`` of the (sub-sampled) split and the
    shards are all-gathered and put back in order, so every sample appears exactly once.
    """
    datamodule = trainer.datamodule
    device = pl_module.device
    world, rank = trainer.world_size, trainer.global_rank
    was_training = pl_module.training
    pl_module.eval()
    try:
        feats, labels, used = {}, {}, {}
        for split in ("train", "test"):
            y_all = datamodule.splits[split][1]
            rows = analysis_rows(y_all, max_samples) if split == "train" else torch.arange(len(y_all))
            used[split], labels[split] = rows, y_all[rows]
            local = member_features(pl_module, datamodule, split, rows[rank::world], device, progress)
            if world > 1:
                longest = -(-len(rows) // world)  # rank 0 holds the most rows
                padded = [torch.cat([f, f.new_zeros(longest - len(f), f.shape[1])]) for f in local]
                local = [reassemble(pl_module.all_gather(f), len(rows)) for f in padded]
            feats[split] = tuple(local)
    finally:
        pl_module.train(was_training)
    return PairFeatures(feats["train"], feats["test"], labels["train"].to(device), labels["test"].to(device), used)
