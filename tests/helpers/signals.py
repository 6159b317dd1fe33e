"""A callback that stops a real run gracefully (SIGTERM, as a scheduler does) at a chosen point."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from pytorch_lightning import Callback


class SigtermOnce(Callback):
    """Send this process SIGTERM after batch ``batch`` of epoch ``epoch`` (0-based), once: the
    file ``flag`` records that it was sent, so the resumed run (same config) is not stopped."""

    def __init__(self, epoch: int, batch: int, flag: str):
        self.epoch, self.batch, self.flag = int(epoch), int(batch), Path(flag)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if (trainer.current_epoch, batch_idx) == (
            self.epoch,
            self.batch,
        ) and not self.flag.exists():
            self.flag.touch()
            os.kill(os.getpid(), signal.SIGTERM)
