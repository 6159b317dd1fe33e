"""The analysis plan: at which epochs the pair is analysed, for which metric groups, how.

One object, built and validated once from a run's ``analysis.*`` config by :func:`analysis_plan`
(or from a whole composed run config, earlier layouts included, by :func:`plan_of_run`), read by
every caller: the training callback (:class:`ncib.callbacks.PairAnalysisCallback`),
``python -m ncib.analyse``, the zero-shot transfer analysis and the sweep report's list of
planned epochs. Nothing else validates the analysis keys (``ncib.config`` adds only the checks
that need the rest of the config: ``analysis.k`` against the feature dimension, and so on).

Removing a metric group from a run is one override::

    python -m ncib.run 'analysis.groups=[identifiability,simplex_etf]'   # no GIB keys

The known groups are :data:`ANALYSIS_GROUPS`; the default is :data:`DEFAULT_GROUPS`, without
``classifier`` (NC2 of the classifier rows and NC3), which only a pair whose members train a
classifier can compute (objective=ce or mse): the plan accepts it, and the engine refuses it at
analysis time for a pair without one (:class:`ncib.engine.PairEpochAnalysis`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ncib.analysis.intervals import IntervalSettings
from ncib.engine.settings import AnalysisSettings

__all__ = [
    "ANALYSIS_GROUPS",
    "DEFAULT_GROUPS",
    "AnalysisPlan",
    "AnalysisSchedule",
    "analysis_plan",
    "plan_of_run",
]

# the metric groups the analysis computes, in the registry's order, and those a run computes
# unless told (ncib.metrics.outputs maps each to its outputs; tests/engine/test_plan.py holds
# the two lists equal: the plan does not import the outputs, which need torch's linear algebra)
ANALYSIS_GROUPS: tuple[str, ...] = ("identifiability", "gib", "simplex_etf", "classifier")
DEFAULT_GROUPS: tuple[str, ...] = ("identifiability", "gib", "simplex_etf")
_DEFAULT_INTERVALS = IntervalSettings()
ANALYSIS_CALLBACK = "ncib.callbacks.PairAnalysisCallback"
# runs started before the one analysis callback had one callback per metric group; their saved
# configs still name them (``python -m ncib.analyse`` and the sweep report read those configs)
EARLIER_CALLBACKS = {
    "ncib.callbacks.IdentifiabilityCallback": "identifiability",
    "ncib.callbacks.GIBCallback": "gib",
    "ncib.callbacks.SimplexETFCallback": "simplex_etf",
}


class AnalysisSchedule:
    """Epoch ``e`` means "after ``e`` completed training epochs"; ``0`` is the initialisation.

    Args:
        epochs: explicit epochs to analyse, exactly these (wins over ``every_n_epochs``;
            list 0 to analyse the initialisation).
        every_n_epochs: analyse at ``n, 2n, …`` and at the last epoch.
        at_init: with ``every_n_epochs``, also analyse epoch 0 (before any training).
    """

    def __init__(
        self,
        epochs: Sequence[int] | None = None,
        every_n_epochs: int | None = None,
        at_init: bool = False,
    ):
        if epochs is None and every_n_epochs is None:
            raise ValueError(
                "give analysis.epochs (a list) or analysis.every_n_epochs (an integer)"
            )
        if epochs is not None:
            if isinstance(epochs, str) or not all(_is_int(e) and e >= 0 for e in epochs):
                _bad(
                    "analysis.epochs",
                    epochs if isinstance(epochs, str) else list(epochs),
                    "completed epochs are integers in [0, trainer.max_epochs]",
                )
            epochs = sorted({int(e) for e in epochs})
        elif not _is_int(every_n_epochs) or int(every_n_epochs) < 1:
            _bad(
                "analysis.every_n_epochs",
                every_n_epochs,
                "an integer >= 1 (or give analysis.epochs)",
            )
        self.epochs = epochs
        self.every_n_epochs = None if every_n_epochs is None else int(every_n_epochs)
        self.at_init = bool(at_init)

    def due(self, epoch: int, max_epochs: int | None = None) -> bool:
        if self.epochs is not None:
            return epoch in self.epochs
        if epoch == 0:
            return self.at_init
        return epoch % self.every_n_epochs == 0 or (max_epochs is not None and epoch == max_epochs)

    def planned(self, max_epochs: int) -> list[int]:
        """Every epoch in ``0..max_epochs`` that will be analysed."""
        return [e for e in range(max_epochs + 1) if self.due(e, max_epochs)]

    def __eq__(self, other) -> bool:
        return isinstance(other, AnalysisSchedule) and repr(self) == repr(other)

    def __repr__(self) -> str:
        if self.epochs is not None:
            return f"AnalysisSchedule(epochs={self.epochs}, at_init={self.at_init})"
        return f"AnalysisSchedule(every_n_epochs={self.every_n_epochs}, at_init={self.at_init})"


@dataclass(frozen=True)
class AnalysisPlan:
    """When (``schedule``), what (``groups``, in the registry's order) and how (``settings``)
    the pair is analysed; ``checkpoints``: keep the pair's weights at every analysis epoch."""

    schedule: AnalysisSchedule
    settings: AnalysisSettings
    groups: tuple[str, ...] = DEFAULT_GROUPS
    checkpoints: bool = True

    def due(self, epoch: int, max_epochs: int | None = None) -> list[str]:
        """The groups to compute at ``epoch`` (all of them, or none)."""
        return list(self.groups) if self.schedule.due(epoch, max_epochs) else []

    def planned(self, max_epochs: int) -> list[int]:
        return self.schedule.planned(max_epochs)


def _bad(key: str, value, allowed: str):
    raise ValueError(f"{key}={value!r} cannot be used: {allowed}")


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _groups(groups) -> tuple[str, ...]:
    if groups is None:
        return DEFAULT_GROUPS
    names = [groups] if isinstance(groups, str) else list(groups)
    unknown = [g for g in names if g not in ANALYSIS_GROUPS]
    if unknown or not names:
        _bad(
            "analysis.groups",
            names,
            f"a non-empty list of {', '.join(ANALYSIS_GROUPS)}"
            + (f" ({', '.join(map(repr, unknown))} unknown)" if unknown else "")
            + "; to analyse nothing, drop the callback: '~callbacks.analysis'",
        )
    return tuple(g for g in ANALYSIS_GROUPS if g in names)  # the registry's order, once each


def analysis_plan(analysis: Mapping, groups: Sequence[str] | None = None) -> AnalysisPlan:
    """The plan of an ``analysis`` config node (``cfg.analysis``; a mapping of
    :class:`ncib.config.AnalysisConfig`'s fields). ``groups`` wins over ``analysis.groups``
    (earlier runs named them by their callbacks). Raises ``ValueError`` naming the key, the value
    and what is allowed."""
    a = dict(analysis)
    intervals = a.get("intervals", _DEFAULT_INTERVALS)  # absent: the default; null: none
    settings = AnalysisSettings(
        k=a.get("k"),
        max_samples=a.get("max_samples"),
        ridge=_ridge(a.get("ridge", 1e-6)),
        precision=a.get("precision", "float32"),  # absent in runs made before the key
        progress=bool(a.get("progress", True)),
        intervals=intervals if intervals in (None, _DEFAULT_INTERVALS) else dict(intervals),
    )
    epochs = a.get("epochs")
    schedule = AnalysisSchedule(
        None if epochs is None else list(epochs),
        a.get("every_n_epochs"),
        bool(a.get("at_init", False)),
    )
    return AnalysisPlan(
        schedule,
        settings,
        _groups(a.get("groups") if groups is None else groups),
        bool(a.get("checkpoints", True)),
    )


def _ridge(value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        _bad("analysis.ridge", value, "a number >= 0")
    return float(value)


def plan_of_run(cfg) -> AnalysisPlan | None:
    """The plan of a composed run config (``.hydra/config.yaml`` of a run directory included),
    or None when the run has no analysis callback.

    Runs of this version hold one callback (target :data:`ANALYSIS_CALLBACK`) and
    ``analysis.groups``; earlier runs held one callback per group (:data:`EARLIER_CALLBACKS`),
    whose names give the groups (their settings were ``analysis.*`` already).
    """
    targets = [
        node.get("_target_")
        for node in (cfg.get("callbacks") or {}).values()
        if node is not None and hasattr(node, "get")
    ]
    analysis = cfg.get("analysis") or {}
    if ANALYSIS_CALLBACK in targets:
        return analysis_plan(analysis)
    earlier = [EARLIER_CALLBACKS[t] for t in targets if t in EARLIER_CALLBACKS]
    if earlier:
        return analysis_plan(analysis, groups=earlier)
    return None
