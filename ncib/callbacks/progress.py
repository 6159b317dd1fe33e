"""Progress as plain log lines where the output is not a terminal (ncib/console.py)."""

from __future__ import annotations

import logging
import time

from pytorch_lightning import Callback

from ncib.console import interactive

__all__ = ["ProgressLines"]
log = logging.getLogger("ncib")


class ProgressLines(Callback):
    """Plain progress lines where stderr is not a terminal (a SLURM ``.out``, a pipe): every
    ``every_percent`` of an epoch, at least ``min_seconds`` apart, and at its end, with the
    members' losses; silent on a terminal, where Lightning's bar shows progress. Logs the
    members' parameter count once (Lightning's model summary is off: docs/design.md §2)."""

    def __init__(self, every_percent: int = 25, min_seconds: float = 30.0):
        if not 1 <= int(every_percent) <= 100:
            raise ValueError(f"every_percent must be in 1..100; got {every_percent}")
        self.every, self.min_seconds = int(every_percent), float(min_seconds)
        self.active = not interactive()
        self._next, self._last = 0, 0.0

    def on_fit_start(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            counts = [
                sum(p.numel() for p in m.parameters()) for m in getattr(pl_module, "members", [])
            ]
            if counts:
                log.info("members: %s parameters", " + ".join(f"{c:,}" for c in counts))

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._next, self._last = self.every, time.monotonic()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        total = trainer.num_training_batches
        if not (self.active and trainer.is_global_zero) or not total or total == float("inf"):
            return
        done = batch_idx + 1
        percent = 100 * done // total
        if (
            done >= total
            or percent < self._next
            or time.monotonic() - self._last < self.min_seconds
        ):
            return  # the epoch's end has its own line, with the epoch's losses
        self._next = (percent // self.every + 1) * self.every
        self._last = time.monotonic()
        log.info(
            "epoch %d/%s: %d%% (%d/%d batches)",
            trainer.current_epoch + 1, trainer.max_epochs, percent, done, total,
        )  # fmt: skip

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        total = trainer.num_training_batches
        if not (self.active and trainer.is_global_zero) or not total or total == float("inf"):
            return
        losses = " ".join(
            f"{name.rsplit('/', 1)[-1]} {float(value):.4g}"
            for name, value in sorted(trainer.callback_metrics.items())
            if name.startswith("train/loss/")
        )
        log.info(
            "epoch %d/%s: 100%% (%d/%d batches)%s",
            trainer.current_epoch + 1, trainer.max_epochs, total, total,
            f", loss {losses}" if losses else "",
        )  # fmt: skip
