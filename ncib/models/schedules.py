"""Learning-rate schedules (per optimiser step)."""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["optimizers_for", "step_decay", "warmup_cosine"]


def warmup_cosine(
    optimizer: Optimizer,
    total_steps: int,
    steps_per_epoch: int,
    warmup_epochs: float = 0.0,
    final_factor: float = 0.0,
) -> LambdaLR:
    """Linear warm-up over ``warmup_epochs`` epochs (from ``lr/warmup_steps`` to ``lr``), then
    cosine decay to ``final_factor·lr`` at ``total_steps``. Stepped once per optimiser step."""
    if total_steps < 1 or steps_per_epoch < 1:
        raise ValueError(
            f"total_steps and steps_per_epoch must be >= 1; got {total_steps}, {steps_per_epoch}"
        )
    if warmup_epochs < 0:
        raise ValueError(f"warmup_epochs must be >= 0; got {warmup_epochs}")
    warmup_steps = max(0, min(round(warmup_epochs * steps_per_epoch), total_steps - 1))

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return final_factor + (1 - final_factor) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def step_decay(
    optimizer: Optimizer,
    total_steps: int,
    steps_per_epoch: int,
    milestones: tuple[float, ...] = (0.6, 0.8),
    gamma: float = 0.1,
) -> LambdaLR:
    """Multiply the learning rate by ``gamma`` at each milestone, given as fractions of the
    whole fit (``(0.6, 0.8)``: at 60% and 80% of the steps). ``steps_per_epoch`` is unused and
    accepted so that every schedule is built the same way."""
    if any(not 0.0 < m < 1.0 for m in milestones):
        raise ValueError(f"milestones are fractions of training in (0, 1); got {list(milestones)}")
    at = sorted(round(m * total_steps) for m in milestones)
    return LambdaLR(optimizer, lambda step: gamma ** sum(step >= a for a in at))


def optimizers_for(params, optimizer_factory, scheduler_factory, trainer):
    """What ``configure_optimizers`` returns: the optimiser over ``params`` and, if a schedule
    factory is given, its scheduler stepped every optimiser step over the whole fit."""
    opt = optimizer_factory(params=params)
    if scheduler_factory is None:
        return opt
    total = int(trainer.estimated_stepping_batches)
    per_epoch = max(1, total // max(1, trainer.max_epochs or 1))
    sched = scheduler_factory(opt, total_steps=total, steps_per_epoch=per_epoch)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
