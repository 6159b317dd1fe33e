"""The analysis of a seed pair at one epoch, as one object that needs no Trainer.

:class:`PairEpochAnalysis` extracts both members' features once
(:func:`~ncib.engine.features.extract_pair_features`), wraps them in a
:class:`~ncib.analysis.PairAnalysis` (every expensive quantity computed once, whichever groups
ask for it), computes the requested metric groups (:mod:`ncib.metrics.outputs`), logs their
scalars under ``analysis/…`` and appends one record to the run's records file. For the
``classifier`` group it also reads the members' classifier rows once, from the pair's
``classifier_rows()`` (:func:`pair_classifier_rows`). Its callers:
the training callback (:mod:`ncib.callbacks`), ``python -m ncib.analyse`` (saved
checkpoints of a finished run), and the zero-shot transfer experiment.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path

import torch

from ncib.analysis import PairAnalysis
from ncib.analysis.shards import Shard
from ncib.console import headline
from ncib.engine.features import Collective, SingleProcess, extract_pair_features
from ncib.engine.settings import AnalysisSettings
from ncib.metrics import logged_name
from ncib.metrics.legacy import RECORD_SCHEMA
from ncib.metrics.outputs import (
    ANALYSIS_GROUPS,
    CLASSIFIER_GROUP,
    CLASSIFIER_MISSING,
    check_outputs,
    group_outputs,
)
from ncib.rundir.faults import fault_point
from ncib.rundir.records import RECORDS_FILE, append_record

__all__ = ["AnalysisSettings", "PairEpochAnalysis", "pair_classifier_rows"]
log = logging.getLogger("ncib.analysis")


def pair_classifier_rows(pair) -> tuple[torch.Tensor, ...]:
    """The classifier rows of every member of ``pair``, detached float64 on the CPU: one
    ``(K, d)`` tensor per member from ``pair.classifier_rows()``, read once.

    Raises ValueError naming the ``classifier`` group and objective=ce|mse when the pair has no
    ``classifier_rows`` method or it returns None (its members train no classifier), and when it
    returns other than one 2-D tensor per member.
    """
    read = getattr(pair, "classifier_rows", None)
    name = type(pair).__name__
    if not callable(read):
        raise ValueError(CLASSIFIER_MISSING.format(what=f"{name} has no classifier_rows()"))
    rows = read()
    if rows is None:
        raise ValueError(CLASSIFIER_MISSING.format(what=f"{name}.classifier_rows() returned None"))
    members = len(pair.members)
    if (
        isinstance(rows, torch.Tensor)
        or len(rows) != members
        or not all(isinstance(r, torch.Tensor) and r.ndim == 2 for r in rows)
    ):
        shapes = (
            tuple(rows.shape)
            if isinstance(rows, torch.Tensor)
            else [tuple(r.shape) if isinstance(r, torch.Tensor) else type(r).__name__ for r in rows]
        )
        raise ValueError(
            f"{name}.classifier_rows() returned {shapes}: it must return a list of one (K, d) "
            f"tensor per member ({members} members)"
        )
    return tuple(r.detach().to("cpu", torch.float64) for r in rows)


class PairEpochAnalysis:
    """Analyse a pair at an epoch: extract features once, analyse, log, append one record.

    Args:
        run_dir: where the records file is (``<run_dir>/<records_name>``).
        settings: :class:`AnalysisSettings`.
        records_name: file name of the records (``analysis.jsonl`` for a training run).
        loggers: objects with ``log_metrics(dict, step)`` (Lightning loggers).
        collective: the processes sharing the work (default: this process alone). With several,
            each rank extracts and keeps its shard of the training split and the analysis is
            sharded (:class:`ncib.analysis.shards.Shard`): every rank computes the same record
            from sums over all ranks; only rank 0 writes it.
    """

    def __init__(
        self,
        run_dir: str | Path,
        settings: AnalysisSettings,
        records_name: str = RECORDS_FILE,
        loggers: Sequence = (),
        collective: Collective | None = None,
    ):
        self.run_dir, self.settings, self.records_name = Path(run_dir), settings, records_name
        self.loggers = list(loggers)
        self.collective = collective or SingleProcess()

    @property
    def records_path(self) -> Path:
        return self.run_dir / self.records_name

    def run(
        self,
        pair,
        datamodule,
        epoch: int,
        global_step: int,
        groups: Sequence[str],
        device: torch.device | str | None = None,
        extra: Mapping[str, Callable[[PairAnalysis], tuple[dict, dict]]] | None = None,
        meta: Mapping | None = None,
    ) -> dict:
        """Analyse ``pair`` on ``datamodule``'s splits for the metric ``groups``; returns the
        record (also logged and appended). ``device`` defaults to the pair's. ``extra`` maps
        further registry groups to functions of the :class:`PairAnalysis` that compute them
        (the transfer experiment's dimension sweep); ``meta`` adds entries to the record."""
        extra = dict(extra or {})
        unknown = [g for g in groups if g not in ANALYSIS_GROUPS]
        if unknown or not (groups or extra):
            raise ValueError(
                f"analysis groups must be among {sorted(ANALYSIS_GROUPS)}; got {list(groups)}"
            )
        # read before the features are extracted: a pair without a classifier fails at once
        rows = pair_classifier_rows(pair) if CLASSIFIER_GROUP in groups else None
        device = torch.device(device) if device is not None else next(pair.parameters()).device
        started = time.perf_counter()
        st = self.settings
        talk = st.progress and self.collective.rank == 0
        if talk:
            log.info(
                "analysis at epoch %d: extracting features of %d members", epoch, len(pair.members)
            )
        datamodule.setup("fit")
        feats, shard, test_shard = _features(pair, datamodule, device, st, self.collective, talk)
        num_classes = int(datamodule.num_classes)
        k = num_classes if st.k is None else st.k
        record = _record_head(epoch, global_step, num_classes, k, feats, self.collective, st)
        record |= dict(meta or {})
        with torch.no_grad():
            pa = PairAnalysis(
                train=feats.train,
                test=feats.test,
                y_train=feats.y_train,
                y_test=feats.y_test,
                num_classes=num_classes,
                k=k,
                ridge=st.ridge,
                intervals=st.intervals,
                classifier=rows,
                shard=shard,
                test_shard=test_shard,
            )
            scalars: dict[str, float] = {}
            computed = [(g, group_outputs(pa, g)) for g in groups]
            computed += [(g, check_outputs(g, *compute(pa))) for g, compute in extra.items()]
            for group, (values, entries) in computed:
                record[group] = {"scalars": values, **entries}
                scalars |= {logged_name(group, name): v for name, v in values.items()}
        notes = [
            f"{name} = {value} is not finite; the records file stores it as null"
            for name, value in scalars.items()
            if not math.isfinite(value)
        ]
        record["warnings"] = sorted(set(pa.warnings)) + notes
        record["seconds"] = time.perf_counter() - started
        for logger in self.loggers:
            logger.log_metrics({"analysis/epoch": float(epoch), **scalars}, step=int(global_step))
        if self.collective.rank == 0:
            append_record(self.records_path, record)
            fault_point("after_record", epoch)
        if talk:
            log.info("analysis at epoch %d done in %.1f s", epoch, record["seconds"])
            log.info("%s", headline(record))  # the numbers to look at first (ncib/console.py)
        return record


def _features(pair, datamodule, device, settings: AnalysisSettings, collective, talk: bool):
    """The pair's features (each rank's rows of both splits when ranks share the analysis) in
    the analysis's precision (``analysis.precision``: float64 casts the extracted float32
    features once, so that every product of the analysis is float64; float32 leaves them as
    extracted), and the :class:`~ncib.analysis.shards.Shard` of each split (None in one
    process)."""
    sharded = collective.world > 1
    feats = extract_pair_features(
        pair,
        datamodule,
        device,
        settings.max_samples,
        collective,
        talk,
        shard_train=sharded,
        shard_test=sharded,
    )
    if settings.dtype == torch.float64 and feats.train[0].dtype != torch.float64:
        feats = replace(
            feats,
            train=tuple(z.to(settings.dtype) for z in feats.train),
            test=tuple(z.to(settings.dtype) for z in feats.test),
        )
    if not sharded:
        return feats, None, None
    shards = [  # each rank holds its rows of both splits
        Shard(collective.comm, positions.to(device), len(feats.indices[split]))
        for split, positions in (("train", feats.train_positions), ("test", feats.test_positions))
    ]
    return feats, *shards


def _record_head(epoch, global_step, num_classes, k, feats, collective, settings) -> dict:
    """The entries of an analysis record that describe it (docs/design.md §3)."""
    return {
        "schema": RECORD_SCHEMA,
        "epoch": int(epoch),
        "global_step": int(global_step),
        "num_classes": num_classes,
        "k": k,
        "num_train": len(feats.indices["train"]),
        "ranks": collective.world,  # processes that shared it (docs/design.md §3a)
        "num_test": len(feats.indices["test"]),
        "feature_dim": int(feats.train[0].shape[1]),
        "settings": asdict(settings) | {"k": k},
    }
