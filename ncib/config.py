"""Structured-config schema (a typo in a config file or an override is an error) and the
checks that run before any work. Imports neither Lightning nor the analysis engine (the plan's
settings need torch), so ``python -m ncib.run`` refuses a bad command line in about 3.5 s on
2 CPU cores instead of about 10 (tests/test_import_rules.py holds Lightning out)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

from ncib.console import interactive
from ncib.engine.plan import analysis_plan
from ncib.metrics import keys, logged_name
from ncib.objectives import ObjectiveError, check_objective
from ncib.tracking.mode import wandb_mode

__all__ = ["ConfigError", "RunConfig", "feature_dim", "register", "validate"]
log = logging.getLogger("ncib.config")


class ConfigError(ValueError):
    """A configuration value that ncib cannot run with."""


@dataclass
class DatasetConfig:
    name: str = MISSING
    classes: Any = None  # a class subset: None, n (the first n) or a list of ids
    num_classes: int = MISSING
    in_channels: int = MISSING
    image_size: int = MISSING
    datamodule: Any = MISSING


@dataclass
class PathsConfig:
    data_dir: str = MISSING
    output_dir: str = MISSING


@dataclass
class ClusterConfig:
    """The process layout of a job, from which trainers and launchers derive theirs."""

    nodes: int = 1
    gpus_per_node: int = 1
    cpus_per_task: int = 8
    mem_gb_per_task: int = 64
    partition: str | None = None
    account: str | None = None
    time_min: int = 2880
    max_requeues: int = 10


@dataclass
class AnalysisConfig:
    """The analysis plan (``ncib/engine/plan.py``): when, which metric groups, how."""

    groups: list[str] = field(default_factory=lambda: ["identifiability", "gib", "simplex_etf"])
    epochs: list[int] | None = None  # completed epochs to analyse (0 = initialisation)
    every_n_epochs: int | None = 10  # used when epochs is null; the last epoch is always included
    at_init: bool = True  # with every_n_epochs: also epoch 0 (a list is exact: list 0 there)
    k: int | None = None  # dimension of T_K; null = number of classes
    max_samples: int | None = None  # stratified training subset for large datasets
    ridge: float = 1.0e-6
    precision: str = "float32"  # float32 | float64: the dtype of the analysis's products
    progress: bool = True
    checkpoints: bool = True  # keep the pair's weights at every analysis epoch
    # intervals of the held-out numbers: a mapping of IntervalSettings' fields, or null for none
    # (checked by ncib.engine.plan.analysis_plan when the config is validated)
    intervals: Any = None


@dataclass
class RunConfig:
    """Top level of ``conf/config.yaml``. Group contents with a ``_target_`` are checked by the
    target's signature when instantiated (every option is instantiated by the tests)."""

    seed_pair: list[int] = field(default_factory=lambda: [0, 1])
    objective: str = "supcon"  # set by the objective group (conf/objective/)
    dataset: DatasetConfig = MISSING
    backbone: Any = MISSING
    model: Any = MISSING
    linear_eval: Any = None
    callbacks: dict[str, Any] = field(default_factory=dict)
    logger: dict[str, Any] = field(default_factory=dict)
    trainer: Any = MISSING
    paths: PathsConfig = MISSING
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    report: bool = True
    experiment_name: str = "default"
    tags: list[str] = field(default_factory=list)
    transfer: Any = None  # the zero-shot transfer experiment (experiment=zero_shot_transfer)
    resume: bool = True
    ckpt_path: str | None = None
    float32_matmul_precision: str = "high"
    # the value python -m ncib.run returns to a Hydra sweeper that optimises (hparams_search=…)
    optimized_metric: str | None = None


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _count_classes(classes, total) -> int:
    if classes is None:
        return int(total)
    if isinstance(classes, int):
        return classes
    return len(classes)


