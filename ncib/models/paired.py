"""A pair of encoders that differ only in their seed, trained side by side under one objective
(docs/design.md §2).

:class:`PairedEncoders` owns what every objective shares: the members built under their seeds,
each member's own batch (data order and augmentation, :mod:`ncib.data.base`), compile and
channels-last, the per-member losses that are logged and that the divergence guard reads, the
optimiser and schedule, and the features the analysis studies. An objective is a subclass that
supplies the one thing that differs, :meth:`PairedEncoders.member_loss` (and, when it trains a
classifier, :meth:`PairedEncoders.classifier_rows`): :class:`ncib.models.PairedSupCon` (SupCon and,
with labels withheld, SimCLR) and :class:`ncib.models.PairedClassifier` (cross-entropy, MSE).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytorch_lightning as pl
import torch
from torch import nn

from ncib.metrics import member_name
from ncib.models.schedules import optimizers_for, resume_schedules

__all__ = ["Member", "PairedEncoders"]


class Member(nn.Module):
    """One encoder + its head (a projection head, or a classifier). ``features`` — the
    encoder's output — is what the analysis studies, whatever the head."""

    def __init__(self, encoder: nn.Module, head: nn.Module):
        super().__init__()
        self.encoder, self.head = encoder, head

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


class PairedEncoders(pl.LightningModule):
    """Independently trained members, one per seed, under the objective of a subclass.

    Member ``m`` is built under ``torch.manual_seed(seeds[m])`` (encoder, then head) and trained
    on batch ``f"m{m}"`` (its own data order and augmentations). Parameters are disjoint and the
    loss is the sum of the members' losses, so one SGD optimiser over both equals two separate
    runs: nothing couples the members (no shared BatchNorm, no joint gradient clipping). A
    one-seed module trains a single member exactly as it would be trained in a pair.

    Args:
        backbone: factory ``() -> nn.Module`` with a ``feature_dim`` attribute.
        head: factory ``(in_dim) -> nn.Module``: the head on the encoder's features.
        optimizer: factory ``(params) -> Optimizer`` (Hydra ``_partial_``).
        seeds: one seed per member.
        scheduler: factory ``(optimizer, total_steps, steps_per_epoch) -> LRScheduler`` or None.
        channels_last: use the channels-last memory format (faster convolutions on GPU).
        compile: compile each member's training path (forward, head and loss, and their
            backward) with ``torch.compile`` on first use, for static shapes (an epoch's last
            partial batch compiles a second graph, once; ``drop_last`` of the DataModule avoids
            it). The modules are not wrapped, so the ``state_dict`` keys are the same either way;
            the first training step pays the compile time.
    """

    objective = "?"  # the objective's name, as conf/objective/ names it (logged, in messages)

    def __init__(
        self,
        backbone: Callable[[], nn.Module],
        head: Callable[[int], nn.Module],
        optimizer: Callable[..., torch.optim.Optimizer],
        seeds: Sequence[int],
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        channels_last: bool = False,
        compile: bool = False,
    ):
        super().__init__()
        seeds = [int(s) for s in seeds]  # plain ints in the checkpoint (weights_only loading)
        # the subclass's own arguments are collected too: Lightning reads every __init__
        # frame and the subclass's values win, so a subclass converts its ``seeds`` to plain
        # ints first (Hydra passes a ListConfig, which a weights-only load of the checkpoint
        # refuses: tests/models/test_paired_supcon.py)
        self.save_hyperparameters(ignore=["backbone", "head", "optimizer", "scheduler"])
        self.seeds = seeds
        if not self.seeds:
            raise ValueError("seeds must hold at least one seed")
        self.members = nn.ModuleList(self._build_member(backbone, head, s) for s in self.seeds)
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.channels_last = bool(channels_last)
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

    # -- what an objective supplies -----------------------------------------------------------

    def member_loss(self, member: Member, views: torch.Tensor, labels: torch.Tensor):
        """The objective's loss of one member on its batch: ``views`` ``(B, V, C, H, W)``,
        ``labels`` ``(B,)``. A float32 scalar."""
        raise NotImplementedError(f"{type(self).__name__} defines no objective (member_loss)")

    def classifier_rows(self) -> list[torch.Tensor] | None:
        """Each member's trained classifier rows ``(K, d)`` on the encoder's features, for the
        ``classifier`` analysis group (NC2 of the classifier, NC3); None when the objective
        trains no classifier."""
        return None

    # -- shared by every objective ------------------------------------------------------------

    def _inputs(self, views: torch.Tensor) -> torch.Tensor:
        """The ``B·V`` views as one batch of images, in the module's memory format."""
        x = views.flatten(0, 1)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

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
