"""Numbers over seed pairs: :class:`MeanStd`, the sweep's recipes (:func:`group_recipes`) and
Tables 1 and 2 per recipe as mean ± std over the seed pairs of its finished runs, and, when a
recipe's objective trains a classifier, the NC3 table (:func:`sweep_nc3_table`).

A recipe's label names its dataset, backbone and objective, then the settings that tell it
from the sweep's other recipes of that dataset, backbone and objective
(``digits · convnet · ce``, ``digits · convnet · supcon · model.temperature=0.5``): the
objectives of an ``experiment=objectives`` sweep are the rows of its tables and the bands of
its comparison figures."""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from ncib.metrics.registry import key, member_keys
from ncib.objectives import DEFAULT_OBJECTIVE, OBJECTIVES
from ncib.recipe import backbone_name, objective_of, recipe_of
from ncib.report.jobs import FINISHED, Job
from ncib.report.tables import PROBE, Table, scalar

__all__ = [
    "MeanStd",
    "Recipe",
    "group_recipes",
    "last_common_epoch",
    "mean_std",
    "sweep_nc3_table",
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
    differs: list[str]  # key=value where it differs from the sweep's other recipes of its
    # dataset, backbone and objective
    jobs: list[Job]
    objective: str = DEFAULT_OBJECTIVE
    legend: str = ""  # the label without what every recipe of the sweep shares (figures' keys)

    @property
    def finished(self) -> list[Job]:
        return [j for j in self.jobs if j.status == FINISHED]

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", self.label).strip("_")[:80] or "recipe"

    @property
    def trains_classifier(self) -> bool:
        """Whether its objective trains a classifier (the ``classifier`` group applies)."""
        known = OBJECTIVES.get(self.objective)
        return known is not None and known.classifier


def _varying(flats: Sequence[dict]) -> list[str]:
    """The keys whose values are not the same in all of ``flats``."""
    names = set().union(*(f.keys() for f in flats)) if flats else set()
    return sorted(k for k in names if len({json.dumps(f.get(k), default=str) for f in flats}) > 1)


def group_recipes(jobs: Sequence[Job]) -> list[Recipe]:
    """Group the jobs that have a composed config by :func:`ncib.recipe.recipe_of`, in the
    order of their first job; label each by dataset, backbone and objective
    (:func:`ncib.recipe.objective_of`) and the settings that tell it from the other recipes of
    the same three."""
    by_key: dict[str, list[Job]] = {}
    flats: dict[str, dict] = {}
    for job in jobs:
        if job.config is None:
            continue
        flat = recipe_of(job.config)
        key = json.dumps(flat, sort_keys=True, default=str)
        by_key.setdefault(key, []).append(job)
        flats[key] = flat
    named = {  # recipe key -> (dataset, backbone, objective)
        k: (str(m[0].config.dataset.name), backbone_name(m[0].config), objective_of(m[0].config))
        for k, m in by_key.items()
    }
    recipes = []
    for key, members in by_key.items():
        kin = [flats[k] for k in by_key if named[k] == named[key]]
        differs = [f"{k}={flats[key].get(k)}" for k in _varying(kin)]
        dataset, backbone, objective = named[key]
        label = " · ".join([dataset, backbone, objective, *differs])
        # the figures' legends leave out what every recipe of the sweep shares
        shared = {j for j in range(3) if len({named[k][j] for k in by_key}) == 1}
        legend = " · ".join([*(v for j, v in enumerate(named[key]) if j not in shared), *differs])
        recipes.append(
            Recipe(label, dataset, backbone, differs, members, objective, legend or label)
        )
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


NC3_COLUMNS = (  # registered per-member templates and their column names
    ("nc3/{member}", "NC3"),
    ("nc3/cos_mean/{member}", "mean cos(w_k, μ_k − μ_G)"),
    ("classifier/equinorm/{member}", "classifier equinorm"),
    ("classifier/cos_mean/{member}", "classifier cos mean"),
)


def first_common_epoch(jobs: Sequence[Job]) -> int | None:
    """The first analysis epoch every one of ``jobs`` has a record of (None: none shared)."""
    common = (
        set.intersection(*({int(r["epoch"]) for r in j.records} for j in jobs)) if jobs else set()
    )
    return min(common) if common else None


def _members_mean(records: Sequence[dict], template: str) -> MeanStd | None:
    """Mean ± std over pairs of the mean over the members of ``template`` (None if any member
    of any pair lacks it)."""
    pairs = []
    for rec in records:
        vals = [scalar(rec, k) for k in member_keys(template)]
        if any(v is None for v in vals):
            return None
        pairs.append(sum(vals) / len(vals))
    return mean_std(pairs)


def sweep_nc3_table(recipes: Sequence[Recipe]) -> Table | None:
    """The classifier side of neural collapse per recipe (docs/math.md §6a): NC3 per member and
    as the mean of the members, and the classifier rows' NC2, mean ± std over pairs at the
    first and the last analysis epoch all finished runs of the recipe share. A recipe whose
    objective trains no classifier (supcon, simclr) has one row of "—". None when no recipe's
    objective trains a classifier."""
    if not any(r.trains_classifier for r in recipes):
        return None
    rows = []
    for r in recipes:
        jobs = [j for j in r.finished if j.records]
        if not r.trains_classifier:
            rows.append([r.label, None, len(jobs), *[None] * (2 + len(NC3_COLUMNS))])
            continue
        epochs = dict.fromkeys(e for e in (first_common_epoch(jobs), last_common_epoch(jobs)))
        for epoch in (e for e in epochs if e is not None):
            recs = [next(x for x in j.records if int(x["epoch"]) == epoch) for j in jobs]
            per_member = [
                mean_std([scalar(rec, k) for rec in recs]) for k in member_keys(NC3_COLUMNS[0][0])
            ]
            rows.append(
                [
                    r.label,
                    epoch,
                    len(recs),
                    *per_member,
                    *(_members_mean(recs, t) for t, _ in NC3_COLUMNS),
                ]
            )
    return Table(
        "NC3 — the classifier side of neural collapse, mean ± std over seed pairs",
        [
            "recipe",
            "epoch",
            "pairs",
            "NC3 m0",
            "NC3 m1",
            *(f"{name} (mean of members)" for _, name in NC3_COLUMNS),
        ],
        rows,
        "NC3 = ‖W/‖W‖_F − M/‖M‖_F‖_F² between each member's classifier rows and its centred "
        "class means (0: self-dual), at the first and the last analysis epoch every finished run "
        "of the recipe has (docs/math.md §6a). —: the objective trains no classifier (supcon, "
        "simclr: the `classifier` group is absent), or the runs did not record the group "
        "(analysis.groups without `classifier`).",
    )
