"""Backbones, projection head and the LightningModules."""

from ncib.models.backbones import ConvNet, cifar_resnet
from ncib.models.heads import ProjectionHead
from ncib.models.probe import LinearProbe
from ncib.models.supcon import Member, PairedSupCon

__all__ = ["ConvNet", "LinearProbe", "Member", "PairedSupCon", "ProjectionHead", "cifar_resnet"]
