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
Columns are processed in cache-sized blocks; there are no per-sample Python loops.

Speed (CPU, float32 features): the matrices are transposed once so that columns are
contiguous; each value's order key is packed with its position into one integer and the rows
are sorted by numpy's vectorised sort on ``torch.get_num_threads()`` threads (no index array;
``torch.sort`` is used for float64 and on GPUs); the tie handling runs on the tied positions
only; and the buffers are reused from block to block.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from torch import Tensor

from ._checks import check_matrix
from .shards import Shard

__all__ = ["normal_scores", "normal_scores_train_test", "sharded_normal_scores"]

_BLOCK_ELEMENTS = 2**20  # values sorted at once (columns × rows): cache-sized blocks


class _Workspace:
    """Buffers reused by every block of columns: a fresh tensor of a few MiB costs more in page
    faults (first touch of new pages) than the arithmetic done on it."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._flat: dict[str, Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
        numel = math.prod(shape)
        flat = self._flat.get(name)
        if flat is None or flat.dtype != dtype or flat.numel() < numel:
            flat = torch.empty(numel, dtype=dtype, device=self.device)
            self._flat[name] = flat
        return flat[:numel].view(shape)


def _order_keys_(x: Tensor, mask: Tensor | None = None) -> Tensor:
    """Reinterpret float32/float64 ``x`` in place as integers with the same order and ties.

    IEEE bit patterns order like signed integers for non-negative values; negative values
    get their magnitude bits flipped. NaN and ±inf map beyond the keys of all finite values.
    ``mask``: optional scratch buffer shaped like ``x`` (the integer dtype of its width).
    """
    x.add_(0.0)  # -0.0 -> +0.0 so that the two zeros tie
    if x.dtype == torch.float64:
        bits, width, flip = x.view(torch.int64), 63, 0x7FFFFFFFFFFFFFFF
    else:
        bits, width, flip = x.view(torch.int32), 31, 0x7FFFFFFF
    mask = torch.bitwise_right_shift(bits, width, out=mask)  # -1 for negative values, else 0
    mask &= flip
    bits ^= mask
    return bits


def _infinity_keys(dtype: torch.dtype, device: torch.device) -> tuple[int, int]:
    keys = _order_keys_(torch.tensor([-math.inf, math.inf], dtype=dtype, device=device))
    return int(keys[0]), int(keys[1])


_PACKED_INDEX_BITS = 20  # 32 key bits + the position fit the 52-bit mantissa of a float64
_ONE = 0x3FF << 52  # exponent bits of 1.0: packed values are doubles in [1, 2)


def _sort_rows_numpy(packed: Tensor) -> None:
    """Sort each row of a CPU int64 ``(b, L)`` tensor of packed keys in place.

    The values are bit patterns of doubles in [1, 2), which order like the integers, so
    numpy's vectorised float64 sort applies. It releases the GIL, so row blocks are sorted on
    ``torch.get_num_threads()`` threads.
    """
    rows = packed.view(torch.float64).numpy()
    workers = min(torch.get_num_threads(), rows.shape[0])
    if workers <= 1:
        rows.sort(axis=1)
        return
    with ThreadPoolExecutor(workers) as pool:  # np.array_split: views of consecutive rows
        list(pool.map(lambda block: block.sort(axis=1), np.array_split(rows, workers)))


def _sort_keys(keys: Tensor, ws: _Workspace) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Sort each row of integer order keys ``(b, L)``.

    Returns ``(sorted, order, first, last)``: ``sorted`` is a strictly increasing function of
    the sorted keys (equal exactly where the keys are equal), ``order`` the positions they came
    from, ``first`` and ``last`` ``(b,)`` the smallest and largest original keys of each row.

    int32 keys on the CPU (float32 features) with ``L <= 2**20`` are packed with their position
    into one 52-bit integer, ``(key + 2³¹)·2^B + position``, and sorted as doubles by numpy
    (no separate index array, several times faster than ``torch.sort``; the packed values are
    distinct, so the order is fully determined: ties keep their positions ascending). Other
    keys use ``torch.sort``.
    """
    b, length = keys.shape
    bits = max(1, (length - 1).bit_length())
    if keys.device.type != "cpu" or keys.dtype != torch.int32 or bits > _PACKED_INDEX_BITS:
        sorted_keys, order = torch.sort(keys, dim=1)
        return sorted_keys, order, sorted_keys[:, 0], sorted_keys[:, -1]
    # (key + 2³¹)·2^B + position + 1.0's exponent bits in one pass (the three parts occupy
    # disjoint bits, so the sum is their bitwise or); computed in int64
    base = torch.arange(length, dtype=torch.int64).add_(_ONE + (2**31 << bits))
    packed = ws.get("packed", (b, length), torch.int64)
    packed.copy_(keys)
    torch.add(base, packed, alpha=1 << bits, out=packed)
    _sort_rows_numpy(packed)
    order = torch.bitwise_and(
        packed, (1 << bits) - 1, out=ws.get("order", (b, length), torch.int64)
    )
    packed >>= bits  # key + 2³¹ + (1.0's exponent bits >> B): monotone in the key
    offset = 2**31 + (_ONE >> bits)
    return packed, order, packed[:, 0] - offset, packed[:, -1] - offset


