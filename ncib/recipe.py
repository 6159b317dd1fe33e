"""What makes two runs the same recipe: their composed configs agree on everything but the seed
pair and the settings that only say where and how a run executes (paths, logging, resume,
scheduler account). One definition serves the sweep report's grouping and the W&B group, so a
recipe's seed pairs meet in one group whether they came from one sweep, two sweeps or single
commands, and different recipes never share one (docs/design.md §7, "Recipes and groups").

Values are compared as written in the composed config that Hydra saves in a run directory
(``.hydra/config.yaml``; interpolations unresolved): a value derived from the seed pair
(``model.seeds: ${seed_pair}``) or from the machine (``${ncib.if_cuda:…}``, ``${oc.env:…}``)
reads the same in every run of a recipe.

The objective (``objective=…``, conf/objective/) is part of the recipe, but the default one,
``supcon``, is left out of it: a run made before the objectives existed has no ``objective``
key and trained SupCon, so its recipe, and its W&B group, stay those of a SupCon run made
today. The other objectives name themselves in the W&B group (:func:`recipe_name`). Likewise a
key added since (:data:`ncib.rundir.run_config.ADDED_KEYS`, ``analysis.precision``) is part of
the recipe only at another value than the one earlier runs had.
"""

from __future__ import annotations

import hashlib
import json

from omegaconf import DictConfig, OmegaConf

from ncib.objectives import DEFAULT_OBJECTIVE
from ncib.rundir.run_config import ADDED_KEYS, flat_config

__all__ = [
    "DEFAULT_OBJECTIVE",
    "RUN_ONLY",
    "backbone_name",
    "main",
    "objective_of",
    "recipe_id",
    "recipe_name",
    "recipe_of",
]

"""The objective of a run whose config has no ``objective`` key (conf/config.yaml's default)."""

# settings that change where or how a run executes, never what it computes
RUN_ONLY = (
    "seed_pair",
    "paths",
    "logger",
    "resume",
    "ckpt_path",
    "report",
    "tags",
    "optimized_metric",
    "analysis.progress",
    "cluster.partition",
    "cluster.account",
    "cluster.time_min",
    "cluster.max_requeues",
    "cluster.cpus_per_task",
    "cluster.mem_gb_per_task",
)


def _run_only(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in RUN_ONLY)


def objective_of(cfg) -> str:
    """The run's objective (``supcon``, ``ce``, ``mse``, ``simclr``): its ``objective`` key, or
    :data:`DEFAULT_OBJECTIVE` for a run made before the key existed."""
    return str(cfg.get("objective") or DEFAULT_OBJECTIVE)


def recipe_of(cfg: DictConfig) -> dict[str, object]:
    """The composed config flattened to ``{dotted key: value}``, interpolations as written,
    without the seed pair and the :data:`RUN_ONLY` settings; ``objective`` only when it is
    not the default (:data:`DEFAULT_OBJECTIVE`, which runs without the key trained)."""
    container = OmegaConf.to_container(cfg, resolve=False)
    container.pop("hydra", None)
    flat = {k: v for k, v in flat_config(container).items() if not _run_only(k)}
    if flat.get("objective", DEFAULT_OBJECTIVE) == DEFAULT_OBJECTIVE:
        flat.pop("objective", None)
    for key, earlier in ADDED_KEYS.items():  # absent from runs made before it: the same recipe
        if key in flat and flat[key] == earlier:
            del flat[key]
    return flat


def recipe_id(cfg: DictConfig) -> str:
    """Eight hex digits that identify :func:`recipe_of` (equal recipes, equal ids)."""
    text = json.dumps(recipe_of(cfg), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def backbone_name(cfg) -> str:
    """``backbone.name`` (resnet18, resnet50) or its class in lower case (convnet)."""
    backbone = cfg.get("backbone") or {}
    name = backbone.get("name") or str(backbone.get("_target_", "unknown")).rsplit(".", 1)[-1]
    return str(name).lower()


def recipe_name(cfg: DictConfig) -> str:
    """The W&B group of the recipe's runs, and the name ``python -m ncib.dashboard --group``
    takes: ``<experiment_name>/<backbone>-<recipe_id>`` for SupCon (the default objective: the
    name its runs had before the objectives existed), ``<experiment_name>/<objective>/<backbone>-
    <recipe_id>`` for another objective (``digits/ce/convnet-1a2b3c4d``)."""
    objective = objective_of(cfg)
    where = "" if objective == DEFAULT_OBJECTIVE else f"{objective}/"
    return f"{cfg.experiment_name}/{where}{backbone_name(cfg)}-{recipe_id(cfg)}"


def main(argv=None) -> None:
    """``python -m ncib.recipe <run_dir>...``: each run's recipe name (its W&B group, what
    ``python -m ncib.dashboard --group`` takes); ``--keys``: also the settings that define it."""
    import argparse

    from ncib.rundir import load_run_config

    parser = argparse.ArgumentParser(prog="python -m ncib.recipe", description=main.__doc__)
    parser.add_argument("run_dirs", nargs="+", help="run directories of python -m ncib.run")
    parser.add_argument("--keys", action="store_true", help="print the recipe's settings too")
    args = parser.parse_args(argv)
    for run_dir in args.run_dirs:
        cfg = load_run_config(run_dir, error=parser.error, to_instantiate=False)
        print(f"{recipe_name(cfg)}\t{run_dir}")
        if args.keys:
            for k, v in sorted(recipe_of(cfg).items()):
                print(f"  {k} = {v}")


if __name__ == "__main__":
    main()
