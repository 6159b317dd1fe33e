"""LightningDataModules that feed both members of a seed pair (see ``base``)."""

from ncib.data.base import EpochBatchSampler, PairedViewDataModule
from ncib.data.digits import DigitsDataModule

__all__ = ["DigitsDataModule", "EpochBatchSampler", "PairedViewDataModule"]
