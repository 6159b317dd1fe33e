"""Ranks for the sharded analysis: threads of this process (fast, the default tests) and gloo
processes (the real collectives, ``slow`` tests)."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Sequence

import torch

from ncib.analysis.shards import Shard, strided_rows


class ThreadRanks:
    """``world`` ranks as threads with barrier-based collectives: the :class:`Comm` of the
    analysis (all-reduce, all-to-all, broadcast) and the engine's all-gather. Sums are formed in
    rank order, as a reduction would."""

    def __init__(self, world: int):
        self.world = world
        self.slots: list = [None] * world
        self.barrier = threading.Barrier(world)

    def comm(self, rank: int) -> ThreadComm:
        return ThreadComm(self, rank)

    def run(self, fn: Callable[[int], object], timeout: float = 600, name: str = "rank") -> list:
        """``fn(rank)`` on every rank (one thread each, named ``<name>-<rank>``); their results,
        or the first error."""
        results: list = [None] * self.world
        errors: list = []

        def work(r: int) -> None:
            try:
                results[r] = fn(r)
            except BaseException as err:  # surfaced below; the barrier stops the others
                errors.append(err)
                self.barrier.abort()

        threads = [
            threading.Thread(target=work, args=(r,), name=f"{name}-{r}") for r in range(self.world)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout)
        if errors:
            raise errors[0]
        return results


class ThreadComm:
    def __init__(self, ranks: ThreadRanks, rank: int):
        self._ranks, self.rank, self.world = ranks, rank, ranks.world
        self.comm = self  # also an engine Collective

    def _exchange(self, value):
        r = self._ranks
        r.slots[self.rank] = value
        r.barrier.wait()
        everything = list(r.slots)
        r.barrier.wait()
        return everything

    def all_reduce_(self, tensor: torch.Tensor) -> torch.Tensor:
        parts = self._exchange(tensor.clone())
        total = parts[0].clone()
        for p in parts[1:]:
            total += p
        tensor.copy_(total)
        return tensor

    def all_to_all(self, outputs: Sequence[torch.Tensor], inputs: Sequence[torch.Tensor]) -> None:
        sent = self._exchange([t.clone() for t in inputs])
        for r in range(self.world):
            outputs[r].copy_(sent[r][self.rank])

    def broadcast_(self, tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
        tensor.copy_(self._exchange(tensor.clone())[src])
        return tensor

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        return torch.stack(self._exchange(tensor.clone()))


def thread_shard(ranks: ThreadRanks, rank: int, total: int) -> Shard:
    """Rank ``rank``'s strided shard (rows ``rank::world``) of a ``total``-row split."""
    return Shard(ranks.comm(rank), strided_rows(total, rank, ranks.world), total)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gloo_init(rank: int, world: int, port: int) -> None:
    """Join a gloo process group of ``world`` CPU processes on this machine."""
    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)  # R processes share the cores
