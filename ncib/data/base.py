"""The data plumbing shared by every dataset: per-member batches and seeded views.

A dataset lives in memory as ``uint8`` images ``(N, C, H, W)`` and ``int64`` labels. For
training, each member of the seed pair gets its own loader whose batch sampler draws the
member's own data order from its seed and tags every batch with the member's augmentation key
for the epoch. The loaders carry only these indices and keys; after the transfer
(:meth:`PairedViewDataModule.on_after_batch_transfer`) the images are gathered from a copy of
the training split kept on the training device (uint8: 150 MB for CIFAR) and augmented there,
in batches.

**What a member sees does not depend on the device count.** With member seed ``s``:

* the data order of epoch ``e`` is a permutation drawn from ``(s, e)``; its consecutive
  slices of ``batch_size`` are the *global* batches, the last one partial when the batch does
  not divide the training set (kept, as the reference SupContrast loader keeps it), and with
  ``W`` devices rank ``r`` takes the ``r``-th of ``W`` equal parts of each — of the partial
  batch, of its first ``R − (R mod W)`` samples (its ``R mod W < W`` last ones are left out of
  that epoch; with one device nothing is);
* view ``v`` of training sample ``i`` in epoch ``e`` is drawn from the counter-based stream
  :class:`~ncib.data.counter_rng.SampleRNG` keyed by ``key(s, e)`` and numbered by
  ``(i, v)``: its randomness is a function of ``(s, e, i, v)`` only — not of the batch, its
  size, the rank or the device count — and every per-image operation of the augmentation is
  elementwise (no batched matmul, no batch-shaped reduction), so the views are bit-for-bit
  the same on one device or several of the same type (``tests/data/test_views_device_count.py``
  checks 1, 2 and 4 simulated ranks on the CPU, and on CUDA in its ``gpu``-marked test).
  Different members (seeds), epochs and views draw from unrelated streams.

So member ``m`` sees exactly the same global batches and views whether it is trained alone or
beside another member, on one device or several (up to those ``R mod W`` samples), and a
resumed run draws what an uninterrupted one would have (Lightning calls
:meth:`EpochBatchSampler.set_epoch`).

**What does depend on the device count** is training itself, not its data:

* BatchNorm statistics are computed over each device's part of the batch (``sync_batchnorm``
  is off; ``conf/trainer/ddp.yaml``), so the forward pass — and with it the loss — differs
  with ``W`` devices; so do the running statistics each rank keeps (DDP copies rank 0's before
  every training forward; the analysis extracts with rank 0's, the ones checkpointed);
* the SupCon loss contrasts against the gathered global batch
  (:func:`ncib.losses.gather_with_grad`, in rank order, i.e. the global batch's order), so it
  is the same function of the same views, but its reductions and the gradient all-reduce
  round differently, and the same device type with another batch size may pick other
  convolution/matmul kernels: losses and weights agree to rounding, not bit for bit;
* the views are bit-identical only on the same device type: a CPU and a GPU evaluate
  ``exp``/``cos`` and ``grid_sample`` with different rounding.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from ncib.data.augment import Normalize
from ncib.data.counter_rng import SampleRNG

__all__ = [
    "EpochBatchSampler",
    "IndexedTensors",
    "PairedViewDataModule",
    "class_subset",
    "mix_seed",
    "select_classes",
    "stratified_subset",
]

_ORDER, _AUGMENT = 1, 2


def mix_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from integers (``numpy.random.SeedSequence``)."""
    return int(
        np.random.SeedSequence([int(p) & 0xFFFFFFFF for p in parts]).generate_state(2, np.uint64)[0]
        >> 1
    )


