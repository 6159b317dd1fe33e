"""A curve over analysis epochs, the same object for one run and for a sweep's recipe.

At each analysis epoch a :class:`Series` holds the mean ± spread over ``n`` seed pairs of a
pair's value (:func:`pair_value`: the metric itself, or for a per-member metric whose member is
not given, the mean over the two members). One run is one pair (``n = 1``, no spread); a
recipe of a sweep is its finished runs' pairs (spread: the sample standard deviation, n − 1).
The figures draw series (:mod:`ncib.report.figures`), so a run's report and a sweep's report
draw the same curves, the sweep's with a band.

Metrics are named as registry templates with their axes (``"nc1/{space}/{member}",
space="raw"``), resolved by :func:`ncib.metrics.registry.key`: a name it does not hold is an
error.
"""

from __future__ import annotations

import statistics
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from ncib.metrics.registry import key, member_keys
from ncib.report.aggregate import mean_std
from ncib.report.tables import scalar

__all__ = ["Series", "jobs_series", "pair_value", "run_series", "series"]


@dataclass(frozen=True)
class Series:
    """Per analysis epoch, the mean and the sample standard deviation (None where ``n`` is 1)
    of a pair's value over ``n`` seed pairs. Empty (falsy) when no epoch has the value."""

    epochs: tuple[int, ...] = ()
    mean: tuple[float, ...] = ()
    std: tuple[float | None, ...] = ()
    n: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.epochs)

    @property
    def pairs(self) -> int:
        """The most seed pairs any epoch averages (0 for an empty series)."""
        return max(self.n, default=0)

    def scaled(self, factor: float) -> Series:
        """The series times ``factor`` (accuracies in percent)."""
        return Series(
            self.epochs,
            tuple(factor * m for m in self.mean),
            tuple(None if s is None else abs(factor) * s for s in self.std),
            self.n,
        )

    def at(self, epochs: Collection[int]) -> Series:
        """The series restricted to ``epochs``."""
        keep = [i for i, e in enumerate(self.epochs) if e in epochs]
        columns = (self.epochs, self.mean, self.std, self.n)
        return Series(*(tuple(col[i] for i in keep) for col in columns))


def pair_value(record: dict, template: str, **axes: str) -> float | None:
    """A pair's value of the registered ``template`` at one record: the metric itself, or, for a
    per-member template whose ``member`` is not given, the mean over the members (None if any
    member lacks it)."""
    if "{member}" in template and "member" not in axes:
        vals = [scalar(record, k) for k in member_keys(template, **axes)]
        return None if any(v is None for v in vals) else statistics.fmean(vals)
    return scalar(record, key(template, **axes))


def series(runs: Sequence[Sequence[dict]], template: str, **axes: str) -> Series:
    """The :class:`Series` of :func:`pair_value` over ``runs`` (one list of records per seed
    pair): per epoch any run has, the mean ± std over the runs whose value there is finite."""
    epochs = sorted({int(r["epoch"]) for records in runs for r in records})
    cols: tuple[list, list, list, list] = ([], [], [], [])
    for e in epochs:
        values = [
            pair_value(r, template, **axes) for rs in runs for r in rs if int(r["epoch"]) == e
        ]
        ms = mean_std(values)
        if ms is not None:
            for col, v in zip(cols, (e, ms.mean, ms.std, ms.n)):
                col.append(v)
    return Series(*(tuple(c) for c in cols))


def run_series(records: Sequence[dict], template: str, **axes: str) -> Series:
    """The series of one run (``n = 1``, no spread)."""
    return series([records], template, **axes)


def jobs_series(jobs: Sequence, template: str, **axes: str) -> Series:
    """The series over the seed pairs of a sweep's jobs (:class:`ncib.report.jobs.Job`)."""
    return series([j.records for j in jobs], template, **axes)
