"""Refuse, before the first training step, a run whose analysis would not fit in memory.

:class:`AnalysisMemoryCheck` is added by ``ncib.run`` to every training run. At ``setup`` —
every rank, after the datamodule is set up, before the model moves or a step is taken — it
finds the run's :class:`~ncib.callbacks.PairAnalysisCallback` (none: nothing to check), reads
the shape of the analysis (training rows after ``analysis.max_samples``, test rows, the
encoder's feature dimension, k, the classes, ``analysis.intervals``, ``analysis.precision``)
and the ranks, and calls :func:`ncib.engine.memory.check_planned_analysis`: against the GPU's
memory less the training images it holds, or the host's available memory shared by this
node's ranks on the CPU (docs/design.md §3b).
"""

from __future__ import annotations

import logging

from pytorch_lightning import Callback

from ncib.callbacks.analysis import PairAnalysisCallback
from ncib.engine.memory import GIB, check_planned_analysis, pair_feature_dim

__all__ = ["AnalysisMemoryCheck"]
log = logging.getLogger("ncib.analysis")


class AnalysisMemoryCheck(Callback):
    """Raise ``MemoryError`` at setup when the planned analysis needs more memory per rank than
    there is (:func:`ncib.engine.memory.check_planned_analysis`: the message says what to set)."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage != "fit":
            return
        plans = [cb.plan for cb in trainer.callbacks if isinstance(cb, PairAnalysisCallback)]
        dm = trainer.datamodule
        splits = getattr(dm, "splits", None) or {}
        d = pair_feature_dim(pl_module)
        if not plans or "train" not in splits or "test" not in splits or d is None:
            return
        device = trainer.strategy.root_device
        images = splits["train"][0]  # on a GPU they live there too (train_split_on)
        need = check_planned_analysis(
            plans[0].settings,
            splits,
            int(dm.num_classes),
            d,
            device,
            world=trainer.world_size,
            ranks_on_host=trainer.num_devices,  # the CPU's ranks of this node share its memory
            held_images=images.numel() * images.element_size() if device.type == "cuda" else 0,
        )
        log.debug("analysis memory per rank: %.1f GiB on %s", need.total / GIB, device)