def register() -> None:
    """Register the schema and resolvers (idempotent)."""
    ConfigStore.instance().store(name="schema", node=RunConfig)
    if not OmegaConf.has_resolver("ncib.wandb_mode"):
        OmegaConf.register_new_resolver("ncib.wandb_mode", wandb_mode)
    if not OmegaConf.has_resolver("ncib.num_classes"):
        # ${ncib.num_classes:${dataset.classes},total}: K of a class subset (derived, never set)
        OmegaConf.register_new_resolver("ncib.num_classes", _count_classes)
    if not OmegaConf.has_resolver("ncib.strategy"):
        # ${ncib.strategy:processes_per_node,nodes}: ddp when a job has more than one process
        OmegaConf.register_new_resolver(
            "ncib.strategy",
            lambda per_node, nodes: "ddp" if int(per_node) * int(nodes) > 1 else "auto",
        )
    if not OmegaConf.has_resolver("ncib.mul"):
        OmegaConf.register_new_resolver("ncib.mul", lambda a, b: int(a) * int(b))
    if not OmegaConf.has_resolver("ncib.gt"):
        # ${ncib.gt:a,b}: whether a > b (e.g. the reference's warm-up rule, batch > 256)
        OmegaConf.register_new_resolver("ncib.gt", lambda a, b: float(a) > float(b))
    if not OmegaConf.has_resolver("ncib.interactive"):
        # ${ncib.interactive:}: whether stderr is a terminal (progress bars that redraw)
        OmegaConf.register_new_resolver("ncib.interactive", interactive)
    if not OmegaConf.has_resolver("ncib.if_cuda"):
        # ${ncib.if_cuda:gpu_value,cpu_value}: a choice made on the machine that runs
        OmegaConf.register_new_resolver(
            "ncib.if_cuda", lambda on_gpu, on_cpu: on_gpu if cuda_available() else on_cpu
        )


MIN_SAMPLES_PER_CLASS = 5  # analysis.max_samples must leave at least this many per class
_KNOWN_FEATURE_DIMS = {"resnet18": 512, "resnet50": 2048}


