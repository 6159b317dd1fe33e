"""SupCon's colour-image augmentation, batched on the batch's device (docs/design.md §5).

``RandomResizedCrop(size, scale=(0.2, 1), ratio=(3/4, 4/3))`` → horizontal flip (p = 0.5) →
``ColorJitter(0.4, 0.4, 0.4, 0.1)`` (p = 0.8) → grayscale (p = 0.2), as in Khosla et al. (2020),
but one random draw per *sample* for the whole batch at once: the crop and the flip are one
affine ``grid_sample`` per image, the colour operations are vectorised over per-sample factors.
Every draw comes from the :class:`~ncib.data.counter_rng.SampleRNG` passed in, one stream per
row (image), so an image's view follows from its key, sample index and view index alone, not
from the batch around it (:meth:`ncib.data.base.PairedViewDataModule.make_views`); the only
reduction across pixels (the contrast's mean luma) is a fixed pairwise sum, so that holds
bit for bit.

Differences from torchvision, on purpose:

* crop sizes and offsets are continuous (sub-pixel, bilinear) rather than whole pixels; the
  ten tries for a crop inside the image are drawn at once, the first fitting one is used and,
  as in torchvision, the fallback is the central crop with the ratio clamped to ``ratio``;
* like ``ColorJitter`` the four jitter operations run in a random order, drawn per sample
  (``random_order=False`` fixes it to brightness → contrast → saturation → hue, which is
  cheaper: each stage of the random order evaluates all four operations and selects);
* the hue shift goes through a vectorised RGB → HSV → RGB conversion written here.

The single operations (``adjust_*``, ``rgb_to_grayscale``) take a factor per sample and match
``torchvision.transforms.v2.functional`` on float images (luma weights 0.2989/0.587/0.114).
Images are floats in [0, 1], ``(B, 3, H, W)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ncib.data.augment import affine_sampling_grid
from ncib.data.counter_rng import SampleRNG, as_sample_rng

__all__ = [
    "SupConAugment",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "crop_boxes_from_uniforms",
    "hsv_to_rgb",
    "image_mean",
    "random_resized_crop_boxes",
    "resized_crop",
    "rgb_to_grayscale",
    "rgb_to_hsv",
]

_LUMA = (0.2989, 0.587, 0.114)  # torchvision's tensor kernels (ITU-R 601-2, rounded)


def _per_sample(f: Tensor, x: Tensor) -> Tensor:
    return torch.as_tensor(f, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)


def rgb_to_grayscale(x: Tensor) -> Tensor:
    """Luma ``(B, 1, H, W)`` of RGB ``(B, 3, H, W)``."""
    r, g, b = x.unbind(1)
    return (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).unsqueeze(1)


def _blend(x: Tensor, other: Tensor, factor: Tensor) -> Tensor:
    f = _per_sample(factor, x)
    return (f * x + (1 - f) * other).clamp_(0.0, 1.0)


def adjust_brightness(x: Tensor, factor: Tensor) -> Tensor:
    """``x · factor`` clipped to [0, 1]; ``factor`` ``(B,)``."""
    return (x * _per_sample(factor, x)).clamp_(0.0, 1.0)


def image_mean(x: Tensor) -> Tensor:
    """Mean ``(B, 1, 1, 1)`` over all but the first dimension of ``x`` ``(B, ...)``, by a fixed
    pairwise sum of elementwise additions (zero-padded to a power of two): each image's mean
    is bit-for-bit the same in a batch of any size, which a reduction kernel — whose order
    may follow the number of outputs — does not promise."""
    t = x.flatten(1)
    n = t.shape[1]
    width = 1 << max(n - 1, 0).bit_length()
    if width != n:
        t = F.pad(t, (0, width - n))
    while t.shape[1] > 1:
        half = t.shape[1] // 2
        t = t[:, :half] + t[:, half:]
    return (t / n).view(-1, *([1] * (x.ndim - 1)))


def adjust_contrast(x: Tensor, factor: Tensor) -> Tensor:
    """Blend with the image's mean luma (one scalar per image)."""
    return _blend(x, image_mean(rgb_to_grayscale(x)), factor)


def adjust_saturation(x: Tensor, factor: Tensor) -> Tensor:
    """Blend with the image's luma (per pixel)."""
    return _blend(x, rgb_to_grayscale(x), factor)


def rgb_to_hsv(x: Tensor) -> Tensor:
    """RGB → HSV, all channels in [0, 1]; hue 0 (and saturation 0) for grey pixels.

    Hue is the hexcone angle / 360°: with chroma ``c = max − min`` it is ``(g − b)/c mod 6``
    where red is the largest channel, ``(b − r)/c + 2`` where green is, ``(r − g)/c + 4``
    where blue is (ties resolved in that order), divided by 6.
    """
    r, g, b = x.unbind(1)
    v, _ = x.max(1)
    c = v - x.min(1).values
    grey = c == 0
    c_safe = torch.where(grey, torch.ones_like(c), c)
    s = torch.where(v > 0, c / torch.where(v > 0, v, torch.ones_like(v)), torch.zeros_like(v))
    h = torch.where(
        v == r,
        torch.remainder((g - b) / c_safe, 6.0),
        torch.where(v == g, (b - r) / c_safe + 2.0, (r - g) / c_safe + 4.0),
    )
    h = torch.where(grey, torch.zeros_like(h), h) / 6.0
    return torch.stack([h, s, v], 1)


