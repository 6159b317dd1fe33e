"""Callbacks that stop a real run gracefully (SIGTERM, as a scheduler does) or hold it at a
chosen point."""

from __future__ import annotations

import os
import signal
import time
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


class WaitForFile(Callback):
    """Hold the training at the start of epoch ``epoch`` (0-based) until the file ``flag``
    exists (at most ``timeout`` seconds, then fail): a test acts on a run that is certainly
    still training, then lets it go on."""

    def __init__(self, epoch: int, flag: str, timeout: float = 600.0):
        self.epoch, self.flag, self.timeout = int(epoch), Path(flag), float(timeout)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch != self.epoch:
            return
        end = time.monotonic() + self.timeout
        while not self.flag.exists():
            if time.monotonic() > end:
                raise TimeoutError(f"{self.flag} did not appear in {self.timeout:.0f} s")
            time.sleep(0.1)
