"""Losses as pure functions of tensors (no Lightning)."""

from ncib.losses.supcon import supcon_loss

__all__ = ["supcon_loss"]
