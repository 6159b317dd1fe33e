"""Refuse, before the first training step, a run whose analysis would not fit in memory.

:class:`AnalysisMemoryCheck` is added by ``ncib.run`` to every training run. At ``setup`` —
every rank, after the datamodule is set up, before the model moves or a step is taken — it
finds the run's :class:`~ncib.callbacks.PairAnalysisCallback` (none: nothing to check), reads
the shape of the analysis (training rows after ``analysis.max_samples``, test rows, the
encoder's feature dimension, k, the classes, ``analysis.intervals.folds``) and the ranks, and
calls :func:`ncib.engine.memory.check_analysis_memory` against the GPU's memory less the
training images it holds, or the host's available memory shared by this node's ranks on the
CPU (docs/design.md §3b).
"""

from __future__ import annotations

import logging

from pytorch_lightning import Callback

from ncib.callbacks.analysis import PairAnalysisCallback
from ncib.engine.memory import (
    GIB,
    MemoryBudget,
    available_memory,
    check_analysis_memory,
    planned_shape,
    size,
)

__all__ = ["AnalysisMemoryCheck"]
log = logging.getLogger("ncib.analysis")


def feature_dim(pl_module) -> int | None:
    """The dimension of the features the analysis studies (the first member's encoder)."""
    members = getattr(pl_module, "members", None)
    if not members:
        return None
    dim = getattr(getattr(members[0], "encoder", None), "feature_dim", None)
    return int(dim) if dim is not None else None


class AnalysisMemoryCheck(Callback):
    """Raise ``MemoryError`` at setup when the planned analysis needs more memory per rank than
    there is (:func:`ncib.engine.memory.check_analysis_memory`: the message says what to set)."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit":
            return
        plans = [cb.plan for cb in trainer.callbacks if isinstance(cb, PairAnalysisCallback)]
        dm = trainer.datamodule
        splits = getattr(dm, "splits", None) or {}
        d = feature_dim(pl_module)
        if not plans or "train" not in splits or "test" not in splits or d is None:
            return
        settings = plans[0].settings
        classes = int(dm.num_classes)
        device = trainer.strategy.root_device
        budget = available_memory(
            device, ranks_on_host=trainer.num_devices if device.type == "cpu" else 1
        )
        if device.type == "cuda":  # the training images live on the GPU too (train_split_on)
            images = splits["train"][0]
            held = images.numel() * images.element_size()
            budget = MemoryBudget(
                budget.bytes - held, f"{budget.what} less {size(held)} of training images"
            )
        need = check_analysis_memory(
            **planned_shape(settings, splits, classes),
            d=d,
            world=trainer.world_size,
            budget=budget,
            side_by_side=1 if device.type == "cuda" else None,  # a GPU: one member at a time
            cuda=device.type == "cuda",
        )
        log.debug("analysis memory per rank: %.1f GiB of %s", need.total / GIB, budget.what)
