"""Backbones, heads and the LightningModules: the paired encoders under each objective."""

from ncib.models.backbones import ConvNet, cifar_resnet
from ncib.models.classifier import PairedClassifier
from ncib.models.heads import ProjectionHead
from ncib.models.linear_evaluator import LinearEvaluator
from ncib.models.paired import Member, PairedEncoders
from ncib.models.supcon import PairedSupCon

__all__ = [
    "ConvNet",
    "LinearEvaluator",
    "Member",
    "PairedClassifier",
    "PairedEncoders",
    "PairedSupCon",
    "ProjectionHead",
    "cifar_resnet",
]
