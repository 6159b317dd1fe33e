"""Two SupCon encoders that differ only in their seed, trained side by side (docs/design.md §2)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytorch_lightning as pl
import torch
from torch import nn

from ncib.losses import gather_with_grad, supcon_loss
from ncib.metrics import member_name
from ncib.models.schedules import optimizers_for, resume_schedules

__all__ = ["Member", "PairedSupCon"]


class Member(nn.Module):
    """One encoder + its projection head. ``features`` is what the analysis studies."""

    def __init__(self, encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder, self.head = encoder, head

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


class PairedSupCon(pl.LightningModule):
    """Independently trained SupCon members, one per seed.

    Member ``m`` is built under ``torch.manual_seed(seeds[m])`` and trained on batch ``f"m{m}"``
    (its own data order and augmentations, see :mod:`ncib.data.base`). Parameters are disjoint
    and the loss is the sum of the members' losses, so one SGD optimiser over both equals two
    separate runs: nothing couples the members (no shared BatchNorm, no joint gradient
    clipping). A one-seed module trains a single member exactly as it would be trained in a pair.

    Args:
        backbone: factory ``() -> nn.Module`` with a ``feature_dim`` attribute.
        head: factory ``(in_dim) -> nn.Module`` (the projection head).
        optimizer: factory ``(params) -> Optimizer`` (Hydra ``_partial_``).
        scheduler: factory ``(optimizer, total_steps, steps_per_epoch) -> LRScheduler`` or None.
        seeds: one seed per member.
        temperature: SupCon temperature τ.
        base_temperature: τ_base of the loss factor τ/τ_base (see :func:`ncib.losses.supcon_loss`);
            None means τ (factor 1).
        channels_last: use the channels-last memory format (faster convolutions on GPU).
        compile: compile each member's training path (forward, projection and SupCon loss,
            and their backward) with ``torch.compile`` on first use, for static shapes (an
            epoch's last partial batch compiles a second graph, once; ``drop_last`` of the
            DataModule avoids it). The modules are not wrapped, so the
            ``state_dict`` keys are the same either way; the first training step pays the
            compile time.
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
        channels_last: bool = False,
        compile: bool = False,
    ):
        super().__init__()
        seeds = [int(s) for s in seeds]  # plain ints in the checkpoint (weights_only loading)
        self.save_hyperparameters(ignore=["backbone", "head", "optimizer", "scheduler"])
        self.seeds = seeds
        if not self.seeds:
            raise ValueError("seeds must hold at least one seed")
        self.members = nn.ModuleList(self._build_member(backbone, head, s) for s in self.seeds)
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.temperature, self.channels_last = float(temperature), bool(channels_last)
        self.base_temperature = None if base_temperature is None else float(base_temperature)
        if self.channels_last:
            self.members.to(memory_format=torch.channels_last)
        self.use_compile, self._compiled_member_loss = bool(compile), None

    @staticmethod
    def _build_member(backbone, head, seed: int) -> Member:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            encoder = backbone()
            return Member(encoder, head(encoder.feature_dim))

    @property
    def member_names(self) -> list[str]:
        return [member_name(m) for m in range(len(self.members))]

    def member_loss(self, member: Member, views: torch.Tensor, labels: torch.Tensor):
        b, v = views.shape[:2]
        x = views.flatten(0, 1)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        # float32 projections (a no-op under CUDA bf16 autocast, where the head's normalisation
        # already returns float32): the gather and the loss run in float32 (docs/math.md §1)
        z = member(x).view(b, v, -1).float()
        # under DDP: contrast against the global batch (a no-op on one device)
        return supcon_loss(
            gather_with_grad(z),
            gather_with_grad(labels),
            self.temperature,
            base_temperature=self.base_temperature,
        )

    def _member_loss_fn(self) -> Callable:
        """:meth:`member_loss`, compiled on first use when ``compile`` is on. One compiled
        function serves every member (Dynamo keeps one graph per guard set)."""
        if not self.use_compile:
            return self.member_loss
        if self._compiled_member_loss is None:
            self._compiled_member_loss = torch.compile(self.member_loss, dynamic=False)
        return self._compiled_member_loss

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        state["_compiled_member_loss"] = None  # bound to this instance; rebuilt on first use
        return state

    def training_step(self, batch: dict, batch_idx: int):
        losses = []
        member_loss = self._member_loss_fn()
        for name, member in zip(self.member_names, self.members):
            loss = member_loss(member, batch[name]["views"], batch[name]["y"])
            self.log(f"train/loss/{name}", loss, on_step=False, on_epoch=True, prog_bar=True)
            losses.append(loss)
        stacked = torch.stack(losses)
        self.last_member_losses = stacked.detach()  # read by ncib.callbacks.DivergenceGuard
        return stacked.sum()

    def on_train_start(self) -> None:
        # after a resume the restored rate is the checkpoint's, the schedule this fit's (they
        # differ when trainer.max_epochs changed): start from the schedule (docs/cluster.md)
        resume_schedules(self.trainer)

    def configure_optimizers(self):
        return optimizers_for(
            self.parameters(), self.optimizer_factory, self.scheduler_factory, self.trainer
        )

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Encoder features of every member for a batch, ``[(B, feature_dim)] * members``."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return [m.features(x) for m in self.members]