def stratified_subset(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Sorted indices of ``n`` samples, each class keeping its share of ``labels`` (largest
    remainders get the leftover places), chosen at random with ``seed``."""
    counts = np.bincount(labels)
    exact = counts * (n / len(labels))
    quota = np.floor(exact).astype(np.int64)
    leftover = n - int(quota.sum())
    quota[np.argsort(-(exact - quota), kind="stable")[:leftover]] += 1
    perm = np.random.default_rng(seed).permutation(len(labels))
    by_class = perm[np.argsort(labels[perm], kind="stable")]  # shuffled within each class
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(labels)) - starts[labels[by_class]]
    return np.sort(by_class[rank < quota[labels[by_class]]])


def _dist_rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def class_subset(classes: int | Sequence[int] | None, total: int) -> np.ndarray | None:
    """The class ids kept by ``dataset.classes``: None (all), the first ``n``, or the listed ids
    (distinct, in ``[0, total)``), in the order given."""
    if classes is None:
        return None
    if isinstance(classes, int | np.integer) and not isinstance(classes, bool):
        if not 2 <= classes <= total:
            raise ValueError(
                f"dataset.classes={classes}: keep between 2 and {total} classes (the first n)"
            )
        return np.arange(int(classes))
    ids = [int(c) for c in classes]
    bad = [c for c in ids if not 0 <= c < total]
    if bad or len(set(ids)) != len(ids) or len(ids) < 2:
        raise ValueError(
            f"dataset.classes={list(classes)}: give at least two distinct class ids in [0, {total})"
            + (f"; {bad} are outside" if bad else "")
        )
    return np.asarray(ids, dtype=np.int64)


def select_classes(images: torch.Tensor, labels: torch.Tensor, class_ids: np.ndarray):
    """The samples of ``class_ids``, relabelled by their position in it (order kept)."""
    ids = torch.as_tensor(class_ids, dtype=torch.int64)
    size = max(int(labels.max()) + 1 if len(labels) else 0, int(ids.max()) + 1)
    relabel = torch.full((size,), -1, dtype=torch.int64)
    relabel[ids] = torch.arange(len(ids))
    new = relabel[labels]
    keep = torch.nonzero(new >= 0).flatten()
    return images[keep], new[keep]


class EpochBatchSampler(Sampler):
    """Yields ``(indices, key)`` for one member: this rank's sample indices ``(B/W,)`` and the
    member's augmentation key for the epoch.

    Each epoch is a fresh permutation drawn from ``(seed, epoch)``; ``batch_size`` is the
    *global* batch, split evenly across distributed ranks (each rank takes its slice), so the
    batches a member sees do not depend on the number of devices. The key is
    :meth:`augment_key` ``(epoch)``, the same for every batch and rank of the epoch: a view's
    randomness is told apart by its sample index and view index
    (:meth:`PairedViewDataModule.make_views`). Lightning calls :meth:`set_epoch` before every
    epoch.

    The last partial batch (``R = num_samples mod batch_size`` samples) is kept, as the
    reference SupContrast ``DataLoader`` keeps it (``drop_last=False``), unless ``drop_last``.
    Split across ``W`` ranks it keeps its first ``R − (R mod W)`` samples, so that every rank
    gets the same number (the gather of the SupCon loss needs equal parts); when fewer than
    ``W`` remain it is left out.
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int, drop_last: bool = False):
        if batch_size > num_samples:
            raise ValueError(
                f"batch_size={batch_size} is larger than the {num_samples} training samples; "
                "choose dataset.datamodule.batch_size <= the training set size"
            )
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, int(seed)
        self.drop_last = bool(drop_last)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def augment_key(self, epoch: int | None = None) -> int:
        """The member's 63-bit augmentation key for ``epoch`` (default: the current one)."""
        return mix_seed(self.seed, _AUGMENT, self.epoch if epoch is None else epoch)

    def _last_batch(self, world: int) -> int:
        """Samples in the kept last partial batch across ``world`` ranks (0: none kept)."""
        if self.drop_last:
            return 0
        rest = self.num_samples % self.batch_size
        return rest - rest % world

    def __len__(self) -> int:
        full = self.num_samples // self.batch_size
        return full + (self._last_batch(_dist_rank_world()[1]) > 0)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, int]]:
        rank, world = _dist_rank_world()
        if self.batch_size % world:
            raise ValueError(
                f"batch_size={self.batch_size} (the global batch) is not divisible by the "
                f"{world} devices; choose a multiple of {world}"
            )
        local = self.batch_size // world
        g = torch.Generator().manual_seed(mix_seed(self.seed, _ORDER, self.epoch))
        order = torch.randperm(self.num_samples, generator=g)
        key = self.augment_key()
        full = self.num_samples // self.batch_size
        for b in range(full):
            start = b * self.batch_size + rank * local
            yield order[start : start + local], key
        last = self._last_batch(world) // world
        if last:
            start = full * self.batch_size + rank * last
            yield order[start : start + last], key


class NoAugment(nn.Module):
    """The views are the images themselves: the augmentation of a module that sets none."""

    def forward(self, x: torch.Tensor, rng: SampleRNG | None = None) -> torch.Tensor:
        return x


