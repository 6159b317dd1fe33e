"""Encoders. Each exposes ``feature_dim``; its output is the representation the analysis
studies (non-negative, like a ResNet's pooled features after the last ReLU)."""

from __future__ import annotations

import torchvision
from torch import nn

__all__ = ["ConvNet", "cifar_resnet"]


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class ConvNet(nn.Module):
    """A small CNN for 8×8 digits (works on any image size ≥ 4).

    conv(32) → conv(64) → 2×2 max-pool → conv(128) → conv(``feature_dim``) → global average
    pool. Every conv is followed by BatchNorm and ReLU, so the ``(B, feature_dim)`` output is
    a ReLU'd embedding.
    """

    def __init__(self, in_channels: int = 1, feature_dim: int = 128, width: int = 32):
        super().__init__()
        if feature_dim < 1 or width < 1:
            raise ValueError(f"feature_dim and width must be >= 1; got {feature_dim}, {width}")
        self.feature_dim = int(feature_dim)
        self.net = nn.Sequential(
            _conv_bn_relu(in_channels, width),
            _conv_bn_relu(width, 2 * width),
            nn.MaxPool2d(2),
            _conv_bn_relu(2 * width, 4 * width),
            _conv_bn_relu(4 * width, feature_dim),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )

    def forward(self, x):
        return self.net(x)


_RESNETS = {
    "resnet18": (torchvision.models.resnet18, 512),
    "resnet50": (torchvision.models.resnet50, 2048),
}


def cifar_resnet(name: str = "resnet50", in_channels: int = 3) -> nn.Module:
    """torchvision ResNet with the CIFAR stem (3×3 stride-1 first conv, no max-pool) and no
    classifier: output = pooled ``(B, 512 | 2048)`` features, non-negative."""
    if name not in _RESNETS:
        raise ValueError(f"unknown ResNet {name!r}; available: {sorted(_RESNETS)}")
    build, dim = _RESNETS[name]
    net = build(weights=None)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    net.fc = nn.Identity()
    net.feature_dim = dim
    return net