def hsv_to_rgb(hsv: Tensor) -> Tensor:
    """HSV → RGB by the closed form ``f(n) = v − v·s·clamp(min(k, 4 − k), 0, 1)`` with
    ``k = (n + 6h) mod 6`` and ``n = 5, 3, 1`` for red, green, blue."""
    h, s, v = hsv[:, 0:1], hsv[:, 1:2], hsv[:, 2:3]
    n = torch.tensor([5.0, 3.0, 1.0], dtype=hsv.dtype, device=hsv.device).view(1, 3, 1, 1)
    k = torch.remainder(n + 6.0 * h, 6.0)
    return (v - v * s * torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)).clamp_(0.0, 1.0)


def adjust_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate the hue by ``shift`` ``(B,)`` turns (in [−0.5, 0.5])."""
    hsv = rgb_to_hsv(x)
    h = torch.remainder(hsv[:, 0:1] + _per_sample(shift, x), 1.0)
    return hsv_to_rgb(torch.cat([h, hsv[:, 1:]], 1))


def random_resized_crop_boxes(
    b: int,
    h: int,
    w: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    rng: SampleRNG | torch.Generator,
    device,
    tries: int = 10,
) -> Tensor:
    """Crop boxes ``(B, 4)`` = ``(x0, y0, width, height)`` in pixels, as RandomResizedCrop
    draws them: area fraction ~ U(scale), log aspect ratio ~ U(log ratio), position uniform.
    Takes one request of ``2·tries + 2`` uniforms per row from ``rng``."""
    return crop_boxes_from_uniforms(
        as_sample_rng(rng, b, device).uniform(2 * tries + 2), h, w, scale, ratio
    )


def crop_boxes_from_uniforms(
    u: Tensor,
    h: int,
    w: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
) -> Tensor:
    """:func:`random_resized_crop_boxes` from its uniforms ``u`` ``(B, 2·tries + 2)``: area
    fractions, log aspect ratios (``tries`` each), then the position."""
    tries = (u.shape[1] - 2) // 2
    area = (scale[0] + (scale[1] - scale[0]) * u[:, :tries]) * (h * w)
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    aspect = torch.exp(log_r[0] + (log_r[1] - log_r[0]) * u[:, tries : 2 * tries])
    cw, ch = torch.sqrt(area * aspect), torch.sqrt(area / aspect)
    fits = (cw <= w) & (ch <= h)
    first = fits.to(torch.uint8).argmax(1, keepdim=True)  # first fitting try (0 if none)
    cw, ch = cw.gather(1, first).squeeze(1), ch.gather(1, first).squeeze(1)
    # fallback: the central crop with the image's aspect ratio clamped into ``ratio``
    in_ratio = w / h
    fw, fh = float(w), float(h)
    if in_ratio < ratio[0]:
        fh = w / ratio[0]
    elif in_ratio > ratio[1]:
        fw = h * ratio[1]
    none = ~fits.any(1)
    cw = torch.where(none, torch.full_like(cw, fw), cw)
    ch = torch.where(none, torch.full_like(ch, fh), ch)
    pos = u[:, 2 * tries :]
    x0 = torch.where(none, (w - cw) / 2, pos[:, 0] * (w - cw))
    y0 = torch.where(none, (h - ch) / 2, pos[:, 1] * (h - ch))
    return torch.stack([x0, y0, cw, ch], 1)


def resized_crop(x: Tensor, boxes: Tensor, size: int, flip: Tensor | None = None) -> Tensor:
    """Bilinear resize of each box of ``boxes`` ``(B, 4)`` (pixel units, see
    :func:`random_resized_crop_boxes`) to ``size × size``, mirrored where ``flip`` ``(B,)``."""
    b, c, h, w = x.shape
    x0, y0, cw, ch = boxes.to(x.dtype).unbind(1)
    # normalised coordinates (align_corners=False): pixel edges at −1 and +1
    sx, sy = cw / w, ch / h
    if flip is not None:
        sx = torch.where(flip, -sx, sx)
    tx, ty = (2 * x0 + cw) / w - 1, (2 * y0 + ch) / h - 1
    zero = torch.zeros_like(sx)
    theta = torch.stack([torch.stack([sx, zero, tx], 1), torch.stack([zero, sy, ty], 1)], 1)
    grid = affine_sampling_grid(theta, (size, size))
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


_JITTER = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


class SupConAugment(nn.Module):
    """SupCon's augmentation for 3-channel images, one random draw per sample.

    Args:
        size: output side length.
        scale, ratio: RandomResizedCrop's area-fraction and aspect-ratio ranges.
        hflip_p: probability of a horizontal flip.
        brightness, contrast, saturation, hue: ColorJitter strengths (factors drawn from
            ``[max(0, 1 − s), 1 + s]``; hue shift from ``[−hue, hue]``).
        jitter_p: probability of applying the colour jitter.
        grayscale_p: probability of converting to grayscale (after the jitter).
        random_order: jitter operations in a random order per sample (as torchvision's
            ColorJitter) rather than brightness → contrast → saturation → hue.
    """

    def __init__(
        self,
        size: int = 32,
        scale: tuple[float, float] = (0.2, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        hflip_p: float = 0.5,
        brightness: float = 0.4,
        contrast: float = 0.4,
        saturation: float = 0.4,
        hue: float = 0.1,
        jitter_p: float = 0.8,
        grayscale_p: float = 0.2,
        random_order: bool = True,
    ):
        super().__init__()
        if not 0 < scale[0] <= scale[1] <= 1 or not 0 < ratio[0] <= ratio[1]:
            raise ValueError(
                f"need 0 < scale[0] <= scale[1] <= 1 and 0 < ratio[0] <= ratio[1]; got {scale}, {ratio}"
            )
        if not 0 <= hue <= 0.5:
            raise ValueError(f"hue must be in [0, 0.5]; got {hue}")
        self.size, self.scale, self.ratio = int(size), tuple(scale), tuple(ratio)
        self.hflip_p, self.jitter_p, self.grayscale_p = (
            float(hflip_p),
            float(jitter_p),
            float(grayscale_p),
        )
        self.strengths = (float(brightness), float(contrast), float(saturation))
        self.hue, self.random_order = float(hue), bool(random_order)

    def sample_params(self, shape, rng: SampleRNG | torch.Generator, device) -> dict[str, Tensor]:
        """All random draws for a batch of ``shape`` ``(B, 3, H, W)``, on ``device``: one
        request of 33 uniforms per row of ``rng`` (22 for the crop's ten tries and position,
        then the flip, jitter and grayscale coins, the four jitter factors and the four order
        keys)."""
        b, _, h, w = shape
        u = as_sample_rng(rng, b, device).uniform(22 + 11)
        params = {"boxes": crop_boxes_from_uniforms(u[:, :22], h, w, self.scale, self.ratio)}
        u = u[:, 22:]
        params["flip"] = u[:, 0] < self.hflip_p
        params["jitter"] = u[:, 1] < self.jitter_p
        params["gray"] = u[:, 2] < self.grayscale_p
        ranges = [(max(0.0, 1 - s), 1 + s) for s in self.strengths] + [(-self.hue, self.hue)]
        factors = [lo + (hi - lo) * u[:, 3 + k] for k, (lo, hi) in enumerate(ranges)]
        params["factors"] = torch.stack(factors, 1)  # (B, 4): brightness, contrast, saturation, hue
        # a stable sort: ties (equal keys) are broken by position on every device and batch size
        order = u[:, 7:11].argsort(dim=1, stable=True)
        params["order"] = (
            order if self.random_order else torch.arange(4, device=u.device).expand(b, 4)
        )
        return params

    def apply(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        """The augmentation with the given draws (see :meth:`sample_params`)."""
        x = resized_crop(x, params["boxes"], self.size, params["flip"])
        factors, order = params["factors"], params["order"]
        jittered = x
        for stage in range(4):
            if not self.random_order:
                jittered = _JITTER[stage](jittered, factors[:, stage])
                continue
            out = jittered
            for k, op in enumerate(_JITTER):
                chosen = (order[:, stage] == k).view(-1, 1, 1, 1)
                out = torch.where(chosen, op(jittered, factors[:, k]), out)
            jittered = out
        x = torch.where(params["jitter"].view(-1, 1, 1, 1), jittered, x)
        return torch.where(params["gray"].view(-1, 1, 1, 1), rgb_to_grayscale(x).expand_as(x), x)

    def forward(self, x: Tensor, rng: SampleRNG | torch.Generator) -> Tensor:
        """``x`` ``(B, 3, H, W)`` in [0, 1] → views ``(B, 3, size, size)``; ``rng`` has one row
        per image."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(
                f"SupConAugment needs RGB images (B, 3, H, W); got shape {tuple(x.shape)}"
            )
        return self.apply(x, self.sample_params(x.shape, rng, x.device))

    def extra_repr(self) -> str:
        return (
            f"size={self.size}, scale={self.scale}, ratio={self.ratio}, hflip_p={self.hflip_p}, "
            f"jitter={self.strengths + (self.hue,)}, jitter_p={self.jitter_p}, "
            f"grayscale_p={self.grayscale_p}, random_order={self.random_order}"
        )
