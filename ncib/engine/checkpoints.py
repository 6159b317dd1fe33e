"""Weights of the pair at the analysis epochs, so a finished run can be analysed again.

``<run_dir>/checkpoints/analysis/epoch=0005.ckpt`` holds ``{"state_dict", "epoch",
"global_step", "format"}`` — plain tensors, integers and strings only, so it loads with
``torch.load(..., weights_only=True)``. No optimiser state: a ResNet-50 pair is about 0.2 GB
per analysis epoch (Lightning's ``last.ckpt``, with the optimiser, is twice that).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ncib.records import atomic_torch_save

__all__ = [
    "ANALYSIS_CHECKPOINTS",
    "analysis_checkpoint_path",
    "list_analysis_checkpoints",
    "load_weights",
    "save_weights",
]

ANALYSIS_CHECKPOINTS = "checkpoints/analysis"
_FORMAT = "ncib.weights/1"
_NAME = re.compile(r"^epoch=(\d+)\.ckpt$")


def analysis_checkpoint_path(run_dir: str | Path, epoch: int) -> Path:
    return Path(run_dir) / ANALYSIS_CHECKPOINTS / f"epoch={int(epoch):04d}.ckpt"


def save_weights(path: str | Path, module: torch.nn.Module, epoch: int, global_step: int) -> Path:
    """Write ``module``'s state dict (on the CPU) with its epoch and step, atomically."""
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    payload = {
        "format": _FORMAT,
        "state_dict": state,
        "epoch": int(epoch),
        "global_step": int(global_step),
    }
    return atomic_torch_save(payload, path)


def load_weights(path: str | Path) -> dict:
    """A checkpoint written by :func:`save_weights` or Lightning, loaded safely
    (``weights_only=True``); raises ``ValueError`` naming the path if it is neither."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated file, foreign pickle, …
        raise ValueError(f"{path} is not a readable checkpoint: {err}") from err
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise ValueError(f"{path} holds no 'state_dict': not an ncib or Lightning checkpoint")
    return ckpt


def list_analysis_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """``(epoch, path)`` of every analysis checkpoint of a run, in epoch order."""
    folder = Path(run_dir) / ANALYSIS_CHECKPOINTS
    found = []
    for path in folder.glob("epoch=*.ckpt") if folder.is_dir() else ():
        match = _NAME.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)
