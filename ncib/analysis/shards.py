"""The splits shared over ranks: each rank holds a shard of the rows (docs/design.md §3a).

The analysis's expensive quantities over a split are either **sums over samples** (means,
covariance blocks, class sums, within-class scatter, probe objectives and gradients, counts of
correct predictions, the test variates' moments) or **per-column operations** (normal scores).
With a :class:`Shard` of each split, :class:`~ncib.analysis.PairAnalysis` is given only this
rank's rows; sums are formed on the shard and all-reduced (:meth:`Shard.sum_`), and the normal
scores of a column are computed by the rank that receives that column over all rows
(:func:`ncib.analysis.copula.sharded_normal_scores`, an all-to-all). Every rank then holds the
same statistics, and the numbers equal those of one process up to the order of summation. The
test split's resamplings (the null threshold's permutations, the bootstrap) are those of the
whole split, drawn alike on every rank (:mod:`ncib.analysis.intervals`).

:class:`Comm` is the few collectives the analysis needs; :class:`TorchDistributed` provides
them from ``torch.distributed`` (gloo on the CPU, NCCL on GPUs), :class:`SingleProcess` for one
process. The analysis imports no Lightning: the engine passes the comm in.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol

import torch
from torch import Tensor

__all__ = [
    "Comm",
    "Shard",
    "SingleProcess",
    "TorchDistributed",
    "broadcast_result",
    "strided_rows",
]


class Comm(Protocol):
    """The collectives of the sharded analysis; every rank calls them in the same order."""

    rank: int
    world: int

    def all_reduce_(self, tensor: Tensor) -> Tensor:
        """Sum ``tensor`` over the ranks, in place; returns it."""

    def all_to_all(self, outputs: Sequence[Tensor], inputs: Sequence[Tensor]) -> None:
        """Send ``inputs[r]`` to rank r; receive rank r's into ``outputs[r]`` (shapes agreed)."""

    def broadcast_(self, tensor: Tensor, src: int) -> Tensor:
        """Overwrite ``tensor`` on every rank with rank ``src``'s, in place; returns it."""


class SingleProcess:
    """One process: rank 0 of 1, every collective the identity."""

    rank, world = 0, 1

    def all_reduce_(self, tensor: Tensor) -> Tensor:
        return tensor

    def all_to_all(self, outputs: Sequence[Tensor], inputs: Sequence[Tensor]) -> None:
        outputs[0].copy_(inputs[0])

    def broadcast_(self, tensor: Tensor, src: int) -> Tensor:
        return tensor


class TorchDistributed:
    """The default ``torch.distributed`` process group (initialised by the caller: DDP, or
    ``torch.distributed.init_process_group``). Gloo has no all-to-all of tensor lists, so there
    it is made of point-to-point sends and receives."""

    def __init__(self) -> None:
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            raise RuntimeError(
                "TorchDistributed needs an initialised torch.distributed process group "
                "(call torch.distributed.init_process_group first, or use SingleProcess)"
            )
        self._dist = dist
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        self._gloo = dist.get_backend() == "gloo"
        # where the backend's tensors must be: NCCL reduces CUDA tensors only, gloo CPU ones
        self.device = (
            torch.device("cpu")
            if self._gloo or not torch.cuda.is_available()
            else torch.device("cuda", torch.cuda.current_device())
        )

    def _on_device(self, tensor: Tensor, run) -> Tensor:
        if tensor.device == self.device:
            run(tensor)
            return tensor
        moved = tensor.to(self.device)
        run(moved)
        tensor.copy_(moved)
        return tensor

    def all_reduce_(self, tensor: Tensor) -> Tensor:
        return self._on_device(tensor, self._dist.all_reduce)

    def all_to_all(self, outputs: Sequence[Tensor], inputs: Sequence[Tensor]) -> None:
        if not self._gloo:
            self._dist.all_to_all(list(outputs), [t.contiguous() for t in inputs])  # NCCL: one call
            return
        ops = []
        for r in range(self.world):
            if r == self.rank:
                outputs[r].copy_(inputs[r])
                continue
            ops.append(self._dist.P2POp(self._dist.isend, inputs[r].contiguous(), r))
            ops.append(self._dist.P2POp(self._dist.irecv, outputs[r], r))
        for req in self._dist.batch_isend_irecv(ops) if ops else ():
            req.wait()

    def broadcast_(self, tensor: Tensor, src: int) -> Tensor:
        return self._on_device(tensor, lambda t: self._dist.broadcast(t, src=src))


