"""Whether W&B logs online: the one place ncib decides it (``${ncib.wandb_mode:}`` in conf/)."""

from __future__ import annotations

import netrc
import os

__all__ = ["wandb_mode"]


def wandb_mode() -> str:
    """``WANDB_MODE`` if set; ``online`` for a logged-in user; else ``offline``."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if os.environ.get("WANDB_API_KEY"):
        return "online"
    try:
        auth = netrc.netrc().authenticators("api.wandb.ai")
    except (OSError, netrc.NetrcParseError):
        auth = None
    return "online" if auth else "offline"
