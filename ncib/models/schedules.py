"""Learning-rate schedules (per optimiser step)."""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

__all__ = [
    "optimizers_for",
    "resume_schedules",
    "step_decay",
    "supcon_reference",
    "warmup_cosine",
]


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
    milestone_epochs: tuple[int, ...] | None = None,
) -> LambdaLR:
    """Multiply the learning rate by ``gamma`` at each milestone: fractions of the whole fit
    (``milestones=(0.6, 0.8)``: at 60% and 80% of the steps), or, when ``milestone_epochs`` is
    given, after those numbers of completed epochs (the reference linear evaluation decays by
    0.2 after epochs 60, 75 and 90: ``milestone_epochs=(60, 75, 90), gamma=0.2``)."""
    if milestone_epochs is not None:
        if any(int(e) != e or e < 1 for e in milestone_epochs):
            raise ValueError(
                f"milestone_epochs are completed epochs >= 1; got {list(milestone_epochs)}"
            )
        at = sorted(int(e) * steps_per_epoch for e in milestone_epochs)
    else:
        if any(not 0.0 < m < 1.0 for m in milestones):
            raise ValueError(
                f"milestones are fractions of training in (0, 1); got {list(milestones)}"
            )
        at = sorted(round(m * total_steps) for m in milestones)
    return LambdaLR(optimizer, lambda step: gamma ** sum(step >= a for a in at))


def _check_reference(total_steps, steps_per_epoch, warmup_epochs, warmup_from, final_factor):
    if total_steps < 1 or steps_per_epoch < 1:
        raise ValueError(
            f"total_steps and steps_per_epoch must be >= 1; got {total_steps}, {steps_per_epoch}"
        )
    if isinstance(warmup_epochs, bool) or int(warmup_epochs) != warmup_epochs or warmup_epochs < 0:
        raise ValueError(f"warmup_epochs must be a whole number >= 0; got {warmup_epochs}")
    if warmup_from < 0:
        raise ValueError(f"warmup_from is a learning rate >= 0; got {warmup_from}")
    if final_factor < 0:
        raise ValueError(f"final_factor must be >= 0; got {final_factor}")


def supcon_reference(
    optimizer: Optimizer,
    total_steps: int,
    steps_per_epoch: int,
    warmup_epochs: int = 10,
    warmup_from: float = 0.01,
    final_factor: float = 1e-3,
    warmup: bool = True,
) -> LambdaLR:
    """The learning rate of the reference SupCon code (Khosla et al. 2020): cosine decay set
    once per epoch, with an optional linear warm-up set every step. Stepped once per optimiser
    step, like every schedule here.

    With ``E = ceil(total_steps / steps_per_epoch)`` epochs of ``T = steps_per_epoch`` steps,
    optimiser step ``s`` (from 0) lies in epoch ``e = s // T + 1`` (counted from 1) at batch
    ``i = s % T``. For a parameter group of base learning rate ``lr``:

        cos(e)  = lr·f + lr·(1 - f)·(1 + cos(π e / E)) / 2              (f = final_factor)
        lr(s)   = cos(e)                                                 if not warm-up, or e > W
        lr(s)   = w_0 + p·(cos(W) - w_0),  p = (i + (e - 1)·T) / (W·T)  if warm-up and e <= W

    with ``W = warmup_epochs`` and ``w_0 = warmup_from``. So the cosine part changes only at
    epoch boundaries and already stands at ``cos(1) < lr`` in the first epoch; the last epoch
    runs at ``lr·f`` (the reference's ``lr·lr_decay_rate**3``, 10⁻³·lr). The warm-up starts at
    ``w_0`` at step 0 and rises linearly per step toward ``cos(W)``, the cosine value of epoch
    ``W`` (reached only in the limit: its last step has ``p = 1 - 1/(W·T)``); epoch ``W + 1``
    then runs at ``cos(W + 1)``. With fewer epochs than ``W`` the whole fit is warm-up, as in
    the reference.

    The reference turns warm-up on when the batch exceeds 256 samples (or on request). Here the
    configuration decides: set ``warmup: true`` when the global batch (all devices) is > 256.

    Args:
        optimizer: its groups' learning rates at construction are the base ``lr`` (each group
            is scheduled from its own).
        total_steps: optimiser steps in the whole fit (``trainer.estimated_stepping_batches``).
        steps_per_epoch: optimiser steps per epoch ``T``.
        warmup_epochs: ``W``, a whole number of epochs >= 0.
        warmup_from: ``w_0``, an *absolute* learning rate (0.01 in the reference), not a
            fraction of ``lr``.
        final_factor: ``f >= 0``: the last epoch's learning rate as a fraction of ``lr``.
        warmup: whether to warm up at all.

    Returns:
        A :class:`~torch.optim.lr_scheduler.LambdaLR` whose factor is ``lr(s) / lr``.
    """
    _check_reference(total_steps, steps_per_epoch, warmup_epochs, warmup_from, final_factor)
    warm_epochs = int(warmup_epochs)
    warm = bool(warmup) and warm_epochs > 0
    epochs = math.ceil(total_steps / steps_per_epoch)
    bases = [group.get("initial_lr", group["lr"]) for group in optimizer.param_groups]
    if warm and any(not base > 0 for base in bases):
        raise ValueError(
            f"warm-up from an absolute learning rate needs base learning rates > 0; got {bases}"
        )

    def cosine(epoch: int) -> float:
        # cos(e) / lr, constant over the epoch
        return final_factor + (1 - final_factor) * (1 + math.cos(math.pi * epoch / epochs)) / 2

    def factor_for(base: float):
        start, end = warmup_from / base, cosine(warm_epochs)

        def factor(step: int) -> float:
            epoch, batch = step // steps_per_epoch + 1, step % steps_per_epoch
            if warm and epoch <= warm_epochs:
                p = (batch + (epoch - 1) * steps_per_epoch) / (warm_epochs * steps_per_epoch)
                return start + p * (end - start)
            # past the last step (Lightning steps the scheduler once more) hold the last epoch
            return cosine(min(epoch, epochs))

        return factor

    return LambdaLR(optimizer, [factor_for(base) for base in bases])


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


def resume_schedules(trainer) -> list[float]:
    """Put every optimiser's learning rate where its schedule is now (at the restored step), and
    return the rates. A resume restores the optimiser's rate as the checkpoint left it, while the
    schedule is built again for this fit's horizon; with a changed ``trainer.max_epochs`` the two
    disagree (a run that had decayed to 0 would train its first resumed step at rate 0). Called
    at the start of every fit: without a resume it sets the rates the schedules already set."""
    rates = []
    for config in trainer.lr_scheduler_configs:
        sched = config.scheduler
        if not isinstance(sched, LambdaLR):
            continue
        now = [
            base * factor(sched.last_epoch)
            for factor, base in zip(sched.lr_lambdas, sched.base_lrs, strict=True)
        ]
        for group, lr in zip(sched.optimizer.param_groups, now, strict=True):
            group["lr"] = lr
        sched._last_lr = list(now)
        rates += now
    return rates
