"""scikit-learn's handwritten digits (1,797 real 8×8 grayscale images, K = 10): the bundled,
offline default. The images ship inside scikit-learn, so nothing is downloaded."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ncib.data.augment import DigitsAugment
from ncib.data.base import PairedViewDataModule

__all__ = ["DigitsDataModule"]


class DigitsDataModule(PairedViewDataModule):
    """Digits with a stratified train/test split fixed by ``split_seed`` (not by the member
    seeds, so both members see the same split).

    Args:
        seeds: member seeds (``seed_pair``).
        test_fraction: share of each class held out for testing.
        split_seed: seed of the stratified split.
        augment: keyword arguments of :class:`~ncib.data.augment.DigitsAugment`.
        **kwargs: passed to :class:`~ncib.data.base.PairedViewDataModule`.
    """

    total_classes = 10

    def __init__(
        self,
        seeds: Sequence[int],
        test_fraction: float = 0.2,
        split_seed: int = 0,
        augment: dict | None = None,
        **kwargs,
    ):
        super().__init__(seeds, **kwargs)
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1); got {test_fraction}")
        self.test_fraction, self.split_seed = float(test_fraction), int(split_seed)
        self.augment = DigitsAugment(**(augment or {}))

    def load(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        # pixel values are 0..16; store as uint8 0..255 like every other dataset
        images = torch.from_numpy(digits.images * (255.0 / 16.0)).round().to(torch.uint8)
        images = images.unsqueeze(1)  # (N, 1, 8, 8)
        labels = torch.from_numpy(digits.target).long()
        tr, te = train_test_split(
            torch.arange(len(labels)).numpy(),
            test_size=self.test_fraction,
            stratify=labels.numpy(),
            random_state=self.split_seed,
        )
        tr, te = torch.from_numpy(tr), torch.from_numpy(te)
        train_float = images[tr].float() / 255.0
        self.mean, self.std = [train_float.mean().item()], [train_float.std().item()]
        return {"train": (images[tr], labels[tr]), "test": (images[te], labels[te])}
