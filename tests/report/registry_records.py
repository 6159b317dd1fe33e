"""Records and a Table 1 built from the metric registry alone, every registered key present,
in dicts that note each key read from them."""

from __future__ import annotations

import re

from ncib.metrics.legacy import RECORD_SCHEMA
from ncib.metrics.registry import keys, metric_of

RECORD_GROUPS = ("identifiability", "gib", "simplex_etf", "classifier", "transfer")
"""The groups an analysis record holds (linear_eval goes to linear_eval.json, train to logs)."""
GRID = [1, 2, 3, 4]


class Reads(dict):
    """A dict that adds every key looked up in it (``[]``, ``get``, ``in``) to ``log``."""

    def __init__(self, data, log: set[str]):
        super().__init__(data)
        self.log = log

    def __getitem__(self, name):
        self.log.add(name)
        return super().__getitem__(name)

    def get(self, name, default=None):
        self.log.add(name)
        return super().get(name, default)

    def __contains__(self, name):
        self.log.add(name)
        return super().__contains__(name)


def _entry(name: str):
    """A value of the record entry ``name`` shaped as the registry says."""
    shape = metric_of(name).shape
    if name == "transfer/grid":
        return list(GRID)
    if shape.startswith("{"):  # "{beta, i_tx, i_ty: (M,), i_xy}": fields up to (M,) are arrays
        fields = re.findall(r"(\w+)(:\s*\(M,\))?", shape.strip("{}"))
        arrays = max((i for i, (_, m) in enumerate(fields) if m), default=-1)
        return {f: [0.0, 0.5, 1.0, 1.2] if i <= arrays else 1.5 for i, (f, _) in enumerate(fields)}
    if shape == "()":
        return 1.0
    return [1.1, 1.0, 0.95, 0.9][: len(GRID)]


def complete_record(epoch: int, log: set[str], groups=RECORD_GROUPS) -> dict:
    """An analysis record with every registered key of ``groups`` (values made up, positive),
    each group's part and its scalars noting what is read into ``log``."""
    record = {
        "schema": RECORD_SCHEMA,
        "epoch": epoch,
        "global_step": 10 * epoch,
        "num_classes": 10,
        "k": len(GRID),
        "feature_dim": 16,
        "num_train": 100,
        "num_test": 50,
        "warnings": [],
        "source": {"dataset": "digits", "seed_pair": [0, 1]},
    }
    for group in groups:
        scalars = {k: 0.3 + 0.01 * i + 0.05 * epoch for i, k in enumerate(keys(group))}
        entries = {k: _entry(k) for k in keys(group, scalars=False)}
        record[group] = Reads({"scalars": Reads(scalars, log), **entries}, log)
    return record


def complete_evaluation(log: set[str]) -> dict:
    """A ``linear_eval.json`` with every registered key of the linear evaluation."""
    values = {k: 0.9 for k in keys("linear_eval")} | {"protocol": "cached", "num_test": 50}
    return Reads(values, log)
