"""Shared machinery of the analysis callbacks: one *round* per analysis epoch.

The first analysis callback that is due at an epoch opens the round: it extracts both
members' features once (:func:`~ncib.callbacks.features.extract_features`) and wraps them in a
:class:`~ncib.analysis.PairAnalysis`, which computes every expensive quantity (normal scores,
covariances, GIB, T_K, …) once, whichever callbacks ask for it. Each due callback adds its
scalars and record entries; when the last one has, the round logs the scalars to every logger
under ``analysis/…`` and appends one record to ``<run_dir>/analysis.jsonl`` (rank zero).
"""

from __future__ import annotations

import itertools
import logging
import re
import time
import weakref
from pathlib import Path

import torch
from pytorch_lightning import Callback
from pytorch_lightning.utilities import rank_zero_only

from ncib.callbacks.features import extract_features
from ncib.callbacks.schedule import AnalysisSchedule
from ncib.records import RECORDS_FILE, append_record

__all__ = ["AnalysisCallback", "AnalysisRound"]
log = logging.getLogger("ncib.analysis")

_ROUNDS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # trainer -> open round


class AnalysisRound:
    """Everything computed at one analysis epoch, shared by the callbacks due then."""

    def __init__(self, trainer, pl_module, epoch: int, settings: dict, participants: list):
        from ncib.analysis import PairAnalysis

        self.epoch, self.settings = epoch, settings
        self.participants = participants
        self.scalars: dict[str, float] = {}
        self.started = time.perf_counter()
        progress = trainer.is_global_zero and settings["progress"]
        if progress:
            log.info("analysis at epoch %d: extracting features of %d members", epoch, len(pl_module.members))
        feats = extract_features(trainer, pl_module, settings["max_samples"], progress=progress)
        k = settings["k"] or trainer.datamodule.num_classes
        self.analysis = PairAnalysis(
            train=feats.train, test=feats.test, y_train=feats.y_train, y_test=feats.y_test,
            num_classes=trainer.datamodule.num_classes, k=k, ridge=settings["ridge"],
        )
        self.record: dict = {
            "epoch": epoch,
            "global_step": trainer.global_step,
            "num_classes": trainer.datamodule.num_classes,
            "k": k,
            "num_train": len(feats.y_train),
            "num_test": len(feats.y_test),
            "feature_dim": int(feats.train[0].shape[1]),
        }

    def contribute(self, callback: AnalysisCallback, scalars: dict[str, float], entries: dict) -> None:
        self.scalars.update({f"analysis/{k}": float(v) for k, v in scalars.items()})
        self.record[callback.name] = {"scalars": dict(scalars), **entries}

    @property
    def complete(self) -> bool:
        return all(cb.name in self.record for cb in self.participants)

    def finish(self, trainer) -> None:
        self.record["warnings"] = sorted(set(self.analysis.warnings))
        self.record["seconds"] = time.perf_counter() - self.started
        metrics = {"analysis/epoch": float(self.epoch), **self.scalars}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)
        self._write(trainer)
        if trainer.is_global_zero and self.settings["progress"]:
            log.info("analysis at epoch %d done in %.1f s", self.epoch, self.record["seconds"])

    @rank_zero_only
    def _write(self, trainer) -> None:
        append_record(Path(trainer.default_root_dir) / RECORDS_FILE, self.record)


class AnalysisCallback(Callback):
    """Base of the analysis callbacks: the schedule, and the shared round.

    Subclasses set ``name`` and implement :meth:`analyse`, returning the scalars to log
    (keys without the ``analysis/`` prefix) and the non-scalar entries of the record.

    Args:
        epochs: analyse after these numbers of completed epochs (0 = initialisation).
        every_n_epochs: or every n epochs (and at the last one).
        at_init: also analyse the initialisation (epoch 0).
        k: dimension of the IB representation T_K (default: the number of classes K).
        max_samples: analyse a stratified subset of at most this many training samples.
        ridge: relative ridge of the covariances (DESIGN.md §4).
        progress: show progress of the extraction and the analysis.
    """

    name = "analysis"

    def __init__(
        self,
        epochs: list[int] | None = None,
        every_n_epochs: int | None = None,
        at_init: bool = False,
        k: int | None = None,
        max_samples: int | None = None,
        ridge: float = 1e-6,
        progress: bool = True,
    ):
        self.schedule = AnalysisSchedule(epochs, every_n_epochs, at_init)
        self.settings = {"k": k, "max_samples": max_samples, "ridge": float(ridge), "progress": bool(progress)}

    def analyse(self, analysis) -> tuple[dict[str, float], dict]:
        raise NotImplementedError

    @classmethod
    def documented_keys(cls) -> list[str]:
        """The scalar keys listed in the class docstring's table (``{a,b}`` expanded),
        without the ``analysis/`` prefix."""
        keys = []
        for line in (cls.__doc__ or "").splitlines():
            m = re.match(r"\s*``([^`]+)``\s{2,}", line)
            if not m:
                continue
            parts = re.split(r"\{([^}]*)\}", m.group(1))
            choices = [[p] if i % 2 == 0 else p.split(",") for i, p in enumerate(parts)]
            keys += ["".join(c) for c in itertools.product(*choices)]
        return keys

    # -- hooks --------------------------------------------------------------------------------
    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.global_step == 0 and trainer.current_epoch == 0:
            self._maybe_run(trainer, pl_module, 0)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self._maybe_run(trainer, pl_module, trainer.current_epoch + 1)

    # -- the round ------------------------------------------------------------------------------
    def _maybe_run(self, trainer, pl_module, epoch: int) -> None:
        if not self.schedule.due(epoch, trainer.max_epochs):
            return
        rnd = _ROUNDS.get(trainer)
        if rnd is None or rnd.epoch != epoch:
            participants = [
                cb for cb in trainer.callbacks
                if isinstance(cb, AnalysisCallback) and cb.schedule.due(epoch, trainer.max_epochs)
            ]
            for cb in participants:
                if cb.settings | {"progress": True} != self.settings | {"progress": True}:
                    raise ValueError(
                        f"analysis callbacks {self.name!r} and {cb.name!r} disagree on their settings "
                        f"({self.settings} vs {cb.settings}); set them once under analysis.*"
                    )
            rnd = _ROUNDS[trainer] = AnalysisRound(trainer, pl_module, epoch, self.settings, participants)
        with torch.no_grad():
            scalars, entries = self.analyse(rnd.analysis)
        rnd.contribute(self, scalars, entries)
        if rnd.complete:
            rnd.finish(trainer)
            del _ROUNDS[trainer]
