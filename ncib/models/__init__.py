"""Backbones, projection head and the LightningModules."""

from ncib.models.backbones import ConvNet, cifar_resnet
from ncib.models.heads import ProjectionHead
from ncib.models.linear_evaluator import LinearEvaluator
from ncib.models.supcon import Member, PairedSupCon

__all__ = ["ConvNet", "LinearEvaluator", "Member", "PairedSupCon", "ProjectionHead", "cifar_resnet"]