def _block_scores(keys: Tensor, n_ref: int, table: Tensor, ws: _Workspace) -> Tensor:
    """``table[#{ref < x} + #{ref <= x} + 1]`` for every entry of ``keys (b, L)``.

    The first ``n_ref`` entries of each row are the reference values. The result is a buffer
    of ``ws``, valid until the next block.
    """
    b, length = keys.shape
    shape = (b, length)
    sorted_keys, order, first, last = _sort_keys(keys, ws)
    lowest, highest = _infinity_keys(
        torch.float64 if keys.dtype == torch.int64 else torch.float32, keys.device
    )
    if bool((first <= lowest).any() | (last >= highest).any()):
        raise ValueError("the features contain NaN or inf; normal scores need finite values")
    is_ref = torch.lt(order, n_ref, out=ws.get("is_ref", shape, torch.bool))
    # int32 counts: half the memory traffic of int64 (L < 2**31)
    inclusive = ws.get("inclusive", shape, torch.int32)  # #ref at or before each position
    torch.cumsum(is_ref, dim=1, dtype=torch.int32, out=inclusive)
    starts = ws.get("starts", shape, torch.bool)  # opens a run of ties
    starts[:, 0] = True
    torch.ne(sorted_keys[:, 1:], sorted_keys[:, :-1], out=starts[:, 1:])
    ends = ws.get("ends", shape, torch.bool)  # closes a run
    ends[:, -1] = True
    ends[:, :-1] = starts[:, 1:]
    # a value without ties: #{ref < x} = #ref before its position, #{ref <= x} = inclusive
    twice = ws.get("twice", shape, torch.int32)  # <= 2L+1 < 2**31; int32 indexes fastest
    torch.add(inclusive[:, 1:], inclusive[:, :-1], out=twice[:, 1:])
    twice[:, 0] = inclusive[:, 0]
    twice += 1
    tied = torch.logical_and(starts, ends, out=ws.get("tied", shape, torch.bool))
    tied.logical_not_()  # inside a run of >= 2 equal values
    flat = tied.view(-1).nonzero().squeeze(1)
    if flat.numel():
        _fix_ties(flat, starts, ends, inclusive, twice)
    scores = ws.get("scores", shape, table.dtype)
    torch.index_select(table, 0, twice.view(-1), out=scores.view(-1))
    out = ws.get("out", shape, table.dtype)
    out.scatter_(1, order, scores)  # back from sorted to original positions
    return out


def _fix_ties(flat: Tensor, starts: Tensor, ends: Tensor, inclusive: Tensor, twice: Tensor) -> None:
    """Set ``twice = #{ref < x} + #{ref <= x} + 1`` at the tied positions ``flat`` (flat
    indices, ascending) of the sorted block: the counts at the first and last position of each
    run of equal values, carried to the whole run.

    Counts are non-decreasing along a row; adding ``row·(L+1)`` makes them non-decreasing over
    the flattened block too, so a running max (min from the right) over the tied positions
    alone carries the value at a run's first (last) position to every member of the run.
    """
    length = starts.shape[1]
    lift = torch.div(flat, length, rounding_mode="floor").mul_(length + 1)
    incl = inclusive.view(-1)[flat].to(torch.int64).add_(lift)
    is_start = starts.view(-1)[flat]
    # #ref strictly before the position: the inclusive count one position earlier
    prev = torch.where(flat % length == 0, lift, inclusive.view(-1)[(flat - 1).clamp_min(0)] + lift)
    below = torch.where(is_start, prev, 0).cummax(0).values  # #{ref < x} (+ lift)
    big = torch.iinfo(torch.int64).max
    at_most = torch.where(ends.view(-1)[flat], incl, big).flip(0).cummin(0).values.flip(0)
    twice.view(-1)[flat] = below.add_(at_most).sub_(lift).sub_(lift).add_(1).to(twice.dtype)


