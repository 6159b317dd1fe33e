"""What one rank's analysis may use: the GPU's memory, or the host's available memory shared
by the ranks on it (:func:`available_memory`; :mod:`ncib.engine.memory` checks the model of the
analysis against it)."""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["GIB", "MemoryBudget", "available_memory"]

GIB = 2**30


@dataclass(frozen=True)
class MemoryBudget:
    """Memory the analysis of one rank may use: ``bytes`` of ``what`` (for the messages)."""

    bytes: int
    what: str


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def available_memory(device, ranks_on_host: int = 1) -> MemoryBudget:
    """The memory one rank's analysis may use on ``device`` (a ``torch.device`` or string): the
    GPU's total memory for CUDA; on the CPU the host's available memory (``MemAvailable``)
    shared by the ``ranks_on_host`` ranks of this node."""
    kind = getattr(device, "type", str(device).split(":")[0])
    if kind == "cuda":
        import torch

        total = torch.cuda.get_device_properties(device).total_memory
        return MemoryBudget(total, f"{total / GIB:.1f} GiB of GPU memory on {device}")
    avail = _meminfo_available()
    if avail is None:
        avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    share = avail // max(1, ranks_on_host)
    shared = f", shared by {ranks_on_host} ranks on this host" if ranks_on_host > 1 else ""
    return MemoryBudget(share, f"{avail / GIB:.1f} GiB of available host memory{shared}")
