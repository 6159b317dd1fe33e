"""The analysis callbacks: thin Lightning adapters over :class:`ncib.engine.PairEpochAnalysis`.

Each callback owns one metric group (its keys: ``ncib/metrics/registry.py``, listed in its
docstring) and an epoch schedule. At an epoch where several are due, features are still
extracted once: the first analysis callback in ``trainer.callbacks`` leads — it runs one
:class:`~ncib.engine.PairEpochAnalysis` for the groups of every callback due at that epoch;
the others do nothing in their hooks. No state outside the callbacks is shared.

The leader also keeps the pair's weights at each analysis epoch
(``checkpoints/analysis/epoch=NNNN.ckpt``, ``analysis.checkpoints``), so that
``python -m ncib.analyse <run_dir>`` can redo every analysed epoch without retraining.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pytorch_lightning import Callback

from ncib.analysis import IntervalSettings
from ncib.callbacks.schedule import AnalysisSchedule
from ncib.engine import AnalysisSettings, PairEpochAnalysis
from ncib.engine.checkpoints import analysis_checkpoint_path, save_weights
from ncib.metrics.registry import GROUPS, METRICS

__all__ = ["AnalysisCallback", "LightningCollective", "keys_table"]


DEFAULT_INTERVALS = IntervalSettings()
"""The intervals of a callback built without ``intervals`` (conf passes ``analysis.intervals``)."""


class LightningCollective:
    """The Trainer's processes as a :class:`~ncib.engine.features.Collective`."""

    def __init__(self, trainer, pl_module):
        self.rank, self.world = trainer.global_rank, trainer.world_size
        self._module = pl_module

    def all_gather(self, tensor):
        return self._module.all_gather(tensor)

    def broadcast_(self, tensor):
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.broadcast(tensor, src=0)


def keys_table(group: str) -> str:
    """The docstring table of the keys a group logs (from the registry)."""
    rows = [
        (f"``{m.template}``", m.meaning)
        for m in METRICS
        if m.group == group and m.shape == "scalar"
    ]
    width = max(len(k) for k, _ in rows)
    rule = "=" * width + "  " + "=" * 40
    lines = [rule, "key".ljust(width) + "  value", rule]
    lines += [k.ljust(width) + "  " + v for k, v in rows]
    lines.append(rule)
    prefix = GROUPS[group][1]
    return (
        f"\n    Logged under ``{prefix}`` (keys from ``ncib/metrics/registry.py``):\n\n"
        + "\n".join("    " + line for line in lines)
        + "\n"
    )


class AnalysisCallback(Callback):
    """Base of the analysis callbacks: the group, the schedule, the shared settings.

    Args:
        epochs: analyse after these numbers of completed epochs (0 = initialisation).
        every_n_epochs: or every n epochs (and at the last one).
        at_init: with ``every_n_epochs``, also analyse the initialisation (epoch 0).
        k: dimension of the IB representation T_K (default: the number of classes K).
        max_samples: analyse a stratified subset of at most this many training samples.
        ridge: relative ridge of the covariances (docs/math.md §3).
        progress: show progress of the extraction and the analysis.
        checkpoints: keep the pair's weights at each analysis epoch (for ``ncib.analyse``).
    """

    group: str = ""

    def __init__(
        self,
        epochs: list[int] | None = None,
        every_n_epochs: int | None = None,
        at_init: bool = False,
        k: int | None = None,
        max_samples: int | None = None,
        ridge: float = 1e-6,
        progress: bool = True,
        checkpoints: bool = True,
        intervals: Mapping | IntervalSettings | None = DEFAULT_INTERVALS,
    ):
        if self.group not in GROUPS:
            raise TypeError(
                f"{type(self).__name__} must set `group` to a metric group of the registry"
            )
        self.schedule = AnalysisSchedule(epochs, every_n_epochs, at_init)
        self.settings = AnalysisSettings(
            k=k,
            max_samples=max_samples,
            ridge=float(ridge),
            progress=bool(progress),
            intervals=dict(intervals) if isinstance(intervals, Mapping) else intervals,
        )
        self.checkpoints = bool(checkpoints)
        self._peers: list[AnalysisCallback] = []
        self._engine: PairEpochAnalysis | None = None

    # -- hooks --------------------------------------------------------------------------------
    def setup(self, trainer, pl_module, stage: str) -> None:
        peers = [cb for cb in trainer.callbacks if isinstance(cb, AnalysisCallback)]
        self._peers, self._engine = [], None
        if peers[0] is not self:
            return  # the leader analyses for everyone
        for cb in peers:
            if not cb.settings.same_analysis(self.settings):
                raise ValueError(
                    f"analysis callbacks {self.group!r} and {cb.group!r} disagree on their settings "
                    f"({self.settings} vs {cb.settings}); set them once under analysis.*"
                )
        self._peers = peers
        self._engine = PairEpochAnalysis(
            trainer.default_root_dir,
            self.settings,
            loggers=trainer.loggers,
            collective=LightningCollective(trainer, pl_module),
        )

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.global_step == 0 and trainer.current_epoch == 0:
            self._maybe_run(trainer, pl_module, 0)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._maybe_run(trainer, pl_module, trainer.current_epoch + 1)

    def _maybe_run(self, trainer, pl_module, epoch: int) -> None:
        if self._engine is None:
            return
        groups = [cb.group for cb in self._peers if cb.schedule.due(epoch, trainer.max_epochs)]
        if not groups:
            return
        if self.checkpoints and trainer.is_global_zero:
            save_weights(
                analysis_checkpoint_path(Path(trainer.default_root_dir), epoch),
                pl_module,
                epoch,
                trainer.global_step,
            )
        self._engine.run(
            pl_module, trainer.datamodule, epoch, trainer.global_step, groups, pl_module.device
        )
