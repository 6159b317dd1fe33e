"""W&B that reads like the paper: the run's config, names, axes and files (``logger=wandb``).

What a W&B run of ``python -m ncib.run`` holds:

* **config**: the resolved composed config (``wandb.config``; no Hydra internals), so runs
  filter by dataset, backbone, recipe values and seed pair, plus ``ncib_run`` (the seed pair
  as ``"a-b"``, the sweep, the run directory). Lightning's model hyper-parameters, which the
  config already holds, go under ``lightning_hparams`` instead of the top level;
* **names** (:func:`init_kwargs`): ``group`` = the recipe's name
  (``<experiment_name>/<backbone>-<recipe id>``, :mod:`ncib.recipe`): the runs of one recipe
  share it, from one sweep, several or single commands, and differ only in their seed pair;
  ``job_type`` = the dataset;
  the run's name carries the seed pair; tags = ``tags`` + dataset + backbone;
* **axes** (:class:`WandbLogger`): ``analysis/…`` against ``analysis/epoch`` (completed epochs),
  ``train/…`` and ``lr-…`` against ``epoch``; ``linear_eval/…`` (Table 1) as summary values;
* **files** (:func:`log_run_artifact`): the records, ``linear_eval.json``, ``report.md`` and
  ``figures/*.png`` as an artifact of type ``ncib-run`` at the end of the run.

Offline (files under ``<run_dir>/wandb``) unless logged in, as ``${ncib.wandb_mode:}`` decides.
The metric names come from ``ncib/metrics/registry.py`` (docs/metrics.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import WandbLogger as LightningWandbLogger
from pytorch_lightning.utilities import rank_zero_only

from ncib.metrics import GROUPS, keys, logged_name
from ncib.recipe import backbone_name, recipe_name
from ncib.rundir import SWEEP_FILE
from ncib.rundir.records import (
    LINEAR_EVAL_FILE,
    RECORDS_FILE,
    STATE_DIR,
    read_records,
    report_names,
)
from ncib.tracking.mode import wandb_mode

__all__ = [
    "ANALYSIS_STEP",
    "ARTIFACT_TYPE",
    "EPOCH_STEP",
    "SUMMARY_JOB_TYPE",
    "SUMMARY_PREFIX",
    "WandbLogger",
    "define_paper_metrics",
    "group_name",
    "init_kwargs",
    "log_reanalysis",
    "log_run_artifact",
    "run_config",
    "step_metric_for",
    "sweep_dir_of",
]
log = logging.getLogger("ncib.wandb")

ANALYSIS_STEP = "analysis/epoch"  # completed epochs at the analysis (ncib.engine)
EPOCH_STEP = "epoch"  # Lightning's epoch index, logged with every training row
SUMMARY_PREFIX = "linear_eval/"  # Table 1: one value per run, a summary, not a curve
ARTIFACT_TYPE = "ncib-run"
SUMMARY_JOB_TYPE = "sweep-summary"  # the sweep report's W&B runs (not training runs)
# prefix of a logged name → its x-axis (the keys of every prefix come from the registry)
STEP_RULES: tuple[tuple[str, str], ...] = (
    ("analysis/", ANALYSIS_STEP),
    ("train/", EPOCH_STEP),
    ("lr-", EPOCH_STEP),  # LearningRateMonitor: lr-<Optimizer>[...]
)


def step_metric_for(name: str) -> str | None:
    """The x-axis of a logged name (None: none of ncib's)."""
    if name in (ANALYSIS_STEP, EPOCH_STEP):
        return None
    return next((step for prefix, step in STEP_RULES if name.startswith(prefix)), None)


# -- names and config ----------------------------------------------------------------------


def sweep_dir_of(run_dir: str | Path) -> Path | None:
    """The sweep directory a run directory belongs to (``<sweep>/<n>_…``), or None."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            return Path(HydraConfig.get().sweep.dir)
    except (ImportError, ValueError):
        pass
    parent = Path(run_dir).resolve().parent
    return parent if (parent / SWEEP_FILE).is_file() else None


def group_name(cfg, run_dir: str | Path | None = None) -> str:
    """The W&B group: ``logger.wandb.group`` if set, else the recipe's name
    (:func:`ncib.recipe.recipe_name`, ``<experiment_name>/<backbone>-<recipe id>``): the runs of
    one recipe share it whatever sweep or command started them, and only they do.
    The recipe is read from ``run_dir``'s saved config (``.hydra/config.yaml``) when there is
    one, as the sweep report reads it: the config object of a running job is not a safe source,
    since instantiating its nodes resolves some of its interpolations in place."""
    from omegaconf import OmegaConf

    chosen = (cfg.get("logger") or {}).get("wandb", {}) or {}
    if chosen.get("group"):
        return str(chosen["group"])
    saved = Path(run_dir) / ".hydra" / "config.yaml" if run_dir is not None else None
    if saved is not None and saved.is_file():
        cfg = OmegaConf.load(saved)  # YAML as data: nothing is built from it
    return recipe_name(cfg)


def run_config(cfg) -> dict[str, Any]:
    """The composed config, resolved, as plain types (no ``hydra`` node), plus ``ncib_run``."""
    from omegaconf import OmegaConf

    out = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    out.pop("hydra", None)
    run_dir = Path(str(cfg.paths.output_dir))
    sweep = sweep_dir_of(run_dir)
    a, b = (int(s) for s in cfg.seed_pair)
    out["ncib_run"] = {
        "seed_pair": f"{a}-{b}",
        "sweep": sweep.name if sweep is not None else "single",
        "run_dir": str(run_dir),
        "backbone": backbone_name(cfg),
    }
    return out


def init_kwargs(cfg, wandb_id: str | None) -> dict[str, Any]:
    """Extra arguments of the W&B logger (``conf/logger/wandb.yaml`` holds the rest): the run
    id kept for resuming, the resolved config, the group and the tags."""
    chosen = (cfg.get("logger") or {}).get("wandb") or {}
    if not chosen:  # no W&B logger in this run
        return {"id": wandb_id or None, "resume": "allow"}
    tags = [str(t) for t in (chosen.get("tags") or [])] + [
        str(cfg.dataset.name),
        backbone_name(cfg),
    ]
    out = {
        # the config is data for wandb.init, not nodes for Hydra to build
        "_recursive_": False,
        "_convert_": "all",
        "id": wandb_id or None,
        "resume": "allow",
        "group": group_name(cfg, cfg.paths.output_dir),
        "tags": list(dict.fromkeys(tags)),
    }
    try:
        from hydra.utils import get_class

        ours = issubclass(get_class(str(chosen.get("_target_", ""))), WandbLogger)
    except Exception:
        ours = False
    if ours:
        out["run_config"] = run_config(cfg)
    else:  # Lightning's own logger: "config" cannot pass through instantiate()
        log.warning(
            "logger.wandb._target_ is not ncib.tracking.wandb_run.WandbLogger: the run's config is not sent to W&B"
        )
    return out


# -- metric definitions and the logger -----------------------------------------------------


def define_paper_metrics(run) -> list[str]:
    """Define the x-axis of every name ncib logs on a W&B run; returns the defined names.

    Globs (``analysis/*`` → ``analysis/epoch``; ``train/*``, ``lr-*`` → ``epoch``) say the rule,
    and every registry key is also defined by name: W&B matches a logged name against its
    globs in no fixed order, and Lightning's own ``*`` glob (``trainer/global_step``) would
    otherwise win for some keys.
    """
    run.define_metric(ANALYSIS_STEP)
    run.define_metric(EPOCH_STEP)
    defined = []
    for prefix, step in STEP_RULES:
        run.define_metric(prefix + "*", step_metric=step, step_sync=True)
    for group, (_, prefix) in GROUPS.items():
        if prefix == SUMMARY_PREFIX:
            continue
        for k in keys(group):
            name = logged_name(group, k)
            step = step_metric_for(name)
            if step is not None:
                run.define_metric(name, step_metric=step, step_sync=True)
                defined.append(name)
    return defined


class WandbLogger(LightningWandbLogger):
    """Lightning's ``WandbLogger`` (same arguments) with ncib's axes.

    * defines the x-axis of every ncib name when the run starts (:func:`define_paper_metrics`),
      and of any other ``analysis/``, ``train/``, ``lr-`` name the first time it is logged;
    * sends ``linear_eval/…`` to the run's summary, not its history (Table 1 is one value);
    * holds a learning-rate row (logged at an epoch's start, without ``epoch``) until the
      epoch's training row and logs them together, so ``lr-…`` sits at its own epoch;
    * takes the run's config as ``run_config`` (:func:`run_config`; passed to ``wandb.init`` as
      ``config``) and puts Lightning's model hyper-parameters under ``lightning_hparams``
      (that config already holds them at their place).
    """

    def __init__(self, *args, run_config: Mapping[str, Any] | None = None, **kwargs):
        if run_config is not None:  # wandb.init(config=...); "config" is instantiate()'s own
            kwargs["config"] = dict(run_config)
        super().__init__(*args, **kwargs)
        self._ncib_defined: set[str] | None = None
        self._ncib_pending: dict[str, Any] = {}

    @property
    def experiment(self):
        run = super().experiment
        if (
            self._ncib_defined is None
            and rank_zero_only.rank == 0
            and hasattr(run, "define_metric")
        ):
            self._ncib_defined = set(define_paper_metrics(run))
        return run

    @rank_zero_only
    def log_hyperparams(self, params) -> None:
        import json
        from argparse import Namespace

        def plain(v):
            try:
                json.dumps(v)
                return v
            except (TypeError, ValueError, OverflowError):
                return str(v)

        params = vars(params) if isinstance(params, Namespace) else dict(params or {})
        self.experiment.config.update(
            {"lightning_hparams": {str(k): plain(v) for k, v in params.items()}},
            allow_val_change=True,
        )

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        metrics = dict(metrics)
        summary = {k: v for k, v in metrics.items() if k.startswith(SUMMARY_PREFIX)}
        if summary:
            self.experiment.summary.update(summary)
            metrics = {k: v for k, v in metrics.items() if k not in summary}
        if any(k.startswith("lr-") for k in metrics) and EPOCH_STEP not in metrics:
            self._ncib_pending |= metrics  # the epoch's learning rate: wait for its epoch
            return
        if EPOCH_STEP in metrics and self._ncib_pending:
            metrics = self._ncib_pending | metrics
            self._ncib_pending = {}
        if not metrics:
            return
        run = self.experiment
        defined = self._ncib_defined if self._ncib_defined is not None else set()
        for name in metrics:
            step_metric = step_metric_for(name)
            if step_metric is not None and name not in defined and hasattr(run, "define_metric"):
                run.define_metric(name, step_metric=step_metric, step_sync=True)
                defined.add(name)
        super().log_metrics(metrics, step)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if self._ncib_pending:  # a learning rate whose epoch never ended: log it anyway
            pending, self._ncib_pending = self._ncib_pending, {}
            super().log_metrics(pending)
        super().finalize(status)


# -- the run's files -------------------------------------------------------------------------


def run_files(run_dir: str | Path, records_name: str = RECORDS_FILE) -> list[Path]:
    """The files of a run that go to W&B: records, ``linear_eval.json``, the report, its figures
    and the composed config (those that exist)."""
    run_dir = Path(run_dir)
    report, figures = report_names(records_name)
    files = [
        run_dir / records_name,
        run_dir / LINEAR_EVAL_FILE,
        run_dir / report,
        run_dir / ".hydra" / "config.yaml",
    ]
    files += sorted((run_dir / figures).glob("*.png"))
    return [f for f in files if f.is_file()]


def log_run_artifact(
    run_dir: str | Path, loggers: Iterable, records_name: str = RECORDS_FILE
) -> list:
    """Upload the run's files (:func:`run_files`) as an artifact of type ``ncib-run`` to every
    W&B logger among ``loggers``; returns the artifacts (none without a W&B logger)."""
    import wandb

    run_dir = Path(run_dir)
    out = []
    for lg in loggers:
        if not isinstance(lg, LightningWandbLogger):
            continue
        run = lg.experiment
        files = run_files(run_dir, records_name)
        if not files or not hasattr(run, "log_artifact"):
            continue
        artifact = wandb.Artifact(
            f"ncib-run-{run.id}",
            type=ARTIFACT_TYPE,
            description=f"ncib run directory {run_dir}: records, Table 1, report and figures",
            metadata={"run_dir": str(run_dir), "records": records_name},
        )
        for f in files:
            artifact.add_file(str(f), name=f.relative_to(run_dir).as_posix())
        run.log_artifact(artifact)
        log.info("W&B artifact %s: %d files", artifact.name, len(files))
        out.append(artifact)
    return out


REANALYSIS_PREFIX = "reanalysis"


def log_reanalysis(run_dir: str | Path, records_name: str, cfg) -> str | None:
    """Send a re-analysis (``analysis-<name>.jsonl`` of ``python -m ncib.analyse``) to the W&B
    run of the run it analysed, resumed by the id kept in ``.ncib/wandb_id``: every record's
    scalars as ``reanalysis/<name>/analysis/…`` against ``reanalysis/<name>/epoch``, the
    overrides in the summary. Nothing when the run had no W&B logger or no id; offline unless
    logged in, like the run. Returns the prefix logged under, or None."""
    from ncib.metrics import logged_name

    run_dir = Path(run_dir)
    chosen = (cfg.get("logger") or {}).get("wandb")
    id_file = run_dir / STATE_DIR / "wandb_id"
    if not chosen or not id_file.is_file():
        return None
    import wandb

    name = Path(records_name).stem.removeprefix("analysis-")
    prefix = f"{REANALYSIS_PREFIX}/{name}"
    overrides = run_dir / f"{Path(records_name).stem}.overrides"
    run = wandb.init(
        project=str(chosen.get("project") or "ncib"),
        entity=chosen.get("entity") or None,
        id=id_file.read_text().strip(),
        resume="allow",
        dir=str(run_dir),
        mode=wandb_mode(),
        reinit="create_new",
    )
    try:
        run.define_metric(f"{prefix}/epoch")
        run.define_metric(f"{prefix}/*", step_metric=f"{prefix}/epoch")
        for record in read_records(run_dir / records_name):
            scalars = {
                f"{prefix}/{logged_name(group, k)}": v
                for group, part in record.items()
                if isinstance(part, dict) and isinstance(part.get("scalars"), dict)
                for k, v in part["scalars"].items()
                if v is not None
            }
            run.log({f"{prefix}/epoch": float(record["epoch"]), **scalars})
        run.summary[f"{prefix}/overrides"] = (
            overrides.read_text().split() if overrides.is_file() else []
        )
    finally:
        run.finish()
    log.info("re-analysis %s sent to W&B run %s under %s/", records_name, run.id, prefix)
    return prefix
