"""LightningDataModules that feed both members of a seed pair (see ``base``)."""

from ncib.data.base import EpochBatchSampler, PairedViewDataModule
from ncib.data.cifar import CIFAR10DataModule, CIFAR100DataModule
from ncib.data.digits import DigitsDataModule
from ncib.data.imagenet32 import ImageNet32DataModule
from ncib.data.supcon_augment import SupConAugment

__all__ = [
    "CIFAR10DataModule",
    "CIFAR100DataModule",
    "DigitsDataModule",
    "EpochBatchSampler",
    "ImageNet32DataModule",
    "PairedViewDataModule",
    "SupConAugment",
]
