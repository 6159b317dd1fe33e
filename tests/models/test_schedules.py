"""``supcon_reference`` against the reference SupCon training loop, written out step by step."""

import functools
import math
from functools import partial
from types import SimpleNamespace

import pytest
import torch

from ncib.models.schedules import optimizers_for, step_decay, supcon_reference


def reference_lrs(lr, epochs, steps_per_epoch, warm, warm_epochs=10, warmup_from=0.01):
    """The learning rate each optimiser step of the reference loop runs at.

    The loop as the reference code runs it: the optimiser's lr is set at the start of every
    epoch (epochs counted from 1) to the cosine value, then, during warm-up, overwritten before
    every batch by the linear ramp; the step then uses whatever the optimiser holds.
    """
    eta_min = lr * 0.1**3

    def cosine_value(epoch):
        return eta_min + (lr - eta_min) * (1 + math.cos(math.pi * epoch / epochs)) / 2

    warmup_to = cosine_value(warm_epochs)
    held = lr
    used = []
    for epoch in range(1, epochs + 1):
        held = cosine_value(epoch)
        for batch in range(steps_per_epoch):
            if warm and epoch <= warm_epochs:
                p = (batch + (epoch - 1) * steps_per_epoch) / (warm_epochs * steps_per_epoch)
                held = warmup_from + p * (warmup_to - warmup_from)
            used.append(held)
    return used


@functools.cache
def ncib_lrs(lrs, epochs, steps_per_epoch, **kwargs):
    """The learning rates of each param group (``lrs``, a tuple) at each step, driven as
    Lightning drives it (cached: the 49,000-step trace serves several tests).

    ``optimizers_for`` builds the scheduler from the trainer's step estimate; each step uses the
    lr the scheduler set before it, then ``optimizer.step()`` and ``scheduler.step()``. The
    parameters get no gradient, so the (real) SGD step is cheap and leaves them alone.
    """
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in lrs]
    opt_factory = partial(torch.optim.SGD, momentum=0.9, foreach=False)
    groups = [{"params": [p], "lr": lr} for p, lr in zip(params, lrs)]
    trainer = SimpleNamespace(
        estimated_stepping_batches=epochs * steps_per_epoch, max_epochs=epochs
    )
    config = optimizers_for(groups, opt_factory, partial(supcon_reference, **kwargs), trainer)
    opt, sched = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert config["lr_scheduler"]["interval"] == "step"
    used = [[] for _ in lrs]
    for _ in range(epochs * steps_per_epoch):
        for trace, group in zip(used, opt.param_groups):
            trace.append(group["lr"])
        opt.step()
        sched.step()
    return tuple(tuple(trace) for trace in used)


def assert_same_trace(ours, ref, rel=1e-12):
    ours, ref = list(ours), list(ref)
    assert len(ours) == len(ref)
    bad = [s for s, (a, b) in enumerate(zip(ours, ref)) if abs(a - b) > rel * abs(b)]
    assert not bad, (
        f"{len(bad)} steps differ, first at step {bad[0]}: {ours[bad[0]]} vs {ref[bad[0]]}"
    )


@pytest.mark.parametrize(
    "lr,epochs,steps_per_epoch,warm",
    [
        (0.5, 1000, 49, True),  # the paper's recipe: CIFAR, batch 1024
        (0.5, 1000, 49, False),
        (0.3, 37, 13, True),
        (0.005, 25, 7, True),  # below warmup_from: the warm-up ramps down
    ],
)
def test_trace_equals_reference_loop(lr, epochs, steps_per_epoch, warm):
    (ours,) = ncib_lrs((lr,), epochs, steps_per_epoch, warmup=warm)
    assert_same_trace(ours, reference_lrs(lr, epochs, steps_per_epoch, warm))


def test_each_param_group_from_its_own_lr_and_absolute_warmup_start():
    ours = ncib_lrs((0.5, 0.05), 40, 11, warmup_epochs=4, warmup_from=0.02)
    for trace, lr in zip(ours, [0.5, 0.05]):
        assert_same_trace(trace, reference_lrs(lr, 40, 11, True, warm_epochs=4, warmup_from=0.02))


def test_landmarks_of_the_paper_recipe():
    lr, epochs, per = 0.5, 1000, 49
    (lrs,) = ncib_lrs((lr,), epochs, per, warmup=True)
    eta_min = lr * 1e-3

    def at(epoch):
        return eta_min + (lr - eta_min) * (1 + math.cos(math.pi * epoch / epochs)) / 2

    assert lrs[0] == pytest.approx(0.01, rel=1e-12)
    # warm-up: strictly rising per step towards the epoch-10 cosine value, never reaching it
    warm = lrs[: 10 * per]
    assert all(a < b for a, b in zip(warm, warm[1:]))
    assert warm[-1] == pytest.approx(0.01 + (1 - 1 / (10 * per)) * (at(10) - 0.01), rel=1e-12)
    # from epoch 11 on: one value per epoch, the cosine at that epoch (counted from 1)
    for epoch in (11, 12, 500, 1000):
        block = lrs[(epoch - 1) * per : epoch * per]
        assert len(set(block)) == 1
        assert block[0] == pytest.approx(at(epoch), rel=1e-12)
    assert lrs[-1] == pytest.approx(eta_min, rel=1e-12)


def test_without_warmup_first_epoch_already_decayed():
    (lrs,) = ncib_lrs((1.0,), 4, 3, warmup=False)
    expected = [1e-3 + (1 - 1e-3) * (1 + math.cos(math.pi * e / 4)) / 2 for e in (1, 2, 3, 4)]
    assert list(lrs) == pytest.approx([v for v in expected for _ in range(3)], rel=1e-12)


def test_bad_arguments_are_errors():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match="warmup_epochs"):
        supcon_reference(opt, 100, 10, warmup_epochs=2.5)
    with pytest.raises(ValueError, match="warmup_epochs"):
        supcon_reference(opt, 100, 10, warmup_epochs=-1)
    with pytest.raises(ValueError, match="warmup_from"):
        supcon_reference(opt, 100, 10, warmup_from=-0.1)
    with pytest.raises(ValueError, match="final_factor"):
        supcon_reference(opt, 100, 10, final_factor=-1.0)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        supcon_reference(opt, 100, 0)
    zero = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.0)
    with pytest.raises(ValueError, match="base learning rates > 0"):
        supcon_reference(zero, 100, 10)


def test_step_decay_at_completed_epochs_is_the_reference_linear_evaluation():
    # main_linear.py: lr · 0.2^{#(epoch > d) for d in (60, 75, 90)}, epochs counted from 1,
    # set once per epoch
    steps_per_epoch = 7
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=5.0)
    sched = step_decay(
        opt,
        total_steps=100 * steps_per_epoch,
        steps_per_epoch=steps_per_epoch,
        gamma=0.2,
        milestone_epochs=(60, 75, 90),
    )
    for step in range(100 * steps_per_epoch):
        epoch = step // steps_per_epoch + 1
        expected = 5.0 * 0.2 ** sum(epoch > d for d in (60, 75, 90))
        assert opt.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-12), step
        opt.step()
        sched.step()
    with pytest.raises(ValueError, match="milestone_epochs"):
        step_decay(opt, 10, 2, milestone_epochs=(0,))