class IndexedTensors(Dataset):
    """A whole batch per index: ``(indices, key)`` → ``{"idx", "seed"}`` (training: the images
    are gathered and augmented on the device, ``seed`` is the augmentation key of
    :class:`EpochBatchSampler`); an index tensor → ``{"x", "y"}`` (evaluation)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key):
        if isinstance(key, tuple):
            idx, seed = key
            return {"idx": idx, "seed": seed}  # a plain int: reading it never waits for a GPU
        return {"x": self.images[key], "y": self.labels[key]}


class PairedViewDataModule(pl.LightningDataModule):
    """Base DataModule: subclasses implement :meth:`load` and build ``self.augment``.

    Args:
        seeds: one seed per member (``seed_pair``); member ``m``'s loader is ``f"m{m}"``.
        batch_size: global training batch per member.
        views: augmented views per sample (≥ 1; the contrastive objectives need 2 or more,
            checked by ``ncib.config``; the classifier objectives train on 1).
        eval_batch_size: batch size of the feature-extraction loaders.
        num_workers: loader workers (0 is right for in-memory tensors).
        classes: a class subset — ``None`` (all), ``n`` (the first n classes) or a list of class
            ids; the kept classes are relabelled ``0..K−1`` in the order given, the same for
            both members, and ``num_classes`` becomes K.
        drop_last: drop each epoch's last partial batch (default: keep it, as the reference
            does; :class:`EpochBatchSampler`).

    Subclasses set ``total_classes`` (the dataset's own number of classes), ``mean`` and ``std``.
    """

    total_classes: int
    mean: Sequence[float]
    std: Sequence[float]
    selects_classes_on_load = False  # True: load() already keeps only ``class_ids``

    def __init__(
        self,
        seeds: Sequence[int],
        batch_size: int = 256,
        views: int = 2,
        eval_batch_size: int = 1024,
        num_workers: int = 0,
        classes: int | Sequence[int] | None = None,
        drop_last: bool = False,
    ):
        super().__init__()
        if int(views) != views or views < 1:
            raise ValueError(f"views must be an integer >= 1; got {views!r}")
        self.class_ids = class_subset(classes, self.total_classes)
        self.num_classes = self.total_classes if self.class_ids is None else len(self.class_ids)
        self.seeds = [int(s) for s in seeds]
        self.batch_size, self.views = int(batch_size), int(views)
        self.eval_batch_size, self.num_workers = int(eval_batch_size), int(num_workers)
        self.drop_last = bool(drop_last)
        self.augment: nn.Module = NoAugment()  # subclasses set theirs
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._on_device: tuple[torch.device, torch.Tensor, torch.Tensor] | None = None

    # -- subclasses -------------------------------------------------------------------------
    def load(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Return ``{"train": (images, labels), "test": (images, labels)}`` — uint8 images
        ``(N, C, H, W)`` and int64 labels ``(N,)``."""
        raise NotImplementedError

    # -- Lightning hooks --------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if not self.splits:
            splits = self.load()
            if self.class_ids is not None and not self.selects_classes_on_load:
                splits = {
                    name: select_classes(*split, self.class_ids) for name, split in splits.items()
                }
            self.splits = splits
            self.normalize = Normalize(self.mean, self.std)

    def train_dataloader(self) -> dict[str, DataLoader]:
        images, labels = self.splits["train"]
        data = IndexedTensors(images, labels)
        return {
            f"m{m}": DataLoader(
                data,
                sampler=EpochBatchSampler(len(data), self.batch_size, seed, self.drop_last),
                batch_size=None,
                num_workers=self.num_workers,
                pin_memory=torch.cuda.is_available(),
                persistent_workers=self.num_workers > 0,
            )
            for m, seed in enumerate(self.seeds)
        }

    def eval_dataloader(self, split: str, indices: torch.Tensor | None = None) -> DataLoader:
        """Sequential, un-augmented uint8 batches ``{"x", "y"}`` of ``split`` (optionally only
        ``indices``) for feature extraction; map ``x`` with :meth:`eval_transform`."""
        if split not in self.splits:
            raise ValueError(f"unknown split {split!r}; available: {sorted(self.splits)}")
        images, labels = self.splits[split]
        idx = torch.arange(len(labels)) if indices is None else torch.as_tensor(indices)
        batches = list(torch.split(idx, self.eval_batch_size))
        return DataLoader(
            IndexedTensors(images, labels),
            sampler=batches,
            batch_size=None,
            pin_memory=torch.cuda.is_available(),
        )

    def eval_transform(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 ``(B, C, H, W)`` → normalised float, on ``x``'s device."""
        return self.normalize(x.float().div_(255.0))

    def train_split_on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The training images and labels on ``device`` (copied there once)."""
        if self._on_device is None or self._on_device[0] != device:
            images, labels = self.splits["train"]
            self._on_device = (device, images.to(device), labels.to(device))
        return self._on_device[1], self._on_device[2]

    def make_views(
        self, batch: dict, augment: nn.Module | None = None, views: int | None = None
    ) -> dict:
        """``{"idx": (B,), "seed": key}`` → ``{"views": (B, V, C, H, W) float, "y": (B,)}``, on
        the device of ``idx``; ``augment`` and ``views`` replace the training ones (the linear
        evaluation's crops).

        The ``B·V`` views are augmented in one call, row ``b·V + v`` being view ``v`` of sample
        ``idx[b]`` with its own random stream ``(key, idx[b], v)``
        (:class:`~ncib.data.counter_rng.SampleRNG`): a sample's views depend on the key, its
        index and the view index only, never on the other samples of the batch.
        """
        idx = batch["idx"]
        images, labels = self.train_split_on(idx.device)
        augment = self.augment if augment is None else augment
        b, v = len(idx), self.views if views is None else int(views)
        rows = idx.repeat_interleave(v)  # (B·V,): the views of a sample are adjacent
        view = torch.arange(v, device=idx.device).repeat(b)
        rng = SampleRNG(int(batch["seed"]), rows, view)
        x = images[rows].float().div_(255.0)
        made = self.normalize(augment(x, rng)).unflatten(0, (b, v))
        return {"views": made, "y": labels[idx]}

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        if isinstance(batch, dict) and all(
            isinstance(v, dict) and "seed" in v for v in batch.values()
        ):
            return {name: self.make_views(member) for name, member in batch.items()}
        return batch
