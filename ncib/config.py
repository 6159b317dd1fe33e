"""Structured-config schema (a typo in a config file or an override is an error) and the
checks that run before any work. Imports only omegaconf/hydra, so a bad command line fails in
about a second."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf

__all__ = ["ConfigError", "RunConfig", "register", "validate"]


class ConfigError(ValueError):
    """A configuration value that ncib cannot run with."""


@dataclass
class DatasetConfig:
    name: str = MISSING
    num_classes: int = MISSING
    in_channels: int = MISSING
    image_size: int = MISSING
    datamodule: Any = MISSING


@dataclass
class PathsConfig:
    data_dir: str = MISSING
    output_dir: str = MISSING


@dataclass
class AnalysisConfig:
    """When and how the analysis callbacks run (shared by all of them)."""

    epochs: list[int] | None = None  # completed epochs to analyse (0 = initialisation)
    every_n_epochs: int | None = 10  # used when epochs is null; the last epoch is always included
    at_init: bool = True  # with every_n_epochs: also epoch 0 (a list is exact: list 0 there)
    k: int | None = None  # dimension of T_K; null = number of classes
    max_samples: int | None = None  # stratified training subset for large datasets
    ridge: float = 1.0e-6
    progress: bool = True
    checkpoints: bool = True  # keep the pair's weights at every analysis epoch


@dataclass
class RunConfig:
    """Top level of ``conf/config.yaml``. Group contents with a ``_target_`` are checked by the
    target's signature when instantiated (every option is instantiated by the tests)."""

    seed_pair: list[int] = field(default_factory=lambda: [0, 1])
    dataset: DatasetConfig = MISSING
    backbone: Any = MISSING
    model: Any = MISSING
    linear_eval: Any = None
    callbacks: dict[str, Any] = field(default_factory=dict)
    logger: dict[str, Any] = field(default_factory=dict)
    trainer: Any = MISSING
    paths: PathsConfig = MISSING
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    report: bool = True
    experiment_name: str = "default"
    tags: list[str] = field(default_factory=list)
    ckpt_path: str | None = None
    float32_matmul_precision: str = "high"


def wandb_mode() -> str:
    """``WANDB_MODE`` if set; ``online`` for a logged-in user; else ``offline``."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        import netrc

        auth = netrc.netrc().authenticators("api.wandb.ai")
    except (OSError, netrc.NetrcParseError):
        auth = None
    return "online" if auth else "offline"


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def register() -> None:
    """Register the schema and resolvers (idempotent)."""
    ConfigStore.instance().store(name="schema", node=RunConfig)
    if not OmegaConf.has_resolver("ncib.wandb_mode"):
        OmegaConf.register_new_resolver("ncib.wandb_mode", wandb_mode)
    if not OmegaConf.has_resolver("ncib.if_cuda"):
        # ${ncib.if_cuda:gpu_value,cpu_value}: a choice made on the machine that runs
        OmegaConf.register_new_resolver(
            "ncib.if_cuda", lambda on_gpu, on_cpu: on_gpu if cuda_available() else on_cpu
        )


def validate(cfg: DictConfig) -> None:
    """Checks that need more than types; raise :class:`ConfigError` naming key, value, and
    what is allowed."""
    pair = cfg.get("seed_pair")
    values = list(pair) if isinstance(pair, ListConfig | list | tuple) else pair
    if (
        not isinstance(values, list)
        or len(values) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in values)
        or values[0] == values[1]
    ):
        raise ConfigError(
            f"seed_pair must hold exactly two different integers (the seeds of the two "
            f"members), got seed_pair={values!r}; for example seed_pair=[0,1]"
        )
