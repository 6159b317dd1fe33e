"""The SupCon loss over the global batch under DDP (two CPU processes, gloo)."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from ncib.losses import gather_with_grad, supcon_loss

WORLD, LOCAL = 2, 4


def data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(WORLD * LOCAL, 2, 5, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 0, 1, 2, 2, 0, 1])
    w = torch.randn(5, 4, generator=g, dtype=torch.float64)
    return x, y, w


def _worker(rank, init_file, results):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        x, y, w0 = data()
        w = w0.clone().requires_grad_(True)
        rows = slice(rank * LOCAL, (rank + 1) * LOCAL)
        z = F.normalize(x[rows] @ w, dim=-1)
        loss = supcon_loss(gather_with_grad(z), gather_with_grad(y[rows]), 0.1)
        loss.backward()
        grad = w.grad.clone()
        dist.all_reduce(grad)  # what DDP does: average the ranks' gradients
        results[rank] = (loss.detach(), grad / WORLD)
    finally:
        dist.destroy_process_group()


def _in_this_process_as_a_group_of_one(tmp_path):
    """The gather's forward and backward in the test process itself, as a group of one (the
    identity): the ranks above run in other processes, where call tracers (mutmut's) do not
    see which test exercised them."""
    from ncib.losses.distributed import _GatherWithGrad

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'one'}", rank=0, world_size=1)
    try:
        x = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
        out = _GatherWithGrad.apply(x)
        assert torch.equal(out, x) and gather_with_grad(x) is x
        (out * torch.arange(6.0).view(3, 2)).sum().backward()
        assert torch.equal(x.grad, torch.arange(6.0, dtype=torch.float64).view(3, 2))
    finally:
        dist.destroy_process_group()


def test_gathered_loss_and_gradient_equal_the_full_batch(tmp_path):
    with mp.Manager() as manager:  # shut down on exit: a left-over server process lingers
        results = manager.dict()
        mp.spawn(_worker, args=(str(tmp_path / "init"), results), nprocs=WORLD)
        results = dict(results)
    _in_this_process_as_a_group_of_one(tmp_path)
    x, y, w0 = data()
    w = w0.clone().requires_grad_(True)
    full = supcon_loss(F.normalize(x @ w, dim=-1), y, 0.1)
    full.backward()
    for rank in range(WORLD):
        loss, grad = results[rank]
        torch.testing.assert_close(loss, full.detach(), atol=1e-12, rtol=0)
        torch.testing.assert_close(grad, w.grad, atol=1e-10, rtol=0)


def test_without_a_process_group_it_is_the_identity():
    x = torch.randn(3, 2)
    assert gather_with_grad(x) is x
