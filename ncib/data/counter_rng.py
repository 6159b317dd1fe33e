"""Counter-based random numbers for augmentation: every row of a batch draws from its own stream.

A row is one view of one sample. Its random numbers are a pure function of

    (key, sample index, view index, draw number)

and of nothing else: not of the other rows in the batch, their number, or their order. This is
what makes a member's views the same on one device or several (each device holds a slice of the
global batch, :mod:`ncib.data.base`).

**Generator.** Philox-4x32-10 (Salmon, Moraes, Dror & Shaw, *Parallel random numbers: as easy
as 1, 2, 3*, SC 2011), the generator behind cuRAND's and PyTorch's CUDA streams: a bijection
of a 128-bit counter ``(c0, c1, c2, c3)`` under a 64-bit key ``(k0, k1)``, ten rounds of

    (c0, c1, c2, c3) ← (hi(M1·c2) ⊕ c1 ⊕ k0,  lo(M1·c2),  hi(M0·c0) ⊕ c3 ⊕ k1,  lo(M0·c0))

with the key bumped by the Weyl constants ``(W0, W1)`` before every round but the first
(``hi``/``lo`` are the upper/lower 32 bits of the 64-bit product). Row ``r``'s ``j``-th group
of four 32-bit words in its ``c``-th request is Philox of the counter
``(j, c, index[r] mod 2³², view[r])``: distinct (sample, view, draw) are distinct counters,
so their words are distinct outputs of the bijection and, statistically, independent; a
different key (another member, another epoch) gives an unrelated stream.

**Integer arithmetic.** Words are held in ``int64`` tensors with values in ``[0, 2³²)``; the
32×32-bit products are split into a 32×16-bit pair (each below 2⁴⁸), so no intermediate
exceeds 2⁴⁹ and nothing relies on signed overflow, on any device. Everything is vectorised
over rows and draws: one request costs ~220 elementwise integer operations on tensors of
``rows × ⌈n/4⌉`` elements, whatever the batch size.

**Floats.** A uniform is the word's top 24 bits times 2⁻²⁴: exactly representable in float32,
in ``[0, 1 − 2⁻²⁴]``. Normals come from Box–Muller pairs ``√(−2 ln u₁)·(cos 2πu₂, sin 2πu₂)``
with ``u₁ ∈ (0, 1]`` (so tails are cut at ≈ 5.8σ).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["SampleRNG", "as_sample_rng", "philox4x32"]

_MASK = 0xFFFFFFFF
_M = (0xD2511F53, 0xCD9E8D57)  # Philox-4x32 multipliers
_W = (0x9E3779B9, 0xBB67AE85)  # Weyl key increments
_TO_UNIT = 2.0**-24


def _mulhilo(a, m: int):
    """Upper and lower 32 bits of ``a · m`` for words ``a`` (a tensor or an int) and a 32-bit
    constant ``m``, computed as ``a·m_lo + a·m_hi·2¹⁶`` without any value reaching 2⁴⁹."""
    lo_part = a * (m & 0xFFFF)  # < 2^48
    hi_part = a * (m >> 16)  # < 2^48
    t = lo_part + ((hi_part & 0xFFFF) << 16)  # < 2^49; a·m = t + (hi_part >> 16)·2^32
    return (hi_part >> 16) + (t >> 32), t & _MASK


def philox4x32(counter: Sequence[Tensor | int], key: int, rounds: int = 10) -> Tensor:
    """Philox-4x32-``rounds`` of ``counter`` (four words: integer tensors broadcast together,
    or ints) under the 64-bit ``key`` (``k0`` its low, ``k1`` its high 32 bits).

    Returns ``(*broadcast shape, 4)`` int64 words in ``[0, 2³²)``, on the counter tensors'
    device (the CPU if all words are ints). Int words stay Python ints until they meet a
    tensor, so no host-to-device copy (and no wait for the device) happens.
    """
    if len(counter) != 4:
        raise ValueError(f"counter must have 4 words; got {len(counter)}")
    tensors = [c for c in counter if isinstance(c, Tensor)]
    if not tensors:
        tensors = [torch.zeros((), dtype=torch.int64)]
    shape = torch.broadcast_shapes(*(t.shape for t in tensors))
    c0, c1, c2, c3 = (
        c.to(torch.int64) & _MASK if isinstance(c, Tensor) else int(c) & _MASK for c in counter
    )
    k0, k1 = int(key) & _MASK, (int(key) >> 32) & _MASK
    for r in range(rounds):
        if r:
            k0, k1 = (k0 + _W[0]) & _MASK, (k1 + _W[1]) & _MASK
        hi0, lo0 = _mulhilo(c0, _M[0])
        hi1, lo1 = _mulhilo(c2, _M[1])
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    like = tensors[0].new_zeros(shape, dtype=torch.int64)
    return torch.stack([like + c for c in (c0, c1, c2, c3)], -1)


def _numel(shape) -> tuple[tuple[int, ...], int]:
    shape = (int(shape),) if isinstance(shape, int) else tuple(int(s) for s in shape)
    return shape, math.prod(shape)


class SampleRNG:
    """Random draws for the rows of a batch, each row from its own counter-based stream.

    Every request (:meth:`bits`, :meth:`uniform`, :meth:`normal`) returns ``(rows, *shape)``
    and advances the request number ``c``; row ``r``'s values depend only on ``(key,
    index[r], view[r], c, position)`` (see the module docstring). Code that draws must
    therefore make the same requests in the same order for every batch — true of any
    deterministic augmentation — and take a fixed number of values per row.

    Args:
        key: 64-bit key (the member seed mixed with the epoch, :class:`~ncib.data.base.EpochBatchSampler`).
        index: ``(R,)`` integer sample indices (taken modulo 2³²), on the device to draw on.
        view: view index per row, ``(R,)`` or one int for all rows.
    """

    def __init__(self, key: int, index: Tensor, view: Tensor | int = 0):
        if index.ndim != 1 or index.dtype.is_floating_point or index.dtype == torch.bool:
            raise ValueError(
                f"index must be a 1-d integer tensor; got {index.dtype} of shape {tuple(index.shape)}"
            )
        self.key = int(key)
        self.index = index.to(torch.int64).unsqueeze(1)  # (R, 1)
        if isinstance(view, Tensor):
            if view.shape != index.shape:
                raise ValueError(
                    f"view must have the shape of index {tuple(index.shape)}; got {tuple(view.shape)}"
                )
            self.view: Tensor | int = view.to(device=index.device, dtype=torch.int64).unsqueeze(1)
        else:
            self.view = int(view)
        self._requests = 0

    @classmethod
    def from_generator(cls, generator: torch.Generator, rows: int, device=None) -> SampleRNG:
        """Rows ``0..rows−1`` under a key drawn from ``generator`` — for one-off batches (tests,
        notebooks). Unlike the training path the draws depend on the row's position."""
        key = int(
            torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item()
        )
        return cls(key, torch.arange(int(rows), device=device))

    @property
    def rows(self) -> int:
        return self.index.shape[0]

    @property
    def device(self) -> torch.device:
        return self.index.device

    def bits(self, shape) -> Tensor:
        """``(rows, *shape)`` int64 words, uniform on ``[0, 2³²)``."""
        shape, n = _numel(shape)
        blocks = -(-n // 4)
        j = torch.arange(blocks, device=self.device).unsqueeze(0)  # (1, blocks)
        words = philox4x32((j, self._requests, self.index, self.view), self.key)
        self._requests += 1
        return words.reshape(self.rows, 4 * blocks)[:, :n].reshape(self.rows, *shape)

    def uniform(self, shape=(), low: float = 0.0, high: float = 1.0) -> Tensor:
        """``(rows, *shape)`` float32 on ``[low, high)`` (24-bit resolution)."""
        u = (self.bits(shape) >> 8).to(torch.float32) * _TO_UNIT
        if (low, high) != (0.0, 1.0):
            u = low + (high - low) * u
        return u

    def normal(self, shape=()) -> Tensor:
        """``(rows, *shape)`` float32 standard normals (Box–Muller)."""
        shape, n = _numel(shape)
        pairs = -(-n // 2)
        w = self.bits((2, pairs)) >> 8
        u1 = (w[:, 0] + 1).to(torch.float32) * _TO_UNIT  # (0, 1]: log is finite
        u2 = w[:, 1].to(torch.float32) * _TO_UNIT
        r = torch.sqrt(-2.0 * torch.log(u1))
        angle = (2.0 * math.pi) * u2
        z = torch.cat([r * torch.cos(angle), r * torch.sin(angle)], 1)
        return z[:, :n].reshape(self.rows, *shape)

    def __repr__(self) -> str:
        return f"SampleRNG(key={self.key:#x}, rows={self.rows}, device={self.device}, requests={self._requests})"


def as_sample_rng(rng: SampleRNG | torch.Generator, rows: int, device) -> SampleRNG:
    """``rng`` itself (checked to have ``rows`` rows, moved to ``device``), or, for a
    ``torch.Generator``, :meth:`SampleRNG.from_generator`."""
    if isinstance(rng, torch.Generator):
        return SampleRNG.from_generator(rng, rows, device)
    if not isinstance(rng, SampleRNG):
        raise TypeError(f"expected a SampleRNG or a torch.Generator; got {type(rng).__name__}")
    if rng.rows != rows:
        raise ValueError(f"the SampleRNG has {rng.rows} rows but the batch has {rows} images")
    if device is not None:
        rng.index = rng.index.to(device)
        if isinstance(rng.view, Tensor):
            rng.view = rng.view.to(device)
    return rng
