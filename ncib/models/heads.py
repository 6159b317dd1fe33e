"""Projection head of SupCon (Khosla et al. 2020): an MLP whose output is L2-normalised."""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

__all__ = ["ProjectionHead"]


class ProjectionHead(nn.Module):
    """``Linear(in_dim, hidden_dim) → ReLU → Linear(hidden_dim, out_dim) → L2 normalise``.

    ``hidden_dim=None`` uses ``in_dim`` (as in SupCon's ResNet-50 head); ``hidden_dim=0`` makes
    the head a single linear layer.
    """

    def __init__(self, in_dim: int, out_dim: int = 128, hidden_dim: int | None = None):
        super().__init__()
        if hidden_dim == 0:
            self.mlp = nn.Linear(in_dim, out_dim)
            return
        hidden_dim = hidden_dim or in_dim
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, out_dim)
        )

    def forward(self, h):
        return F.normalize(self.mlp(h), dim=-1)
