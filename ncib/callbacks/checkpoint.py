"""Checkpoints that survive kills and full disks, and a guard that stops a diverging run.

* :class:`EpochCheckpoint` writes ``<run_dir>/checkpoints/last.ckpt`` at the end of every
  ``every_n_epochs`` epochs (after the analysis of that epoch: Lightning runs checkpoint
  callbacks last), so a killed run loses at most that many epochs.
* :class:`AtomicCheckpointIO` makes every checkpoint write atomic (temporary file, ``fsync``,
  ``os.replace``): a kill or a full disk leaves the previous checkpoint loadable, and a full
  disk is reported as such.
* :class:`DivergenceGuard` stops training at the first non-finite loss, naming the member,
  the epoch, the step and the last good checkpoint.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning import Callback
from pytorch_lightning.callbacks import Checkpoint
from pytorch_lightning.plugins.io import TorchCheckpointIO

from ncib.engine.checkpoints import EPOCH_CHECKPOINT, check_training_checkpoint, keep_previous
from ncib.metrics import member_name
from ncib.rundir.records import atomic_torch_save

__all__ = ["AtomicCheckpointIO", "DivergenceGuard", "EpochCheckpoint", "TrainingDivergedError"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """:class:`TorchCheckpointIO` whose writes go through a temporary file and ``os.replace``,
    and whose reads (Lightning's load of ``last.ckpt`` on resume) load with
    ``weights_only=True`` whatever the environment says, onto the CPU (as Lightning's default
    ``map_location`` does; Lightning moves the states), failing with the file named
    (:func:`ncib.engine.checkpoints.read_checkpoint`)."""

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict[str, Any]:
        if weights_only is False:
            raise ValueError(
                f"ncib loads checkpoints with weights_only=True only; asked for {path}"
            )
        return check_training_checkpoint(path, mmap=False)

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        atomic_torch_save(checkpoint, path)


class EpochCheckpoint(Checkpoint):
    """Save the full training state (weights, optimiser, schedule, loops) to ``dirpath/last.ckpt``.

    Args:
        dirpath: folder of the checkpoint (``<run_dir>/checkpoints``).
        every_n_epochs: save after every n-th epoch (and after the last one).
    """

    FILENAME = EPOCH_CHECKPOINT

    def __init__(self, dirpath: str, every_n_epochs: int = 1):
        if (
            isinstance(every_n_epochs, bool)
            or int(every_n_epochs) != every_n_epochs
            or every_n_epochs < 1
        ):
            raise ValueError(
                f"callbacks.checkpoint.every_n_epochs must be an integer >= 1; got {every_n_epochs!r}"
            )
        self.dirpath, self.every_n_epochs = Path(dirpath), int(every_n_epochs)
        self.last_saved_epoch: int | None = None

    @property
    def path(self) -> Path:
        return self.dirpath / self.FILENAME

    def on_train_start(self, trainer, pl_module) -> None:
        if self.last_saved_epoch is None and self.path.exists():
            self.last_saved_epoch = trainer.current_epoch  # resumed: epochs completed so far

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        done = trainer.current_epoch + 1
        if done % self.every_n_epochs == 0 or done == trainer.max_epochs:
            if trainer.is_global_zero:  # the state a damaged last.ckpt falls back to
                keep_previous(self.path)
            trainer.save_checkpoint(self.path, weights_only=False)  # full state, to resume
            self.last_saved_epoch = done

    def state_dict(self) -> dict[str, Any]:
        return {"every_n_epochs": self.every_n_epochs}


class TrainingDivergedError(RuntimeError):
    """The loss of a member became NaN or infinite."""


class DivergenceGuard(Callback):
    """Stop at once when a member's loss is not finite (one device sync per checked step).

    Args:
        every_n_steps: check every n-th optimiser step (1: every step).
    """

    def __init__(self, every_n_steps: int = 1):
        if int(every_n_steps) < 1:
            raise ValueError(f"every_n_steps must be >= 1; got {every_n_steps!r}")
        self.every_n_steps = int(every_n_steps)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        losses = getattr(pl_module, "last_member_losses", None)
        if losses is None or trainer.global_step % self.every_n_steps:
            return
        finite = torch.isfinite(losses)
        if bool(finite.all()):
            return
        m = int((~finite).nonzero()[0])
        seeds = getattr(pl_module, "seeds", None)
        who = member_name(m) + (f" (seed {seeds[m]})" if seeds else "")
        saved = [cb for cb in trainer.callbacks if isinstance(cb, EpochCheckpoint)]
        last = next((cb for cb in saved if cb.path.exists()), None)
        where = (
            f"the last good checkpoint is {last.path} (after epoch {last.last_saved_epoch or '?'})"
            if last is not None
            else "no checkpoint was written yet"
        )
        value = float(losses[m])
        raise TrainingDivergedError(
            f"training diverged: the training loss of member {who} is {'nan' if math.isnan(value) else value} "
            f"at epoch {trainer.current_epoch} (0-based), optimiser step {trainer.global_step}; {where}. "
            "Lower model.optimizer.lr (in a new run directory: the config may not change on resume) "
            "or check the data."
        )
