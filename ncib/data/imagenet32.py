"""ImageNet32: ImageNet-1k downsampled to 32 × 32 (Chrabaszcz, Loshchilov & Hutter 2017).

1,281,167 training and 50,000 validation images (the validation set is the test split here),
K = 1000. The files come from https://image-net.org/download-images ("Downsampled ImageNet
32x32"; needs an ImageNet account) and are never downloaded by ncib. Expected layout under
``root`` (the npz archives, or the older pickle ones)::

    root/Imagenet32_train_npz/train_data_batch_1.npz … train_data_batch_10.npz
    root/Imagenet32_val_npz/val_data.npz
    # or: root/Imagenet32_train/train_data_batch_1 … 10, root/Imagenet32_val/val_data

Each file holds ``data`` (``N × 3072`` uint8, channel-major like CIFAR) and ``labels``
(1..1000; converted to 0..999). All 1.28 M training images take 3.9 GB as uint8.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ncib.data.base import PairedViewDataModule, stratified_subset
from ncib.data.safe_pickle import load_data_pickle
from ncib.data.supcon_augment import SupConAugment

__all__ = ["ImageNet32DataModule"]

_LAYOUTS = {  # name → (train folder, train files, val folder, val file)
    "npz": (
        "Imagenet32_train_npz",
        [f"train_data_batch_{i}.npz" for i in range(1, 11)],
        "Imagenet32_val_npz",
        "val_data.npz",
    ),
    "pickle": (
        "Imagenet32_train",
        [f"train_data_batch_{i}" for i in range(1, 11)],
        "Imagenet32_val",
        "val_data",
    ),
}


def _read(path: Path, keys: Sequence[str]) -> list[np.ndarray]:
    """The arrays ``keys`` of one ImageNet32 batch file (npz or pickle), with errors that name
    the file and what was wrong."""
    try:
        if path.suffix == ".npz":
            with np.load(path) as f:
                missing = [k for k in keys if k not in f.files]
                if missing:
                    raise ValueError(
                        f"{path} is not an ImageNet32 batch: it has no {', '.join(missing)} "
                        f"(found {', '.join(f.files) or 'nothing'}; expected data and labels)"
                    )
                return [f[k] for k in keys]
        fix = "download it again"
        try:  # runs nothing from the file (ncib/data/safe_pickle.py)
            entry = load_data_pickle(path, "ImageNet32", fix)
        except UnicodeDecodeError:  # written by Python 2
            entry = load_data_pickle(path, "ImageNet32", fix, encoding="latin1")
    except ValueError as err:
        if str(path) in str(err):
            raise
        raise ValueError(  # e.g. numpy refusing an npz of Python objects
            f"{path} is not a readable ImageNet32 batch ({err}); download it again"
        ) from err
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise ValueError(
            f"{path} is not a readable ImageNet32 batch ({type(err).__name__}: {err}); the file "
            "is truncated or corrupt — download it again"
        ) from err
    found = (
        {k: entry.get(k, entry.get(k.encode())) for k in keys} if isinstance(entry, dict) else {}
    )
    missing = [k for k in keys if found.get(k) is None]
    if missing:
        raise ValueError(f"{path} is not an ImageNet32 batch: it has no {', '.join(missing)} entry")
    return [np.asarray(found[k]) for k in keys]


class ImageNet32DataModule(PairedViewDataModule):
    """ImageNet32 (see the module docstring for where the files go).

    Args:
        seeds: member seeds (``seed_pair``).
        root: folder that holds ``Imagenet32_train_npz`` and ``Imagenet32_val_npz``.
        max_train_samples: keep a stratified random subset of this many training images
            (after the class subset, ``classes``); ``None`` keeps all.
        subset_seed: seed of that subset (not a member seed: both members see the same data).
        augment: keyword arguments of :class:`~ncib.data.supcon_augment.SupConAugment`.
        **kwargs: passed to :class:`~ncib.data.base.PairedViewDataModule`.
    """

    total_classes = 1000
    mean = (0.485, 0.456, 0.406)  # the usual ImageNet constants
    std = (0.229, 0.224, 0.225)
    selects_classes_on_load = True  # a class subset reads only its classes' images

    def __init__(
        self,
        seeds: Sequence[int],
        root: str = "data",
        max_train_samples: int | None = None,
        subset_seed: int = 0,
        augment: dict | None = None,
        **kwargs,
    ):
        super().__init__(seeds, **kwargs)
        if max_train_samples is not None and max_train_samples < self.num_classes:
            raise ValueError(
                f"max_train_samples={max_train_samples} is fewer than one image per class "
                f"({self.num_classes} classes); choose at least {self.num_classes} or null for all"
            )
        self.root = Path(root).expanduser()
        self.max_train_samples, self.subset_seed = max_train_samples, int(subset_seed)
        self.augment = SupConAugment(**(augment or {}))

    def files(self) -> tuple[list[Path], Path]:
        """The training files and the validation file of the first complete layout."""
        for train_dir, train_names, val_dir, val_name in _LAYOUTS.values():
            train = [self.root / train_dir / n for n in train_names]
            val = self.root / val_dir / val_name
            if all(p.is_file() for p in [*train, val]):
                return train, val
        train_dir, train_names, val_dir, val_name = _LAYOUTS["npz"]
        missing = [
            str(p.relative_to(self.root))
            for p in [
                *(self.root / train_dir / n for n in train_names),
                self.root / val_dir / val_name,
            ]
            if not p.is_file()
        ]
        raise FileNotFoundError(
            f"dataset.datamodule.root={self.root} has no complete ImageNet32 (missing "
            f"{', '.join(missing[:3])}{' …' if len(missing) > 3 else ''}); expected "
            f"{train_dir}/train_data_batch_1..10.npz and {val_dir}/{val_name} there. Get "
            "'Downsampled ImageNet 32x32' (npz) from https://image-net.org/download-images "
            "(needs an ImageNet account), unpack it into that folder, or point "
            "paths.data_dir / NCIB_DATA_DIR or dataset.datamodule.root at it"
        )

    def load(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        train_files, val_file = self.files()
        return {
            "train": self._read_split(train_files, self.class_ids, self.max_train_samples),
            "test": self._read_split([val_file], self.class_ids, None),
        }

    def _read_split(self, paths: list[Path], classes: np.ndarray | None, max_samples: int | None):
        labels = [_read(p, ["labels"])[0].astype(np.int64) - 1 for p in paths]
        flat = np.concatenate(labels)
        if flat.min() < 0 or flat.max() > 999:
            raise ValueError(
                f"ImageNet32 labels must be 1..1000; found {flat.min() + 1}..{flat.max() + 1} in {paths[0].parent}"
            )
        relabel = np.full(1000, -1, dtype=np.int64)
        if classes is None:
            relabel[:] = np.arange(1000)
        else:
            relabel[classes] = np.arange(len(classes))
        chosen = np.flatnonzero(relabel[flat] >= 0)
        if max_samples is not None and max_samples < len(chosen):
            chosen = chosen[stratified_subset(relabel[flat[chosen]], max_samples, self.subset_seed)]
        images = np.empty((len(chosen), 3 * 32 * 32), dtype=np.uint8)
        start, filled = 0, 0
        for path, part in zip(paths, labels):  # one file in memory at a time
            rows = chosen[(chosen >= start) & (chosen < start + len(part))] - start
            if len(rows):
                data = _read(path, ["data"])[0]
                if data.ndim != 2 or data.shape != (len(part), 3 * 32 * 32):
                    raise ValueError(
                        f"{path}: expected data of shape ({len(part)}, 3072); got {data.shape}"
                    )
                images[filled : filled + len(rows)] = data[rows]
                filled += len(rows)
            start += len(part)
        return (
            torch.from_numpy(images.reshape(-1, 3, 32, 32)),
            torch.from_numpy(relabel[flat[chosen]]),
        )
