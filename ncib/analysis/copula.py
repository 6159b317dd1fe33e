"""Normal scores: the Gaussian copula transform of each feature column (docs/math.md §2).

Per column ``u = rank/(N+1)`` with average ranks for ties and ``g = Φ⁻¹(u)``; values scored
against a reference column use ``u(x) = (#{ref < x} + ½·#{ref = x} + ½)/(N_ref+1)``, which
equals ``rank/(N_ref+1)`` on a reference point (paper §2.3.1, the meta-Gaussian IB of
Rey & Roth 2012 works on these ranked features).

Both cases reduce to the integer ``j = #{ref < x} + #{ref <= x} + 1`` ("twice the rank"):
``u = j / (2(N_ref+1))``. One sort per column of the reference values together with the
values to score gives both counts (cumulative reference counts at the borders of each run of
equal values), and ``Φ⁻¹`` is read from a table of the ``2N_ref+3`` possible values, so the
self transform and reference scoring of the reference give bit-identical results.
Columns are processed in blocks to bound memory; there are no per-sample Python loops.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._checks import check_matrix

__all__ = ["normal_scores", "normal_scores_train_test"]

_BLOCK_ELEMENTS = 8 * 2**20  # values sorted at once (columns × rows)


def _order_keys_(x: Tensor) -> Tensor:
    """Reinterpret float32/float64 ``x`` in place as integers with the same order and ties.

    IEEE bit patterns order like signed integers for non-negative values; negative values
    get their magnitude bits flipped. NaN and ±inf map beyond the keys of all finite values.
    """
    x.add_(0.0)  # -0.0 -> +0.0 so that the two zeros tie
    if x.dtype == torch.float64:
        bits, width, flip = x.view(torch.int64), 63, 0x7FFFFFFFFFFFFFFF
    else:
        bits, width, flip = x.view(torch.int32), 31, 0x7FFFFFFF
    mask = bits >> width  # -1 for negative values, 0 otherwise
    mask &= flip
    bits ^= mask
    return bits


def _infinity_keys(dtype: torch.dtype, device: torch.device) -> tuple[int, int]:
    keys = _order_keys_(torch.tensor([-math.inf, math.inf], dtype=dtype, device=device))
    return int(keys[0]), int(keys[1])


def _block_scores(keys: Tensor, n_ref: int, table: Tensor) -> Tensor:
    """``table[#{ref < x} + #{ref <= x} + 1]`` for every entry of ``keys (b, L)``.

    The first ``n_ref`` entries of each row are the reference values.
    """
    b, length = keys.shape
    sorted_keys, order = torch.sort(keys, dim=1)
    lowest, highest = _infinity_keys(
        torch.float64 if keys.dtype == torch.int64 else torch.float32, keys.device
    )
    if bool((sorted_keys[:, 0] <= lowest).any() | (sorted_keys[:, -1] >= highest).any()):
        raise ValueError("the features contain NaN or inf; normal scores need finite values")
    is_ref = order < n_ref
    # int32 counts: half the memory traffic of int64 (L < 2**31)
    inclusive = torch.cumsum(is_ref, dim=1, dtype=torch.int32)  # #ref at or before each position
    starts = torch.ones(b, length, dtype=torch.bool, device=keys.device)  # opens a run of ties
    torch.ne(sorted_keys[:, 1:], sorted_keys[:, :-1], out=starts[:, 1:])
    ends = torch.ones_like(starts)  # closes a run
    ends[:, :-1] = starts[:, 1:]
    before = torch.zeros_like(inclusive)  # #ref strictly before each position
    before[:, 1:] = inclusive[:, :-1]
    # counts are non-decreasing along a row, so a running max (min from the right) carries the
    # value at the run's first (last) position to every member of the run
    below = torch.where(starts, before, 0).cummax(dim=1).values  # #{ref < x}
    big = torch.iinfo(torch.int32).max
    at_most = torch.where(ends, inclusive, big).flip(1).cummin(dim=1).values.flip(1)  # #{ref <= x}
    twice = below.add_(at_most).add_(1).to(torch.int64)
    scores = torch.take(table, twice)
    out = torch.empty_like(scores)
    out.scatter_(1, order, scores)  # back from sorted to original positions
    return out


def _table(n_ref: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    j = torch.arange(2 * n_ref + 3, dtype=torch.float64, device=device)
    return torch.special.ndtri(j / (2 * (n_ref + 1))).to(dtype)


def _score(reference: Tensor, others: list[Tensor]) -> list[Tensor]:
    n_ref, d = reference.shape
    dtype = reference.dtype
    compute = torch.float64 if dtype == torch.float64 else torch.float32
    table = _table(n_ref, dtype, reference.device)
    lengths = [n_ref] + [o.shape[0] for o in others]
    total = sum(lengths)
    outs = [torch.empty(m, d, dtype=dtype, device=reference.device) for m in lengths]
    step = max(1, _BLOCK_ELEMENTS // max(1, total))
    for c0 in range(0, d, step):
        cols = slice(c0, min(d, c0 + step))
        width = cols.stop - cols.start
        values = torch.empty(width, total, dtype=compute, device=reference.device)
        offset = 0
        for mat, m in zip([reference, *others], lengths, strict=True):
            values[:, offset : offset + m] = mat[:, cols].T
            offset += m
        scores = _block_scores(_order_keys_(values), n_ref, table)
        del values
        offset = 0
        for out, m in zip(outs, lengths, strict=True):
            out[:, cols] = scores[:, offset : offset + m].T
            offset += m
    return outs


def normal_scores(z: Tensor, reference: Tensor | None = None) -> Tensor:
    """Gaussian-copula normal scores of each column of ``z``.

    Args:
        z: features ``(N, d)``, floating point.
        reference: optional ``(N_ref, d)``; when given, every value of ``z`` is scored against
            the empirical CDF of the same column of ``reference``:
            ``u(x) = (#{ref < x} + ½·#{ref = x} + ½)/(N_ref+1)`` (docs/math.md §2).

    Returns:
        ``(N, d)`` tensor of ``Φ⁻¹(u)`` with the dtype and device of ``z``; without a reference
        ``u = rank/(N+1)`` with average ranks for ties. ``normal_scores(z, reference=z)``
        equals ``normal_scores(z)`` exactly.
    """
    check_matrix("z", z)
    if reference is None:
        return _score(z, [])[0]
    check_matrix("reference", reference)
    if reference.shape[1] != z.shape[1]:
        raise ValueError(
            f"reference has {reference.shape[1]} columns but z has {z.shape[1]}; "
            "they must describe the same features"
        )
    if reference.device != z.device:
        raise ValueError(f"z is on {z.device} but reference on {reference.device}")
    return _score(reference.to(z.dtype), [z])[1]


def normal_scores_train_test(z_train: Tensor, z_test: Tensor) -> tuple[Tensor, Tensor]:
    """Normal scores of a training split and of a test split scored against it.

    Equivalent to ``(normal_scores(z_train), normal_scores(z_test, reference=z_train))`` with
    a single sort per column. Shapes ``(N, d)`` and ``(N_test, d)``; dtype of ``z_train``.
    """
    check_matrix("z_train", z_train)
    check_matrix("z_test", z_test)
    if z_test.shape[1] != z_train.shape[1]:
        raise ValueError(f"z_test has {z_test.shape[1]} columns but z_train has {z_train.shape[1]}")
    if z_test.device != z_train.device:
        raise ValueError(f"z_train is on {z_train.device} but z_test on {z_test.device}")
    train, test = _score(z_train, [z_test.to(z_train.dtype)])
    return train, test