def _fail(key: str, value, allowed: str) -> None:
    raise ConfigError(f"{key}={value!r} cannot be used: {allowed}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def feature_dim(cfg: DictConfig) -> int:
    """The encoder's feature dimension d, from the backbone config (building it if need be)."""
    backbone = cfg.backbone
    if backbone.get("feature_dim") is not None:
        return int(backbone.feature_dim)
    if backbone.get("name") in _KNOWN_FEATURE_DIMS:
        return _KNOWN_FEATURE_DIMS[backbone.name]
    from hydra.utils import instantiate

    return int(instantiate(backbone)().feature_dim)


def _check_seed_set() -> None:
    """A named set of several seed pairs (``seeds=three``, conf/seeds/) is a sweep: without
    ``-m`` it would silently train only its first pair, so it is refused unless the command
    line chooses the pair (``seed_pair=[a,b]``)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():  # a run directory's config read back, or a test
        return
    hydra_cfg = HydraConfig.get()
    name = hydra_cfg.runtime.choices.get("seeds")
    if name in (None, "null") or hydra_cfg.mode == RunMode.MULTIRUN:
        return
    if any(o.split("=", 1)[0].lstrip("+~") == "seed_pair" for o in hydra_cfg.overrides.task):
        return
    pairs = str((hydra_cfg.sweeper.get("params") or {}).get("seed_pair", ""))
    if pairs.count("[") > 1:
        raise ConfigError(
            f"seeds={name} names {pairs.count('[')} seed pairs ({pairs}), and one run trains one "
            f"pair: sweep them with -m (python -m ncib.run -m seeds={name} ...), or choose one "
            "with seed_pair=[a,b]"
        )


def objective_names(cfg: DictConfig) -> list[str]:
    """The metrics a training run returns that ``optimized_metric`` may name."""
    names = ["train/loss/m0", "train/loss/m1"]
    if cfg.get("linear_eval") is not None:
        names += [logged_name("linear_eval", k) for k in keys("linear_eval")]
    return names


def objective(cfg: DictConfig, metrics: dict) -> float | None:
    """What ``python -m ncib.run`` returns to Hydra: ``metrics[cfg.optimized_metric]`` (a
    sweeper such as Optuna optimises it), or None when no metric is to be optimised."""
    name = cfg.get("optimized_metric")
    if name is None:
        return None
    if name not in metrics:
        raise ConfigError(
            f"optimized_metric={name!r} is not among the metrics this run produced "
            f"({', '.join(sorted(metrics)) or 'none'})"
        )
    return float(metrics[name])


def _standalone_lightning_name(target: str) -> str | None:
    """The ``pytorch_lightning`` / ``lightning_fabric`` name of a ``lightning.*`` target (the
    unified ``lightning`` package's copies of the same classes), or None for any other."""
    for unified, standalone in (
        ("lightning.pytorch.", "pytorch_lightning."),
        ("lightning.fabric.", "lightning_fabric."),
    ):
        if target.startswith(unified):
            return standalone + target[len(unified) :]
    return None


def _check_lightning_namespace(node, path: str = "") -> None:
    """ncib's Trainer is ``pytorch_lightning.Trainer``: a callback, logger or plugin from the
    unified ``lightning`` package (``lightning.pytorch.*``, lightning-hydra-template's spelling)
    is another class to it and fails deep inside Lightning, so it is refused here by name."""
    if isinstance(node, dict):
        target = node.get("_target_")
        if isinstance(target, str) and (fix := _standalone_lightning_name(target)):
            _fail(
                f"{path}._target_".lstrip("."),
                target,
                f"ncib trains with the pytorch_lightning package, whose Trainer does not accept "
                f"the unified lightning package's classes; name it {fix}",
            )
        for key, value in node.items():
            _check_lightning_namespace(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _check_lightning_namespace(value, f"{path}[{i}]")


def validate(cfg: DictConfig) -> None:
    """Checks that need more than types, before any work: raise :class:`ConfigError` naming the
    key, the value and what is allowed; warn (``ncib.config`` logger) about legal but suspicious
    settings."""
    pair = cfg.get("seed_pair")
    values = list(pair) if isinstance(pair, ListConfig | list | tuple) else pair
    if (
        not isinstance(values, list)
        or len(values) != 2
        or not all(_is_int(s) for s in values)
        or values[0] == values[1]
    ):
        raise ConfigError(
            f"seed_pair must hold exactly two different integers (the seeds of the two "
            f"members), got seed_pair={values!r}; for example 'seed_pair=[0,1]'"
        )
    _check_seed_set()
    _check_lightning_namespace(OmegaConf.to_container(cfg, resolve=False))
    metric = cfg.get("optimized_metric")
    if metric is not None and cfg.get("transfer") is None and metric not in objective_names(cfg):
        _fail(
            "optimized_metric",
            metric,
            f"a sweeper optimises one of the metrics a training run returns: "
            f"{', '.join(objective_names(cfg))}",
        )
    num_classes = int(cfg.dataset.num_classes)
    if cfg.get("transfer") is not None:  # no training: only the analysis settings matter
        if OmegaConf.is_missing(cfg.transfer, "source"):
            raise ConfigError(
                "transfer.source is required: the run directory of a pretrained pair (or a "
                "checkpoint in it), e.g. transfer.source=outputs/imagenet32_pretrain/<date_time>"
            )
        _validate_analysis(cfg, num_classes, None)
        return
    try:
        objective = check_objective(cfg)
    except ObjectiveError as err:
        raise ConfigError(str(err)) from None
    max_epochs = cfg.trainer.get("max_epochs")
    if not _is_int(max_epochs) or max_epochs < 1:
        _fail(
            "trainer.max_epochs",
            max_epochs,
            "a training run needs at least one epoch (an integer >= 1)",
        )
    batch = cfg.dataset.datamodule.get("batch_size")
    if not _is_int(batch) or batch < 2:
        _fail(
            "dataset.datamodule.batch_size",
            batch,
            "each member's batch needs at least 2 samples (with one, a sample has no negatives and "
            "a contrastive loss is identically 0; a classifier's batch statistics are undefined)",
        )
    if objective.contrastive and batch < num_classes:
        log.warning(
            "dataset.datamodule.batch_size=%d is smaller than the %d classes: most classes are "
            "missing from every batch, and few anchors have positives beyond their own views",
            batch,
            num_classes,
        )
    if cfg.get("linear_eval") is not None:
        check_linear_eval(cfg.linear_eval)
    _validate_analysis(cfg, num_classes, max_epochs)


LINEAR_EVAL_VIEWS = ("none", "crop_flip", "train")  # what the linear layer trains on


def check_linear_eval(eval_cfg: DictConfig, prefix: str = "linear_eval") -> None:
    """The linear evaluation's settings (Table 1), checked before any training: a bad one would
    otherwise fail, or write a Table 1 of an untrained layer, only after the whole run."""
    epochs = eval_cfg.get("epochs")
    if not _is_int(epochs) or epochs < 1:
        _fail(
            f"{prefix}.epochs",
            epochs,
            "the linear layer needs at least one epoch (an integer >= 1; with none Table 1 would "
            "be the accuracy of an untrained layer); ~linear_eval turns the evaluation off",
        )
    batch = eval_cfg.get("batch_size")
    if not _is_int(batch) or batch < 1:
        _fail(f"{prefix}.batch_size", batch, "an integer >= 1")
    views = eval_cfg.get("views", "none")
    if views not in LINEAR_EVAL_VIEWS:
        _fail(f"{prefix}.views", views, f"one of {', '.join(LINEAR_EVAL_VIEWS)}")
    standardize = eval_cfg.get("standardize", True)
    if not isinstance(standardize, bool):
        _fail(f"{prefix}.standardize", standardize, "true or false")
    if not _is_int(eval_cfg.get("seed", 0)):
        _fail(f"{prefix}.seed", eval_cfg.get("seed"), "an integer")
    optimizer = (eval_cfg.get("module") or {}).get("optimizer") or {}
    lr = optimizer.get("lr")
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, int | float) or lr <= 0):
        _fail(f"{prefix}.module.optimizer.lr", lr, "a number > 0")


def _validate_analysis(cfg: DictConfig, num_classes: int, max_epochs: int | None) -> None:
    """The analysis plan is built (and so checked) once, by ncib.engine.plan; first here what
    needs the rest of the config: k against the feature dimension, max_samples against the
    classes (their messages say the bounds), then epochs against trainer.max_epochs."""
    a = cfg.analysis
    if a.k is not None:
        d = feature_dim(cfg)
        if not _is_int(a.k) or not 1 <= a.k <= d:
            _fail(
                "analysis.k",
                a.k,
                f"an integer in [1, {d}] (the feature dimension), or null for K = {num_classes}",
            )
    if a.max_samples is not None:
        least = MIN_SAMPLES_PER_CLASS * num_classes
        if not _is_int(a.max_samples) or a.max_samples < least:
            _fail(
                "analysis.max_samples",
                a.max_samples,
                f"the stratified subset must keep at least {MIN_SAMPLES_PER_CLASS} samples per class "
                f"({least} for {num_classes} classes), or null for every training sample",
            )
    try:
        plan = analysis_plan(OmegaConf.to_container(a, resolve=True))
    except ValueError as err:
        raise ConfigError(str(err)) from None
    epochs = plan.schedule.epochs
    late = [e for e in epochs or () if max_epochs is not None and e > max_epochs]
    if late:
        log.warning(
            "analysis.epochs %s lie beyond trainer.max_epochs=%d and will not be analysed",
            late,
            max_epochs,
        )
        if len(late) == len(epochs):
            log.warning(
                "no analysis epoch lies within trainer.max_epochs=%d: nothing will be analysed",
                max_epochs,
            )
