"""The training objectives a run may choose (``objective=…``, conf/objective/) and the checks
that tie a run's ``model`` to its objective, before any work (docs/configuration.md,
"Objectives"). Pure Python: ``ncib.config`` runs these checks in about a second."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig

__all__ = ["DEFAULT_OBJECTIVE", "OBJECTIVES", "Objective", "check_objective"]

DEFAULT_OBJECTIVE = "supcon"  # the paper's, and what every run made before the key trained


@dataclass(frozen=True)
class Objective:
    """What a run's config must hold for one objective."""

    name: str
    target: str  # the model class (model._target_)
    keys: frozenset[str]  # the model keys of this objective, besides the shared ones
    contrastive: bool  # trained on pairs of views of a sample (needs views >= 2)
    classifier: bool  # trains a classifier (the ``classifier`` analysis group applies)
    fixed: tuple[tuple[str, object], ...] = ()  # model keys that make it this objective

    def describe(self) -> str:
        return f"objective={self.name} ({self.target})"


# the keys every objective's model takes (ncib.models.PairedEncoders)
SHARED_KEYS = frozenset(
    {"_target_", "seeds", "backbone", "head", "optimizer", "scheduler", "channels_last", "compile"}
)
_CONTRASTIVE_KEYS = frozenset({"temperature", "base_temperature", "supervised"})
_CLASSIFIER_KEYS = frozenset({"num_classes", "loss"})

OBJECTIVES: dict[str, Objective] = {
    o.name: o
    for o in (
        Objective(
            "supcon",
            "ncib.models.PairedSupCon",
            _CONTRASTIVE_KEYS,
            contrastive=True,
            classifier=False,
            fixed=(("supervised", True),),
        ),
        Objective(
            "simclr",
            "ncib.models.PairedSupCon",
            _CONTRASTIVE_KEYS,
            contrastive=True,
            classifier=False,
            fixed=(("supervised", False),),
        ),
        Objective(
            "ce",
            "ncib.models.PairedClassifier",
            _CLASSIFIER_KEYS,
            contrastive=False,
            classifier=True,
            fixed=(("loss", "ce"),),
        ),
        Objective(
            "mse",
            "ncib.models.PairedClassifier",
            _CLASSIFIER_KEYS,
            contrastive=False,
            classifier=True,
            fixed=(("loss", "mse"),),
        ),
    )
}
# a model key's value when the config leaves it out (the class's default)
_DEFAULTS = {"supervised": True, "loss": "ce"}
CLASSIFIER_GROUP = "classifier"  # the analysis group that reads a trained classifier


class ObjectiveError(ValueError):
    """A run's config that does not fit its objective."""


def check_objective(cfg: DictConfig) -> Objective:
    """The run's objective, after checking that its ``model`` is that objective's: the model
    class, the keys that make it this objective, no key another objective has (a recipe or an
    override made for SupCon, such as ``model.temperature``, is refused for ``objective=ce``),
    the views it trains on and the analysis groups it can feed."""
    name = cfg.get("objective", DEFAULT_OBJECTIVE)
    if name not in OBJECTIVES:
        raise ObjectiveError(
            f"objective={name!r} is not an objective: one of {', '.join(OBJECTIVES)} "
            "(conf/objective/)"
        )
    objective = OBJECTIVES[name]
    model = cfg.model
    target = model.get("_target_")
    if target != objective.target:
        raise ObjectiveError(
            f"model._target_={target!r} is not the model of {objective.describe()}; choose "
            f"the objective with objective=… (it sets the model), not model=…"
        )
    foreign = sorted(set(model) - SHARED_KEYS - objective.keys)
    if foreign:
        raise ObjectiveError(
            f"{', '.join(f'model.{k}' for k in foreign)} does not apply to {objective.describe()}: "
            f"its model keys are {', '.join(sorted(SHARED_KEYS - {'_target_'} | objective.keys))} "
            "(remove it from the recipe, experiment or command line)"
        )
    for key, value in objective.fixed:
        if model.get(key, _DEFAULTS[key]) != value:
            raise ObjectiveError(
                f"model.{key}={model.get(key)!r} contradicts objective={name}, which sets "
                f"model.{key}={value!r}: choose the objective with objective=…"
            )
    views = cfg.dataset.datamodule.get("views", 2)
    if objective.contrastive and views < 2:
        raise ObjectiveError(
            f"dataset.datamodule.views={views!r} cannot be used with {objective.describe()}: "
            "a contrastive loss needs at least 2 views of each sample"
        )
    groups = list((cfg.get("analysis") or {}).get("groups") or ())
    if CLASSIFIER_GROUP in groups and not objective.classifier:
        raise ObjectiveError(
            f"analysis.groups holds {CLASSIFIER_GROUP!r}, the neural collapse of a trained "
            f"classifier, and objective={name} trains none: it needs objective=ce or mse "
            f"(remove {CLASSIFIER_GROUP} from analysis.groups)"
        )
    return objective
