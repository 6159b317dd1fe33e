"""The analysis callback: a thin Lightning adapter over :class:`ncib.engine.PairEpochAnalysis`.

One callback runs the run's :class:`~ncib.engine.plan.AnalysisPlan` (``analysis.*``): at each
planned epoch it extracts both members' features once, computes every metric group of
``analysis.groups`` (their keys: ``ncib/metrics/registry.py``, tabled below) and keeps the
pair's weights (``checkpoints/analysis/epoch=NNNN.ckpt``, ``analysis.checkpoints``) so that
``python -m ncib.analyse <run_dir>`` can redo every analysed epoch without retraining.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch.distributed as dist
from pytorch_lightning import Callback

from ncib.engine import PairEpochAnalysis
from ncib.engine.checkpoints import analysis_checkpoint_path, save_weights
from ncib.engine.epoch import pair_classifier_rows
from ncib.engine.features import process_group_comm
from ncib.engine.plan import ANALYSIS_GROUPS, AnalysisPlan, analysis_plan
from ncib.metrics.outputs import CLASSIFIER_GROUP
from ncib.metrics.registry import GROUPS, METRICS

__all__ = ["LightningCollective", "PairAnalysisCallback", "keys_table"]


class LightningCollective:
    """The Trainer's processes as a :class:`~ncib.engine.features.Collective`."""

    def __init__(self, trainer, pl_module):
        self.rank, self.world = trainer.global_rank, trainer.world_size
        self._module = pl_module
        self.comm = process_group_comm(self.world)  # the sharded analysis's collectives

    def all_gather(self, tensor):
        return self._module.all_gather(tensor)

    def broadcast_(self, tensor):
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
        f"\n    ``{group}``, logged under ``{prefix}`` (keys from ``ncib/metrics/registry.py``):\n\n"
        + "\n".join("    " + line for line in lines)
        + "\n"
    )


class PairAnalysisCallback(Callback):
    """Analyse the pair at the epochs of ``plan`` (epoch ``e``: after ``e`` completed epochs;
    0: the initialisation, before any step).

    Args:
        plan: an :class:`~ncib.engine.plan.AnalysisPlan`, or the ``analysis`` config node it is
            built from (conf/callbacks/analysis.yaml passes ``${analysis}``).

    Record entries per group: ``identifiability`` (CCA and CKA between the members),
    ``gib`` (X = normal scores of one member, Y = of the other; ``lambda``, ``beta_crit``,
    ``information_curve``, ``feature_scaling/{member}``; docs/math.md §5) and ``simplex_etf``
    (neural collapse of each member and of its T_K, and the analysis probe; docs/math.md §6);
    ``classifier`` (NC2 of the members' classifier rows and NC3; only for a pair whose members
    train a classifier, objective=ce or mse: refused at setup otherwise; docs/math.md §6a).
    """

    def __init__(self, plan: AnalysisPlan | Mapping):
        self.plan = plan if isinstance(plan, AnalysisPlan) else analysis_plan(plan)
        self._engine: PairEpochAnalysis | None = None

    @property
    def groups(self) -> tuple[str, ...]:
        return self.plan.groups

    # -- hooks --------------------------------------------------------------------------------
    def setup(self, trainer, pl_module, stage: str) -> None:
        ours = [cb for cb in trainer.callbacks if isinstance(cb, PairAnalysisCallback)]
        if len(ours) > 1:
            raise ValueError(
                f"{len(ours)} analysis callbacks: one analyses every group of analysis.groups; "
                "choose the groups there, not with more callbacks"
            )
        if CLASSIFIER_GROUP in self.plan.groups:  # refused before training, not at epoch 0
            pair_classifier_rows(pl_module)
        self._engine = PairEpochAnalysis(
            trainer.default_root_dir,
            self.plan.settings,
            loggers=trainer.loggers,
            collective=LightningCollective(trainer, pl_module),
        )

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.global_step == 0 and trainer.current_epoch == 0:
            self._maybe_run(trainer, pl_module, 0)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._maybe_run(trainer, pl_module, trainer.current_epoch + 1)

    def _maybe_run(self, trainer, pl_module, epoch: int) -> None:
        groups = self.plan.due(epoch, trainer.max_epochs)
        if self._engine is None or not groups:
            return
        if self.plan.checkpoints and trainer.is_global_zero:
            save_weights(
                analysis_checkpoint_path(Path(trainer.default_root_dir), epoch),
                pl_module,
                epoch,
                trainer.global_step,
            )
        self._engine.run(
            pl_module, trainer.datamodule, epoch, trainer.global_step, groups, pl_module.device
        )


PairAnalysisCallback.__doc__ += "".join(keys_table(g) for g in ANALYSIS_GROUPS)
