"""Batched, per-sample seeded image augmentation on whatever device the batch is on.

Every random draw comes from a :class:`~ncib.data.counter_rng.SampleRNG`: row ``i`` of the
batch draws from its own stream, keyed by the member's seed and epoch and numbered by the
row's sample index and view, so each member draws its own augmentation randomness and an
image's view does not depend on the batch it is in (its size, the device count; docs/design.md
§5). A ``torch.Generator`` is accepted too, for one-off batches: a key is drawn from it and the
rows are numbered ``0..B−1``. Images arrive as floats in [0, 1] with shape
``(B, C, H, W)``.

Everything computed per image is computed by elementwise operations (no batched matmul, no
reduction whose order could follow the batch size), so an image's view is bit-for-bit the
same in a batch of any size on a given device type.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ncib.data.counter_rng import SampleRNG, as_sample_rng

__all__ = ["DigitsAugment", "Normalize", "affine_sampling_grid", "random_affine"]


def affine_sampling_grid(theta: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``F.affine_grid(theta, (B, ·, H, W), align_corners=False)`` by elementwise operations.

    ``theta`` ``(B, 2, 3)`` maps output pixel centres ``(x, y, 1)`` in normalised coordinates
    (``(2j + 1)/W − 1``) to input coordinates; returns the grid ``(B, H, W, 2)``. Unlike
    ``affine_grid`` (a batched matmul, whose kernel, summation order and TF32 use may change
    with the batch size) each entry is ``θ₀·x + θ₁·y + θ₂`` in float32, whatever the batch.
    """
    h, w = size
    dev, dtype = theta.device, theta.dtype
    xs = (
        ((torch.arange(w, device=dev, dtype=torch.float64) * 2 + 1) / w - 1).to(dtype).view(1, 1, w)
    )
    ys = (
        ((torch.arange(h, device=dev, dtype=torch.float64) * 2 + 1) / h - 1).to(dtype).view(1, h, 1)
    )
    t = theta[..., None, None]  # (B, 2, 3, 1, 1)
    gx = t[:, 0, 0] * xs + t[:, 0, 1] * ys + t[:, 0, 2]
    gy = t[:, 1, 0] * xs + t[:, 1, 1] * ys + t[:, 1, 2]
    return torch.stack([gx, gy], -1)


def random_affine(
    x: torch.Tensor,
    rng: SampleRNG | torch.Generator,
    degrees: float = 0.0,
    scale: tuple[float, float] = (1.0, 1.0),
    translate_px: float = 0.0,
    hflip_p: float = 0.0,
) -> torch.Tensor:
    """One random affine warp per image (rotation, isotropic scale, translation, flip).

    ``translate_px`` is the largest shift in pixels along each axis (like padding by that many
    pixels and cropping back at a random offset, but sub-pixel). Out-of-image pixels are 0.
    Takes one request of five uniforms per row from ``rng`` (one row per image).
    """
    b, _, h, w = x.shape
    u = as_sample_rng(rng, b, x.device).uniform(5)
    angle = (-degrees + 2 * degrees * u[:, 0]) * (math.pi / 180.0)
    s = scale[0] + (scale[1] - scale[0]) * u[:, 1]
    tx = (-translate_px + 2 * translate_px * u[:, 2]) * (2.0 / w)
    ty = (-translate_px + 2 * translate_px * u[:, 3]) * (2.0 / h)
    flip = torch.where(u[:, 4] < hflip_p, -1.0, 1.0)
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1
    )
    grid = affine_sampling_grid(theta.to(x.dtype), (h, w))
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

    def forward(self, x: torch.Tensor, rng: SampleRNG | torch.Generator) -> torch.Tensor:
        """``x`` ``(B, C, H, W)`` in [0, 1] → views of the same shape; ``rng`` has one row
        per image (two requests: the warp, then the noise)."""
        rng = as_sample_rng(rng, x.shape[0], x.device)
        x = random_affine(x, rng, self.degrees, self.scale, self.translate_px)
        if self.noise_std > 0:
            noise = rng.normal(x.shape[1:]).to(x.dtype)
            x = (x + self.noise_std * noise).clamp_(0.0, 1.0)
        return x
