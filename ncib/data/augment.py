"""Batched, seeded image augmentation on whatever device the batch is on.

Every random draw takes an explicit ``torch.Generator`` so that each member of a seed pair
draws its own augmentation randomness (docs/design.md §5) and a batch's views can be reproduced
from its seed alone. Images arrive as floats in [0, 1] with shape ``(B, C, H, W)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DigitsAugment", "Normalize", "random_affine", "uniform"]


def uniform(shape, low: float, high: float, generator: torch.Generator, device) -> torch.Tensor:
    """``U(low, high)`` samples of ``shape`` drawn from ``generator``."""
    return low + (high - low) * torch.rand(shape, generator=generator, device=device)


def random_affine(
    x: torch.Tensor,
    generator: torch.Generator,
    degrees: float = 0.0,
    scale: tuple[float, float] = (1.0, 1.0),
    translate_px: float = 0.0,
    hflip_p: float = 0.0,
) -> torch.Tensor:
    """One random affine warp per image (rotation, isotropic scale, translation, flip).

    ``translate_px`` is the largest shift in pixels along each axis (like padding by that many
    pixels and cropping back at a random offset, but sub-pixel). Out-of-image pixels are 0.
    """
    b, _, h, w = x.shape
    dev = x.device
    angle = uniform(b, -degrees, degrees, generator, dev) * (math.pi / 180.0)
    s = uniform(b, scale[0], scale[1], generator, dev)
    tx = uniform(b, -translate_px, translate_px, generator, dev) * (2.0 / w)
    ty = uniform(b, -translate_px, translate_px, generator, dev) * (2.0 / h)
    flip = torch.where(torch.rand(b, generator=generator, device=dev) < hflip_p, -1.0, 1.0)
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1
    )
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std``."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x)) / self.std.to(x)


class DigitsAugment(nn.Module):
    """Views of 8×8 grayscale digits: small affine warp, sub-pixel shift, light noise.

    Flips are left out on purpose: a mirrored digit can be another digit.
    """

    def __init__(
        self,
        degrees: float = 12.0,
        scale: tuple[float, float] = (0.9, 1.1),
        translate_px: float = 1.0,
        noise_std: float = 0.05,
    ):
        super().__init__()
        self.degrees, self.scale = float(degrees), tuple(scale)
        self.translate_px, self.noise_std = float(translate_px), float(noise_std)

    def forward(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        x = random_affine(x, generator, self.degrees, self.scale, self.translate_px)
        if self.noise_std > 0:
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            x = (x + self.noise_std * noise).clamp_(0.0, 1.0)
        return x
