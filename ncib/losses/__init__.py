"""Losses as pure functions of tensors (no Lightning)."""

from ncib.losses.distributed import gather_with_grad
from ncib.losses.supcon import supcon_loss

__all__ = ["gather_with_grad", "supcon_loss"]
