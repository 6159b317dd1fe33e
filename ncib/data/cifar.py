"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009), read from the official python-pickle archives.

Expected layout under ``root`` (what ``torchvision.datasets.CIFAR10/100(root, download=True)``
leaves behind)::

    root/cifar-10-batches-py/data_batch_1 … data_batch_5, test_batch
    root/cifar-100-python/train, test

Each file is a pickled dict with ``b"data"`` (``N × 3072`` uint8, the red plane, then green,
then blue, each row-major 32 × 32) and ``b"labels"`` (CIFAR-10) or ``b"fine_labels"``
(CIFAR-100). Nothing is read before :meth:`load` (called by ``setup``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ncib.data.base import PairedViewDataModule
from ncib.data.safe_pickle import load_data_pickle
from ncib.data.supcon_augment import SupConAugment

__all__ = ["CIFAR10DataModule", "CIFAR100DataModule", "read_cifar_pickle"]


def read_cifar_pickle(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR pickle → uint8 images ``(N, 3, 32, 32)`` and int64 labels ``(N,)``; read with
    :func:`~ncib.data.safe_pickle.load_data_pickle`, which runs nothing from the file."""
    entry = load_data_pickle(
        path,
        "CIFAR",
        "delete the folder and fetch it again (dataset.datamodule.download=true)",
        encoding="bytes",
    )
    missing = [
        k.decode() for k in (b"data", label_key) if not isinstance(entry, dict) or k not in entry
    ]
    if missing:
        raise ValueError(f"{path} is not a CIFAR batch: it has no {', '.join(missing)} entry")
    data = np.asarray(entry[b"data"], dtype=np.uint8)
    labels = np.asarray(entry[label_key], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(data) != len(labels):
        raise ValueError(
            f"{path} is not a CIFAR batch: expected data of shape (N, 3072) and N labels, "
            f"got data {data.shape} and {len(labels)} labels"
        )
    return data.reshape(-1, 3, 32, 32), labels


class _CIFARDataModule(PairedViewDataModule):
    """Shared reader; subclasses name the folder, the files, the label key and the constants.

    Args:
        seeds: member seeds (``seed_pair``).
        root: folder that holds (or will hold) the extracted archive.
        download: fetch the archive with torchvision when it is missing (needs network).
        augment: keyword arguments of :class:`~ncib.data.supcon_augment.SupConAugment`.
        **kwargs: passed to :class:`~ncib.data.base.PairedViewDataModule`.
    """

    folder: str
    train_files: Sequence[str]
    test_files: Sequence[str]
    label_key: bytes
    torchvision_class: str

    def __init__(
        self,
        seeds: Sequence[int],
        root: str = "data",
        download: bool = False,
        augment: dict | None = None,
        **kwargs,
    ):
        super().__init__(seeds, **kwargs)
        self.root, self.download = Path(root).expanduser(), bool(download)
        self.augment = SupConAugment(**(augment or {}))

    @property
    def data_dir(self) -> Path:
        return self.root / self.folder

    def missing_files(self) -> list[str]:
        return [
            n for n in (*self.train_files, *self.test_files) if not (self.data_dir / n).is_file()
        ]

    def _fetch(self) -> None:
        import torchvision

        getattr(torchvision.datasets, self.torchvision_class)(
            str(self.root), train=True, download=True
        )

    def prepare_data(self) -> None:
        # Lightning calls this once per node before ``setup``: download here, not on every rank
        if self.download and self.missing_files():
            self._fetch()

    def load(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        missing = self.missing_files()
        if missing and self.download:
            self._fetch()
            missing = self.missing_files()
        if missing:
            what = (
                f"has no {self.folder}"
                if not self.data_dir.is_dir()
                else f"lacks {', '.join(missing)} in {self.folder}"
            )
            raise FileNotFoundError(
                f"dataset.datamodule.root={self.root} {what} (looked in {self.data_dir}); "
                f'download it with python -c "import torchvision; torchvision.datasets.'
                f"{self.torchvision_class}('{self.root}', download=True)\" or set "
                "dataset.datamodule.download=true (or point paths.data_dir / NCIB_DATA_DIR, or "
                "dataset.datamodule.root, at the folder that holds it)"
            )
        return {
            "train": self._read(self.train_files),
            "test": self._read(self.test_files),
        }

    def _read(self, names: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        parts = [read_cifar_pickle(self.data_dir / n, self.label_key) for n in names]
        images = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
        labels = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
        if labels.min() < 0 or labels.max() >= self.total_classes:
            raise ValueError(
                f"labels in {self.data_dir} outside 0..{self.total_classes - 1}: "
                f"found {labels.min()}..{labels.max()}"
            )
        return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels)


class CIFAR10DataModule(_CIFARDataModule):
    """CIFAR-10: 50,000 training and 10,000 test images, K = 10 (see the module docstring)."""

    total_classes = 10
    # the reference SupCon code's constants (main_supcon.py): the mean of the training pixels, and
    # a widely copied std that is not theirs (that is about 0.247, 0.243, 0.261); kept so that the
    # inputs match the paper's recipe exactly
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2023, 0.1994, 0.2010)
    folder = "cifar-10-batches-py"
    train_files = tuple(f"data_batch_{i}" for i in range(1, 6))
    test_files = ("test_batch",)
    label_key = b"labels"
    torchvision_class = "CIFAR10"


class CIFAR100DataModule(_CIFARDataModule):
    """CIFAR-100 with the 100 fine labels: 50,000 training and 10,000 test images."""

    total_classes = 100
    # the reference SupCon code's constants (main_supcon.py)
    mean = (0.5071, 0.4867, 0.4408)
    std = (0.2675, 0.2565, 0.2761)
    folder = "cifar-100-python"
    train_files = ("train",)
    test_files = ("test",)
    label_key = b"fine_labels"
    torchvision_class = "CIFAR100"