def strided_rows(total: int, rank: int, world: int) -> Tensor:
    """The rows ``rank::world`` of a ``total``-row split: the shard convention of the engine."""
    return torch.arange(rank, total, world)


@dataclass(frozen=True)
class Shard:
    """This rank's part of a ``total``-row split (training or test).

    Attributes:
        comm: the ranks (:class:`Comm`).
        rows: ``(n_local,)`` int64 global indices of the rows this rank holds, in the order of
            its feature matrices (the shards of all ranks partition ``range(total)``).
        total: N, the rows of the whole split.
    """

    comm: Comm
    rows: Tensor
    total: int

    def __post_init__(self) -> None:
        rows = self.rows
        if rows.ndim != 1 or rows.dtype != torch.int64:
            raise ValueError(f"Shard.rows must be 1-D int64 indices; got {rows.dtype} {rows.shape}")
        if rows.numel() and not (0 <= int(rows.min()) and int(rows.max()) < self.total):
            raise ValueError(f"Shard.rows must lie in [0, total={self.total})")
        counts = torch.tensor([rows.numel()], dtype=torch.float64)
        self.comm.all_reduce_(counts)
        if int(counts) != self.total:
            raise ValueError(
                f"the shards hold {int(counts)} rows in all, not total={self.total}: every row "
                "of the training split must be on exactly one rank"
            )

    @property
    def rank(self) -> int:
        return self.comm.rank

    @property
    def world(self) -> int:
        return self.comm.world

    def sum_(self, tensor: Tensor) -> Tensor:
        """Sum of ``tensor`` over the ranks, in place (float64 sums stay exact to rounding)."""
        return self.comm.all_reduce_(tensor)

    def sizes(self) -> list[int]:
        """The number of rows each rank holds, in rank order."""
        sizes = torch.zeros(self.world, dtype=torch.float64)
        sizes[self.rank] = self.rows.numel()
        self.comm.all_reduce_(sizes)
        return [int(s) for s in sizes]


def broadcast_result(value: Any, cls: type, src: int, comm: Comm, device: torch.device) -> Any:
    """A result dataclass of type ``cls`` computed on rank ``src`` (``value``; None on the other
    ranks), the same on every rank: its fields' kinds, shapes and plain values go as one JSON
    message, then each tensor field is broadcast. The fields must be tensors, numbers, strings,
    None or tuples of those (the analysis's results: :class:`~ncib.analysis.CCAResult`, …); the
    receivers build ``cls`` themselves, so nothing received names code to run."""
    names = [f.name for f in fields(cls)]
    if comm.rank == src:
        meta = [_describe(getattr(value, name)) for name in names]
        payload = torch.tensor(list(json.dumps(meta).encode()), dtype=torch.uint8)
        length = torch.tensor([payload.numel()], dtype=torch.float64)
    else:
        length = torch.zeros(1, dtype=torch.float64)
    comm.broadcast_(length, src)
    if comm.rank != src:
        payload = torch.zeros(int(length), dtype=torch.uint8)
    comm.broadcast_(payload, src)
    meta = json.loads(bytes(payload.tolist()).decode())
    values = {}
    for name, (kind, spec) in zip(names, meta, strict=True):
        if kind == "tensor":
            shape, dtype = spec
            tensor = (
                getattr(value, name).contiguous()
                if comm.rank == src
                else torch.empty(shape, dtype=getattr(torch, dtype), device=device)
            )
            values[name] = comm.broadcast_(tensor, src)
        elif kind == "tuple":
            values[name] = tuple(spec)
        else:
            values[name] = spec
    return value if comm.rank == src else cls(**values)


def _describe(field: Any) -> tuple[str, Any]:
    """One field of a result for :func:`broadcast_result`: its kind and what rebuilds it."""
    if isinstance(field, Tensor):
        return "tensor", (list(field.shape), str(field.dtype).removeprefix("torch."))
    if isinstance(field, tuple | list) and all(isinstance(v, str | int | float) for v in field):
        return "tuple", list(field)
    if field is None or isinstance(field, str | bool | int | float):  # JSON keeps inf and NaN
        return "value", field
    raise TypeError(f"broadcast_result cannot send a field of type {type(field).__name__}")
