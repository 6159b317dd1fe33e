"""What makes two runs the same recipe: their composed configs agree on everything but the seed
pair and the settings that only say where and how a run executes (paths, logging, resume,
scheduler account). One definition serves the sweep report's grouping and the W&B group, so a
recipe's seed pairs meet in one group whether they came from one sweep, two sweeps or single
commands, and different recipes never share one (docs/design.md §7, "Recipes and groups").

Values are compared as written in the composed config that Hydra saves in a run directory
(``.hydra/config.yaml``; interpolations unresolved): a value derived from the seed pair
(``model.seeds: ${seed_pair}``) or from the machine (``${ncib.if_cuda:…}``, ``${oc.env:…}``)
reads the same in every run of a recipe.
"""

from __future__ import annotations

import hashlib
import json

from omegaconf import DictConfig, OmegaConf

from ncib.rundir.run_config import flat_config

__all__ = ["RUN_ONLY", "backbone_name", "main", "recipe_id", "recipe_name", "recipe_of"]

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


def recipe_of(cfg: DictConfig) -> dict[str, object]:
    """The composed config flattened to ``{dotted key: value}``, interpolations as written,
    without the seed pair and the :data:`RUN_ONLY` settings."""
    container = OmegaConf.to_container(cfg, resolve=False)
    container.pop("hydra", None)
    if container.get("objective") == "supcon":
        # the default objective, which runs made before the key existed trained: their recipe
        # (and W&B group) stays the one of a SupCon run made today
        container.pop("objective")
    return {k: v for k, v in flat_config(container).items() if not _run_only(k)}


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
    """``<experiment_name>/<backbone>-<recipe_id>``: the W&B group of the recipe's runs, and
    the name ``python -m ncib.dashboard --group`` takes."""
    return f"{cfg.experiment_name}/{backbone_name(cfg)}-{recipe_id(cfg)}"


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
