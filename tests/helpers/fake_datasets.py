"""Tiny datasets written in the real on-disk formats, so the real readers are tested offline.

* CIFAR-10: ``<root>/cifar-10-batches-py/data_batch_1..5, test_batch`` (pickled dicts with
  bytes keys ``b"data"`` ``(N, 3072)`` uint8 channel-major and ``b"labels"``, like the
  official archive);
* CIFAR-100: ``<root>/cifar-100-python/train, test`` with ``b"fine_labels"`` and
  ``b"coarse_labels"``;
* ImageNet32: ``<root>/Imagenet32_train_npz/train_data_batch_1..10.npz`` and
  ``<root>/Imagenet32_val_npz/val_data.npz`` (keys ``data``, ``labels`` 1-based, ``mean``),
  or the pickle variant ``Imagenet32_train/train_data_batch_1..10``, ``Imagenet32_val/val_data``.

Image ``i`` of a split is :func:`pattern_image` ``(i)``, a known, asymmetric pattern, so a test
can check that pixels come back in the right place and channel.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

__all__ = ["pattern_image", "pattern_index", "write_cifar10", "write_cifar100", "write_imagenet32"]


def pattern_image(i: int) -> np.ndarray:
    """uint8 ``(3, 32, 32)``: red grows along columns, green along rows, blue is ``i mod 256``
    except its pixel (0, 0), ``i // 256`` (so :func:`pattern_index` recovers ``i < 65536``);
    pixel (0, 0) of the red plane is 255 so the corner is easy to find."""
    cols = np.arange(32, dtype=np.uint8) * 8
    img = np.empty((3, 32, 32), dtype=np.uint8)
    img[0] = cols[None, :]
    img[1] = cols[:, None]
    img[2] = i % 256
    img[2, 0, 0] = i // 256
    img[0, 0, 0] = 255
    return img


def pattern_index(img) -> int:
    """``i`` of :func:`pattern_image` ``(i)`` (a ``(3, 32, 32)`` array or tensor)."""
    return int(img[2, 0, 0]) * 256 + int(img[2, 1, 1])


def _images(n: int, offset: int = 0) -> np.ndarray:
    """``(n, 3072)`` rows in the files' order: all red, then green, then blue."""
    return np.stack([pattern_image(offset + i).reshape(-1) for i in range(n)])


def _labels(n: int, num_classes: int, seed: int) -> list[int]:
    """Classes ``0..num_classes-1`` in turn (balanced), shuffled with ``seed``; a Python list like
    the official pickles."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % num_classes
    return [int(v) for v in rng.permutation(labels)]


def _dump(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def write_cifar10(root, n_train: int = 50, n_test: int = 20, seed: int = 0) -> Path:
    """Fake CIFAR-10 under ``root``; the training images are split over the five batches."""
    folder = Path(root) / "cifar-10-batches-py"
    sizes = [len(part) for part in np.array_split(np.arange(n_train), 5)]
    labels = _labels(n_train, 10, seed + 1)
    offset = 0
    for b, size in enumerate(sizes, start=1):
        _dump(
            folder / f"data_batch_{b}",
            {
                b"batch_label": f"training batch {b} of 5".encode(),
                b"labels": labels[offset : offset + size],
                b"data": _images(size, offset),
                b"filenames": [f"img_{offset + i}.png".encode() for i in range(size)],
            },
        )
        offset += size
    _dump(
        folder / "test_batch",
        {
            b"batch_label": b"testing batch 1 of 1",
            b"labels": _labels(n_test, 10, seed),
            b"data": _images(n_test),
            b"filenames": [f"test_{i}.png".encode() for i in range(n_test)],
        },
    )
    _dump(folder / "batches.meta", {b"label_names": [f"class{k}".encode() for k in range(10)]})
    return folder


def write_cifar100(root, n_train: int = 50, n_test: int = 20, seed: int = 0) -> Path:
    """Fake CIFAR-100 under ``root``."""
    folder = Path(root) / "cifar-100-python"
    for name, n, s in (("train", n_train, seed + 1), ("test", n_test, seed)):
        fine = _labels(n, 100, s)
        _dump(
            folder / name,
            {
                b"filenames": [f"{name}_{i}.png".encode() for i in range(n)],
                b"batch_label": name.encode(),
                b"fine_labels": fine,
                b"coarse_labels": [v // 5 for v in fine],
                b"data": _images(n),
            },
        )
    _dump(folder / "meta", {b"fine_label_names": [f"c{k}".encode() for k in range(100)]})
    return folder


def write_imagenet32(
    root,
    n_train: int = 50,
    n_test: int = 20,
    num_classes: int = 1000,
    seed: int = 0,
    layout: str = "npz",
) -> Path:
    """Fake ImageNet32 under ``root`` (labels 1..``num_classes`` of 1000, 1-based);
    ``layout`` is ``"npz"`` or ``"pickle"``. The training images span the ten batch files."""
    root = Path(root)
    suffix = "_npz" if layout == "npz" else ""
    train_dir, val_dir = root / f"Imagenet32_train{suffix}", root / f"Imagenet32_val{suffix}"
    sizes = [len(part) for part in np.array_split(np.arange(n_train), 10)]

    def write(path: Path, data: np.ndarray, labels: list[int]) -> None:
        entry = {"data": data, "labels": labels, "mean": data.mean(0)}
        if layout == "npz":
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, **entry)
        else:
            _dump(path, entry)

    ext = ".npz" if layout == "npz" else ""
    labels = [v + 1 for v in _labels(n_train, num_classes, seed + 1)]
    offset = 0
    for b, size in enumerate(sizes, start=1):
        write(
            train_dir / f"train_data_batch_{b}{ext}",
            _images(size, offset),
            labels[offset : offset + size],
        )
        offset += size
    write(
        val_dir / f"val_data{ext}",
        _images(n_test),
        [v + 1 for v in _labels(n_test, num_classes, seed)],
    )
    return root
