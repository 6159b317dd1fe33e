"""The offline linear evaluation (the paper's Table 1): a linear layer on a frozen encoder.

Not to be confused with the analysis probe (:mod:`ncib.analysis.probe`, Table 2), a
full-batch logistic regression on cached features at every analysis epoch.
"""

from __future__ import annotations

from collections.abc import Callable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import nn

from ncib.models.schedules import optimizers_for

__all__ = ["LinearEvaluator"]


class LinearEvaluator(pl.LightningModule):
    """Frozen ``encoder`` → (optionally standardise) → ``Linear(feature_dim, num_classes)``.

    Batches are ``{"x", "y"}`` where ``x`` is either images (passed through the frozen encoder
    in eval mode, float32) or, with ``inputs="features"``, encoder features computed beforehand —
    the fast path when no augmentation is used, since the encoder is frozen.
    :meth:`set_standardization` fixes the feature mean/std from the training split.

    Args:
        encoder: the trained encoder (its weights are never updated).
        num_classes: K.
        optimizer: factory ``(params) -> Optimizer``.
        scheduler: factory ``(optimizer, total_steps, steps_per_epoch) -> LRScheduler`` or None.
        inputs: ``"images"`` or ``"features"``.
        view_fn: with ``inputs="images"``, maps a sampler batch to augmented
            ``{"views": (B, V, C, H, W), "y"}`` on the device; every view is a training sample.
    """

    def __init__(
        self,
        encoder: nn.Module,
        num_classes: int,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable | None = None,
        inputs: str = "features",
        view_fn: Callable[[dict], dict] | None = None,
    ):
        super().__init__()
        if inputs not in ("images", "features"):
            raise ValueError(f"inputs must be 'images' or 'features'; got {inputs!r}")
        self.encoder = encoder.eval().requires_grad_(False)
        dim = encoder.feature_dim
        self.linear = nn.Linear(dim, num_classes)
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.optimizer_factory, self.scheduler_factory, self.inputs = optimizer, scheduler, inputs
        self.view_fn = view_fn

    def set_standardization(self, train_features: torch.Tensor) -> None:
        self.mean.copy_(train_features.mean(0))
        self.std.copy_(train_features.std(0).clamp_min(1e-6))

    def train(self, mode: bool = True):
        super().train(mode)
        self.encoder.eval()  # frozen: BatchNorm statistics never move
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inputs == "images":
            with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
                x = self.encoder(x.float()).float()
        return self.linear((x - self.mean) / self.std)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        if self.view_fn is not None and "seed" in batch:
            made = self.view_fn(batch)
            views = made["views"]
            return {"x": views.flatten(0, 1), "y": made["y"].repeat_interleave(views.shape[1])}
        return batch

    def training_step(self, batch, batch_idx):
        loss = F.cross_entropy(self(batch["x"]), batch["y"])
        self.log("linear_eval/train_loss", loss, on_step=False, on_epoch=True)
        return loss

    @torch.no_grad()
    def logits_features(self, features: torch.Tensor, batch_size: int = 8192) -> torch.Tensor:
        """Logits ``(N, num_classes)`` from encoder features ``(N, feature_dim)``."""
        self.eval()
        w = self.linear.to(features.device)
        mean, std = self.mean.to(features.device), self.std.to(features.device)
        return torch.cat([w((f - mean) / std).float() for f in features.split(batch_size)])

    def predict_features(self, features: torch.Tensor, batch_size: int = 8192) -> torch.Tensor:
        """Class predictions ``(N,)`` from encoder features ``(N, feature_dim)``."""
        return self.logits_features(features, batch_size).argmax(1)

    def configure_optimizers(self):
        return optimizers_for(
            self.linear.parameters(), self.optimizer_factory, self.scheduler_factory, self.trainer
        )
