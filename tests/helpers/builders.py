"""Small models and quiet trainers for tests that fit in the test process."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import pytorch_lightning as pl
import torch

from ncib.models import ConvNet, PairedClassifier, PairedEncoders, PairedSupCon, ProjectionHead
from ncib.models.schedules import warmup_cosine


def tiny_pair(
    seeds: Sequence[int] = (0, 1),
    *,
    in_channels: int = 1,
    feature_dim: int = 32,
    width: int = 8,
    out_dim: int = 16,
    lr: float = 0.1,
    momentum: float | None = None,
    weight_decay: float | None = None,
    warmup_epochs: int | None = None,
    backbone: Callable[..., torch.nn.Module] | None = None,
    objective: str = "supcon",
    num_classes: int = 10,
    **module: Any,
) -> PairedEncoders:
    """A pair of small ConvNets (8×8 digits unless told) under ``objective`` (supcon, simclr:
    a PairedSupCon; ce, mse: a PairedClassifier of ``num_classes``): plain SGD at ``lr`` (with
    ``momentum`` and ``weight_decay`` when given), the warm-up cosine schedule when
    ``warmup_epochs`` is given, ``module`` passed on (``compile``, ``temperature``, ...)."""
    optimizer = {"lr": lr}
    if momentum is not None:
        optimizer["momentum"] = momentum
    if weight_decay is not None:
        optimizer["weight_decay"] = weight_decay
    if warmup_epochs is not None:
        module["scheduler"] = partial(warmup_cosine, warmup_epochs=warmup_epochs)
    backbone = backbone or partial(
        ConvNet, in_channels=in_channels, feature_dim=feature_dim, width=width
    )
    optimizer = partial(torch.optim.SGD, **optimizer)
    if objective in ("ce", "mse"):
        return PairedClassifier(
            backbone=backbone,
            optimizer=optimizer,
            seeds=list(seeds),
            num_classes=num_classes,
            loss=objective,
            **module,
        )
    if objective not in ("supcon", "simclr"):
        raise ValueError(f"no tiny pair for objective={objective!r}")
    return PairedSupCon(
        backbone=backbone,
        head=partial(ProjectionHead, out_dim=out_dim),
        optimizer=optimizer,
        seeds=list(seeds),
        supervised=objective == "supcon",
        **module,
    )


def quiet_trainer(**settings: Any) -> pl.Trainer:
    """A Lightning Trainer on the CPU (``accelerator=`` says otherwise) that logs, saves and
    prints nothing and leaves the data to the datamodule (no distributed sampler); the other
    settings (``max_steps``, ``callbacks``, ...) as given."""
    quiet = {
        "accelerator": "cpu",
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "use_distributed_sampler": False,
    }
    return pl.Trainer(**(quiet | settings))
