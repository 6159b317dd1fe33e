"""Numbers over seed pairs: :class:`MeanStd`, the sweep's recipes (:func:`group_recipes`) and
Tables 1 and 2 per recipe as mean ± std over the seed pairs of its finished runs."""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from ncib.metrics.registry import key, member_keys
from ncib.recipe import backbone_name, recipe_of
from ncib.report.jobs import FINISHED, Job
from ncib.report.tables import PROBE, Table, scalar

__all__ = [
    "MeanStd",
    "Recipe",
    "group_recipes",
    "last_common_epoch",
    "mean_std",
    "sweep_table1",
    "sweep_table2",
]


@dataclass(frozen=True)
class MeanStd:
    """Mean and sample standard deviation (n − 1; None for one value) of ``n`` values."""

    mean: float
    std: float | None
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.4g}" + (f" ± {self.std:.2g}" if self.std is not None else " (n=1)")


def mean_std(values: Sequence[float | None], scale: float = 1.0) -> MeanStd | None:
    """:class:`MeanStd` of the finite ``values`` times ``scale`` (None when there are none)."""
    vals = [scale * float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return None
    return MeanStd(
        statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else None, len(vals)
    )


@dataclass
class Recipe:
    """Runs of one recipe (:mod:`ncib.recipe`: composed configs that differ only in the seed
    pair and in run-only settings)."""

    label: str
    dataset: str
    backbone: str
    differs: list[str]  # key=value where this recipe differs from the sweep's other recipes
    jobs: list[Job]

    @property
    def finished(self) -> list[Job]:
        return [j for j in self.jobs if j.status == FINISHED]

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", self.label).strip("_")[:80] or "recipe"


def group_recipes(jobs: Sequence[Job]) -> list[Recipe]:
    """Group the jobs that have a composed config by :func:`ncib.recipe.recipe_of`."""
    by_key: dict[str, list[Job]] = {}
    flats: dict[str, dict] = {}
    for job in jobs:
        if job.config is None:
            continue
        flat = recipe_of(job.config)
        key = json.dumps(flat, sort_keys=True, default=str)
        by_key.setdefault(key, []).append(job)
        flats[key] = flat
    all_keys = set().union(*(f.keys() for f in flats.values())) if flats else set()
    varying = sorted(
        k for k in all_keys if len({json.dumps(f.get(k), default=str) for f in flats.values()}) > 1
    )
    recipes = []
    for i, (key, members) in enumerate(by_key.items()):
        cfg = members[0].config
        differs = [f"{k}={flats[key].get(k)}" for k in varying]
        dataset, backbone = str(cfg.dataset.name), backbone_name(cfg)
        label = (
            " · ".join([dataset, backbone, *differs])
            if differs or len(by_key) == 1
            else f"{dataset} · {backbone} · #{i}"
        )
        recipes.append(Recipe(label, dataset, backbone, differs, members))
    return recipes


def sweep_table1(recipes: Sequence[Recipe]) -> Table | None:
    """Table 1 per recipe: offline linear evaluation test accuracy (%), mean ± std over pairs."""
    columns = (*member_keys("{split}_acc/{member}", split="test"), key("both_correct"))
    rows = []
    for r in recipes:
        evals = [j.evaluation for j in r.finished if j.evaluation]
        if evals:
            rows.append(
                [r.label, len(evals), *(mean_std([e[k] for e in evals], 100.0) for k in columns)]
            )
    if not rows:
        return None
    return Table(
        "Table 1 — offline linear evaluation (test accuracy, %), mean ± std over seed pairs",
        ["recipe", "pairs", "m0", "m1", "both correct"],
        rows,
        "Over the finished runs of each recipe; std: sample standard deviation (n − 1).",
    )


def last_common_epoch(jobs: Sequence[Job]) -> int | None:
    """The last analysis epoch every one of ``jobs`` has a record of (None: none shared)."""
    common = (
        set.intersection(*({int(r["epoch"]) for r in j.records} for j in jobs)) if jobs else set()
    )
    return max(common) if common else None


def sweep_table2(recipes: Sequence[Recipe]) -> Table | None:
    """Table 2 per recipe: the analysis probe's test accuracy (%) on raw, normal-score and T_K
    features at the last analysis epoch all finished runs share, mean ± std over pairs."""
    rows = []
    for r in recipes:
        jobs = [j for j in r.finished if j.records]
        epoch = last_common_epoch(jobs)
        if epoch is None:
            continue
        recs = [next(x for x in j.records if int(x["epoch"]) == epoch) for j in jobs]
        for kind in ("raw", "normal", "tk"):
            per_member = [
                [scalar(rec, k) for rec in recs]
                for k in member_keys(PROBE, split="test", probe_input=kind)
            ]
            if any(v is None for vals in per_member for v in vals):
                continue
            means = [sum(vals) / len(vals) for vals in zip(*per_member)]  # per pair, over members
            rows.append(
                [
                    r.label,
                    epoch,
                    kind,
                    len(recs),
                    *(mean_std(v, 100.0) for v in per_member),
                    mean_std(means, 100.0),
                ]
            )
    if not rows:
        return None
    return Table(
        "Table 2 — analysis probe test accuracy (%), mean ± std over seed pairs",
        ["recipe", "epoch", "features", "pairs", "m0", "m1", "mean of members"],
        rows,
        "At the last analysis epoch every finished run of the recipe has; raw, normal scores "
        "('ranked'), T_K ('ranked K-IB'). Std: sample standard deviation (n − 1).",
    )
