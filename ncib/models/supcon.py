"""The contrastive objectives: SupCon and, with the labels withheld, SimCLR (docs/math.md §1)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ncib.losses import gather_with_grad, supcon_loss
from ncib.models.paired import Member, PairedEncoders

__all__ = ["Member", "PairedSupCon"]


class PairedSupCon(PairedEncoders):
    """Members trained with the SupCon loss on ``V`` views of their batch, through a projection
    head (:class:`ncib.models.ProjectionHead`); see :class:`ncib.models.PairedEncoders`.

    Args:
        temperature: the loss's temperature τ.
        base_temperature: τ_base of the loss factor τ/τ_base (see :func:`ncib.losses.supcon_loss`);
            None means τ (factor 1).
        supervised: False withholds the labels from training: every sample of the (global)
            batch is its own class, which makes the loss SimCLR's NT-Xent (``objective=simclr``;
            the analysis still reads the labels).
        Other arguments: :class:`ncib.models.PairedEncoders`.
    """

    def __init__(
        self,
        backbone: Callable[[], nn.Module],
        head: Callable[[int], nn.Module],
        optimizer: Callable[..., torch.optim.Optimizer],
        seeds: Sequence[int],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        temperature: float = 0.1,
        base_temperature: float | None = None,
        supervised: bool = True,
        channels_last: bool = False,
        compile: bool = False,
    ):
        seeds = [int(s) for s in seeds]  # plain ints in the hyper-parameters (PairedEncoders)
        super().__init__(backbone, head, optimizer, seeds, scheduler, channels_last, compile)
        self.temperature = float(temperature)
        self.base_temperature = None if base_temperature is None else float(base_temperature)
        self.supervised = bool(supervised)

    @property
    def objective(self) -> str:
        return "supcon" if self.supervised else "simclr"

    def member_loss(self, member: Member, views: torch.Tensor, labels: torch.Tensor):
        b, v = views.shape[:2]
        # float32 projections (a no-op under CUDA bf16 autocast, where the head's normalisation
        # already returns float32): the gather and the loss run in float32 (docs/math.md §1)
        z = member(self._inputs(views)).view(b, v, -1).float()
        if not self.supervised:
            # one class per sample of the global batch: under DDP every rank holds b samples
            # (the DataModule cuts batches to equal parts), so rank r's samples are r·b + i
            labels = torch.arange(b, device=z.device) + b * self.global_rank
        # under DDP: contrast against the global batch (a no-op on one device)
        return supcon_loss(
            gather_with_grad(z),
            gather_with_grad(labels),
            self.temperature,
            base_temperature=self.base_temperature,
        )