def _table(n_ref: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    j = torch.arange(2 * n_ref + 3, dtype=torch.float64, device=device)
    return torch.special.ndtri(j / (2 * (n_ref + 1))).to(dtype)


def _transposed(x: Tensor, dtype: torch.dtype) -> Tensor:
    """``x.T`` as a contiguous ``(d, N)`` matrix of ``dtype`` (one blocked transpose)."""
    x = x.to(dtype)
    out = torch.empty(x.shape[1], x.shape[0], dtype=dtype, device=x.device)
    out.copy_(x.T)  # contiguous destination: torch's cache-blocked transpose
    return out


def _score(reference: Tensor, others: list[Tensor]) -> list[Tensor]:
    """Normal scores of ``reference (N_ref, d)`` and of each ``others[i] (N_i, d)`` against it.

    The matrices are transposed once (columns become contiguous rows: transposing column
    blocks is ~10× slower); cache-sized blocks of columns are sorted and scored, the scores
    written back over the consumed transposed values, and the results transposed back once.
    """
    n_ref, d = reference.shape
    dtype = reference.dtype
    compute = torch.float64 if dtype == torch.float64 else torch.float32
    key_dtype = torch.int64 if compute == torch.float64 else torch.int32
    table = _table(n_ref, dtype, reference.device)
    columns = [_transposed(m, compute) for m in [reference, *others]]  # (d, N_i) each
    lengths = [c.shape[1] for c in columns]
    total = sum(lengths)
    ws = _Workspace(reference.device)
    step = max(1, _BLOCK_ELEMENTS // max(1, total))
    for c0 in range(0, d, step):
        rows = slice(c0, min(d, c0 + step))
        shape = (rows.stop - rows.start, total)
        values = torch.cat([c[rows] for c in columns], dim=1, out=ws.get("values", shape, compute))
        keys = _order_keys_(values, ws.get("mask", shape, key_dtype))
        scores = _block_scores(keys, n_ref, table, ws)
        offset = 0
        for c, m in zip(columns, lengths, strict=True):
            c[rows] = scores[:, offset : offset + m]
            offset += m
    outs = []
    for c in columns:
        out = torch.empty(c.shape[1], d, dtype=dtype, device=c.device)
        out.copy_(c.T)
        outs.append(out)
        c.resize_(0)  # free the transposed copy before the next one is transposed back
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
    train, test = _score(z_train, [z_test])  # z_test is converted to z_train's compute dtype
    return train, test


def sharded_normal_scores(
    z_train: Tensor, z_test: Tensor, shard: Shard, test_shard: Shard | None = None
) -> tuple[Tensor, Tensor]:
    """:func:`normal_scores_train_test` of a training split shared over ranks: ``z_train`` is
    this rank's shard ``(n_local, d)`` (rows ``shard.rows``), ``z_test`` the whole test split on
    every rank, or this rank's shard of it (rows ``test_shard.rows``) when the test split is
    shared too. Returns this rank's training scores and its test scores (the whole test split
    without ``test_shard``), equal to the single-process scores exactly (ties included: a
    score depends only on the column's values, not their order).

    The columns are dealt out in R contiguous blocks: an all-to-all gives rank c block c of every
    row of both splits (``(N + N_t) × d/R`` values: no rank holds a whole split), rank c scores
    its block (the same sort as one process), and a second exchange sends the scores back to
    the rows' ranks (every test column to every rank when the test split is not shared)."""
    comm = shard.comm
    if comm.world == 1:
        return normal_scores_train_test(z_train, z_test)
    check_matrix("z_train", z_train, min_rows=0)
    check_matrix("z_test", z_test, min_rows=1 if test_shard is None else 0)
    if z_test.shape[1] != z_train.shape[1]:
        raise ValueError(f"z_test has {z_test.shape[1]} columns but z_train has {z_train.shape[1]}")
    d, world, rank = z_train.shape[1], comm.world, comm.rank
    cuts = [round(c * d / world) for c in range(world + 1)]
    widths = [cuts[c + 1] - cuts[c] for c in range(world)]
    blocks = [slice(cuts[c], cuts[c + 1]) for c in range(world)]
    mine, new = blocks[rank], z_train.new_empty

    def gather(z: Tensor, sizes: list[int]) -> Tensor:  # block `mine` of every rank's rows
        received = [new(sizes[r], widths[rank]) for r in range(world)]
        comm.all_to_all(received, [z[:, b] for b in blocks])
        return torch.cat(received)

    sizes = shard.sizes()
    train_block = gather(z_train, sizes)
    if test_shard is None:
        test_block, test_sizes = z_test[:, mine], None
    else:
        test_sizes = test_shard.sizes()
        test_block = gather(z_test, test_sizes)
    if widths[rank]:
        train, test = normal_scores_train_test(train_block, test_block)
    else:  # more ranks than columns: this rank scores none
        train, test = new(shard.total, 0), new(test_block.shape[0], 0)
    del train_block, test_block

    def scatter(scores: Tensor, sizes: list[int] | None, rows_here: int) -> Tensor:
        back = [new(rows_here, widths[c]) for c in range(world)]
        comm.all_to_all(back, [scores] * world if sizes is None else list(scores.split(sizes)))
        return torch.cat(back, 1)

    return scatter(train, sizes, len(shard.rows)), scatter(test, test_sizes, z_test.shape[0])
