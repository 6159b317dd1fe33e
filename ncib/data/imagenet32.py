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

**Memory-mapped, not copied per rank.** The first load writes the training images once as one
uint8 ``.npy`` file (``train_data.<fingerprint>.npy``, 3.9 GB) beside the training batches, or
in ``cache_dir``; its name carries a fingerprint of the batch files (names, sizes, modification
times), so changed batches get a new cache and the stale one is removed. It is written to a
temporary name and renamed (atomic), under a file lock so that the ranks of a job starting
together build it once. Every later load maps it read-only (``np.load(mmap_mode="r")``): the R
ranks of a node share the page cache instead of each holding 3.9 GB. Each rank then holds:

* the full training split (no class subset, no ``max_train_samples``): the mapping (the pages
  it touches are the node's shared page cache), the labels (int64, 10 MB) and, on a GPU, the
  uint8 copy on its device that the batched augmentation indexes (3.9 GB of GPU memory,
  ``train_split_on``);
* a class subset or ``max_train_samples``: its own in-memory copy of the chosen images only
  (read from the mapping);
* the validation split (50,000 images, 154 MB) in memory.

When the cache cannot be written (a read-only dataset folder and no ``cache_dir``) the images
are read into memory as before, with a warning.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import warnings
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ncib.data.base import PairedViewDataModule, stratified_subset
from ncib.data.safe_pickle import load_data_pickle
from ncib.data.supcon_augment import SupConAugment

__all__ = ["ImageNet32DataModule", "train_cache"]
log = logging.getLogger("ncib.data")
IMAGE_BYTES = 3 * 32 * 32

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


def _fingerprint(paths: Sequence[Path]) -> str:
    """16 hex digits that change when any of ``paths`` is renamed, resized or rewritten."""
    h = hashlib.sha1()
    for p in paths:
        st = p.stat()
        h.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _mapped(path: Path, rows: int) -> np.ndarray | None:
    """``path`` mapped read-only when it is a complete ``rows × 3072`` uint8 array, else None."""
    try:
        arr = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return None
    ok = arr.dtype == np.uint8 and arr.shape == (rows, IMAGE_BYTES)
    return arr if ok else None


def train_cache(
    paths: Sequence[Path], lengths: Sequence[int], cache_dir: str | Path | None = None
) -> np.ndarray | None:
    """The training images of ``paths`` (``lengths`` images each) as one read-only memory-mapped
    ``N × 3072`` uint8 array, written once as ``train_data.<fingerprint>.npy`` in ``cache_dir``
    (default: beside the batches) and mapped by every later call (module docstring).

    Built under an exclusive lock (ranks that start together wait for the first) into a
    temporary file renamed into place; caches of other fingerprints (stale) are removed after.
    Returns None, with a warning, when the cache cannot be written (read-only folder, full disk):
    the caller reads the images into memory instead.
    """
    folder = Path(cache_dir).expanduser() if cache_dir is not None else Path(paths[0]).parent
    target = folder / f"train_data.{_fingerprint(paths)}.npy"
    rows = int(sum(lengths))
    if target.is_file() and (arr := _mapped(target, rows)) is not None:
        return arr
    tmp = folder / f".{target.name}.{os.getpid()}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".train_data.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            if target.is_file() and (arr := _mapped(target, rows)) is not None:
                return arr  # another rank built it while this one waited
            log.info("ImageNet32: writing the training images once as %s (3.9 GB)", target)
            out = np.lib.format.open_memmap(
                tmp, mode="w+", dtype=np.uint8, shape=(rows, IMAGE_BYTES)
            )
            start = 0
            for path, length in zip(paths, lengths, strict=True):  # one batch in memory
                data = _read(path, ["data"])[0]
                if data.ndim != 2 or data.shape != (length, IMAGE_BYTES):
                    raise ValueError(
                        f"{path}: expected data of shape ({length}, 3072); got {data.shape}"
                    )
                out[start : start + length] = data
                start += length
            out.flush()
            del out
            os.replace(tmp, target)
            for old in folder.glob("train_data.*.npy"):
                if old != target:  # a stale cache (mapped elsewhere: unlinking is safe)
                    old.unlink(missing_ok=True)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        warnings.warn(
            f"ImageNet32: cannot write the memory-mapped training cache in {folder} "
            f"({type(err).__name__}: {err}); reading the training images into memory instead "
            "(3.9 GB per rank): set dataset.datamodule.cache_dir to a writable folder",
            stacklevel=2,
        )
        return None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    return _mapped(target, rows)


class ImageNet32DataModule(PairedViewDataModule):
    """ImageNet32 (see the module docstring for where the files go).

    Args:
        seeds: member seeds (``seed_pair``).
        root: folder that holds ``Imagenet32_train_npz`` and ``Imagenet32_val_npz``.
        max_train_samples: keep a stratified random subset of this many training images
            (after the class subset, ``classes``); ``None`` keeps all.
        subset_seed: seed of that subset (not a member seed: both members see the same data).
        augment: keyword arguments of :class:`~ncib.data.supcon_augment.SupConAugment`.
        cache_dir: folder of the memory-mapped training cache (:func:`train_cache`; used for
            the full training split); ``None``: beside the training batches.
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
        cache_dir: str | None = None,
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
        self.cache_dir = cache_dir

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
            "train": self._read_split(
                train_files, self.class_ids, self.max_train_samples, mapped=True
            ),
            "test": self._read_split([val_file], self.class_ids, None),
        }

    def _read_split(
        self,
        paths: list[Path],
        classes: np.ndarray | None,
        max_samples: int | None,
        mapped: bool = False,
    ):
        """Images and labels of the files ``paths``; ``mapped``: the full split comes from the
        memory-mapped cache (:func:`train_cache`), a subset is read into memory."""
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
        if mapped and len(chosen) == len(flat):  # the whole split: shared, not copied
            cache = train_cache(paths, [len(part) for part in labels], self.cache_dir)
            if cache is not None:
                with warnings.catch_warnings():  # read-only by design: nothing writes to it
                    warnings.filterwarnings("ignore", "The given NumPy array is not writable")
                    images = torch.from_numpy(cache.reshape(-1, 3, 32, 32))
                return images, torch.from_numpy(relabel[flat])
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
