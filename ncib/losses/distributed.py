"""A differentiable all-gather for contrastive losses over the global batch (DDP)."""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["gather_with_grad"]


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        world = dist.get_world_size()
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        ctx.rank, ctx.rows = dist.get_rank(), x.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        # every rank computed the same global loss; each sends its gradient with respect to
        # every row, and a rank keeps the sum for its own rows. The tensor must be contiguous:
        # the loss hands back transposed gradients, and collectives read raw memory.
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """``(B, ...)`` on each of W ranks → ``(W·B, ...)`` in rank order, differentiable.

    Every rank must pass the same ``B``. With the same loss computed on every rank from the
    gathered tensor, a rank's gradient for its rows is W times that of the global loss, so
    DDP's averaging over ranks yields exactly the gradient of the global loss. Without an
    initialised process group it returns ``x``.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    return _GatherWithGrad.apply(x)
