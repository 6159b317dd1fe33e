"""The classifier objectives: an encoder and a linear classifier on its features, trained with
cross-entropy or with the squared error to one-hot targets (docs/math.md §1)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ncib.models.paired import Member, PairedEncoders

__all__ = ["CLASSIFIER_LOSSES", "PairedClassifier"]

CLASSIFIER_LOSSES = ("ce", "mse")


class PairedClassifier(PairedEncoders):
    """Members whose head is a linear classifier ``W h + b`` on the encoder's features ``h``
    (the features the analysis studies), trained on every view of their batch as a sample.

    * ``loss="ce"``: the mean cross-entropy of the logits (SupContrast's ``main_ce.py``);
    * ``loss="mse"``: ``mean_i ½‖W h_i + b − e_{y_i}‖²``, the squared error to the one-hot
      target summed over the K classes (Han, Papyan & Donoho 2022, "Neural collapse under MSE
      loss"); note that ``torch.nn.MSELoss`` would also average over the K outputs, which
      divides every gradient by K.

    The loss is computed in float32 whatever the training precision. The classifier rows ``W``
    are the ``classifier`` analysis group's input (:meth:`classifier_rows`).

    Args:
        num_classes: K, the classifier's outputs.
        loss: ``"ce"`` or ``"mse"``.
        head: factory ``(in_dim) -> nn.Module`` of the classifier; None builds
            ``nn.Linear(in_dim, num_classes)``.
        Other arguments: :class:`ncib.models.PairedEncoders`.
    """

    def __init__(
        self,
        backbone: Callable[[], nn.Module],
        optimizer: Callable[..., torch.optim.Optimizer],
        seeds: Sequence[int],
        num_classes: int,
        loss: str = "ce",
        scheduler: Callable[..., torch.optim.lr_scheduler.LRScheduler] | None = None,
        head: Callable[[int], nn.Module] | None = None,
        channels_last: bool = False,
        compile: bool = False,
    ):
        if loss not in CLASSIFIER_LOSSES:
            raise ValueError(f"loss={loss!r} is not a classifier loss: one of {CLASSIFIER_LOSSES}")
        if int(num_classes) < 2:
            raise ValueError(f"num_classes={num_classes!r}: a classifier needs at least 2 classes")
        seeds = [int(s) for s in seeds]  # plain ints in the hyper-parameters (PairedEncoders)
        num_classes = int(num_classes)
        if head is None:

            def head(in_dim: int) -> nn.Module:
                return nn.Linear(in_dim, num_classes)

        super().__init__(backbone, head, optimizer, seeds, scheduler, channels_last, compile)
        self.num_classes, self.loss = num_classes, loss

    @property
    def objective(self) -> str:
        return self.loss

    def member_loss(self, member: Member, views: torch.Tensor, labels: torch.Tensor):
        logits = member(self._inputs(views)).float()
        y = labels.repeat_interleave(views.shape[1])  # every view is a sample of its label
        if self.loss == "ce":
            return F.cross_entropy(logits, y)
        target = F.one_hot(y, self.num_classes).to(logits.dtype)
        return 0.5 * (logits - target).square().sum(dim=1).mean()

    def classifier_rows(self) -> list[torch.Tensor]:
        return [self._linear(m).weight.detach() for m in self.members]

    def _linear(self, member: Member) -> nn.Linear:
        head = member.head
        if isinstance(head, nn.Linear):
            return head
        linear = [m for m in head.modules() if isinstance(m, nn.Linear)]
        if not linear:
            raise TypeError(f"the classifier head {type(head).__name__} holds no nn.Linear")
        return linear[-1]  # the layer that makes the logits
