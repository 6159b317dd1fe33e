"""Weights of the pair at the analysis epochs, so a finished run can be analysed again.

``<run_dir>/checkpoints/analysis/epoch=0005.ckpt`` holds ``{"state_dict", "epoch",
"global_step", "format"}`` — plain tensors, integers and strings only, so it loads with
``torch.load(..., weights_only=True)``. No optimiser state: a ResNet-50 pair is about 0.2 GB
per analysis epoch (Lightning's ``last.ckpt``, with the optimiser, is twice that).

Every checkpoint ncib reads — these, ``last.ckpt`` on resume, a transfer source, the checkpoint
of ``ncib.linear_eval`` — goes through :func:`read_checkpoint`: ``weights_only=True`` with no
extra allowed globals (ncib writes tensors, numbers, strings and containers only), so nothing
in a file runs, and a file that cannot be used fails naming itself, what is wrong and what to do
(docs/design.md §9).
"""

from __future__ import annotations

import os
import re
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch

from ncib.rundir.records import atomic_torch_save

__all__ = [
    "ANALYSIS_CHECKPOINTS",
    "PREVIOUS_CHECKPOINT",
    "CheckpointError",
    "check_training_checkpoint",
    "analysis_checkpoint_path",
    "keep_previous",
    "list_analysis_checkpoints",
    "load_pair_weights",
    "load_weights",
    "read_checkpoint",
    "training_checkpoint_fix",
    "save_weights",
]

ANALYSIS_CHECKPOINTS = "checkpoints/analysis"
EPOCH_CHECKPOINT = "last.ckpt"  # the full training state (ncib.callbacks.EpochCheckpoint)
PREVIOUS_CHECKPOINT = "previous.ckpt"  # last.ckpt before its last replacement
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


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file, what is wrong and what
    to do."""


_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def _what_is_wrong(path: Path, err: Exception | None) -> str:
    size = path.stat().st_size
    if size == 0:
        return "it is empty (0 bytes)"
    if not zipfile.is_zipfile(path):
        return (
            f"it is not a checkpoint archive as torch.save writes them ({size} bytes with no zip "
            "directory: cut short by a crash or a copy, or another kind of file)"
        )
    if err is None:
        return "it could not be read"
    refused = _GLOBAL.search(str(err))
    if refused:
        return (
            f"it refers to {refused.group(1)}, which an ncib checkpoint never holds (only "
            "tensors, numbers, strings and containers): it was not written by ncib, or was "
            "tampered with. ncib loads checkpoints with weights_only=True, so nothing was run"
        )
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"it is damaged ({type(err).__name__}: {first[:200]})"


def read_checkpoint(path: str | Path, fix: str | Callable[[], str], mmap: bool = False) -> dict:
    """The dict in a checkpoint file, loaded with ``torch.load(weights_only=True)`` on the CPU.

    Raises :class:`CheckpointError` naming ``path``, what is wrong with it (empty, cut short, not
    a checkpoint, a reference to code) and ``fix`` (what the user can do), and
    ``FileNotFoundError`` if it does not exist. ``fix`` may be a function, called only on
    failure. ``mmap``: map the file instead of reading it.
    """
    path = Path(path)
    if callable(fix):
        try:
            return read_checkpoint(path, "", mmap)
        except (CheckpointError, FileNotFoundError) as err:
            raise type(err)(f"{err}{fix()}") from err.__cause__
    fix = f"; {fix}" if fix else ""
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist{fix}")
    err: Exception | None = None
    if path.stat().st_size and zipfile.is_zipfile(path):
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except Exception as caught:  # damaged members, refused globals, …
            err = caught
        else:
            if isinstance(ckpt, dict):
                return ckpt
            raise CheckpointError(
                f"{path} is not an ncib or Lightning checkpoint: it holds a "
                f"{type(ckpt).__name__}, not a dict{fix}"
            )
    raise CheckpointError(f"{path} cannot be used: {_what_is_wrong(path, err)}{fix}") from err


def load_weights(
    path: str | Path, fix: str = "give a checkpoint written by python -m ncib.run"
) -> dict:
    """A checkpoint written by :func:`save_weights` or Lightning, loaded safely
    (:func:`read_checkpoint`); raises :class:`CheckpointError` naming the path and ``fix`` if it
    is neither."""
    ckpt = read_checkpoint(path, fix)
    if not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(
            f"{path} holds no 'state_dict' (it has {', '.join(map(str, ckpt)) or 'nothing'}): "
            f"not an ncib or Lightning checkpoint; {fix}"
        )
    return ckpt


def load_pair_weights(model: torch.nn.Module, ckpt: dict, path: str | Path, fix: str) -> None:
    """``model.load_state_dict(ckpt["state_dict"])``, failing with :class:`CheckpointError`
    naming ``path`` when the weights are not those of ``model`` (another backbone or run)."""
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        raise CheckpointError(
            f"{path} does not hold the weights of the pair its run describes ({type(model).__name__}): "
            f"{str(err).strip().splitlines()[0][:300]}; {fix}"
        ) from err


def keep_previous(last: str | Path) -> Path | None:
    """Before ``last`` is replaced, keep its current version as ``previous.ckpt`` beside it (a
    hard link: no copy; a plain copy where the file system has no hard links), so that a
    ``last.ckpt`` damaged later still leaves a good state to resume from. Returns the kept
    path, or None when there was nothing to keep."""
    last = Path(last)
    if not last.is_file():
        return None
    previous = last.with_name(PREVIOUS_CHECKPOINT)
    tmp = last.with_name(f".{PREVIOUS_CHECKPOINT}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(last, tmp)
    except OSError:
        shutil.copyfile(last, tmp)
    os.replace(tmp, previous)
    return previous


# what a checkpoint to resume training from holds (Lightning's full training state)
TRAINING_STATE = ("state_dict", "epoch", "global_step", "optimizer_states", "loops")


def check_training_checkpoint(path: str | Path, mmap: bool = True) -> dict:
    """A checkpoint to resume training from (a run's ``last.ckpt``, or ``ckpt_path``), read
    with :func:`read_checkpoint`; fails with :class:`CheckpointError` naming the file, what is
    wrong (damaged, foreign, weights only) and what to do (:func:`training_checkpoint_fix`)."""
    ckpt = read_checkpoint(path, lambda: f"; {training_checkpoint_fix(path)}", mmap=mmap)
    missing = [k for k in TRAINING_STATE if k not in ckpt]
    if missing:
        fix = training_checkpoint_fix(path)
        kind = (
            "the weights of an analysis epoch, which cannot resume training"
            if ckpt.get("format") == _FORMAT
            else "not a checkpoint of python -m ncib.run"
        )
        raise CheckpointError(
            f"{path} holds no full training state (no {', '.join(missing)}): {kind}; {fix}"
        )
    return ckpt


def training_checkpoint_fix(last: str | Path) -> str:
    """What to do about an unusable checkpoint to resume from: for a run's ``last.ckpt``, put
    back ``previous.ckpt`` (when it is readable) or train the run again; for another file
    (``ckpt_path=``), give another."""
    last = Path(last)
    if last.name != EPOCH_CHECKPOINT:
        return f"give ckpt_path= the {EPOCH_CHECKPOINT} (or {PREVIOUS_CHECKPOINT}) of a run"
    previous = last.with_name(PREVIOUS_CHECKPOINT)
    options = []
    if previous.is_file():
        try:
            epoch = int(read_checkpoint(previous, "", mmap=True)["epoch"]) + 1
            options.append(
                f"put back the previous good state, {previous} (after epoch {epoch}): "
                f"mv {previous} {last}, then run the same command again"
            )
        except (CheckpointError, KeyError, TypeError, ValueError):
            pass
    options.append(
        f"delete {last} and run the same command again to train this run from epoch 0 in its "
        "directory, or start afresh elsewhere (another hydra.run.dir; resume=false refuses a "
        "directory that holds a run)"
    )
    return "; or ".join(options)


def list_analysis_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """``(epoch, path)`` of every analysis checkpoint of a run, in epoch order."""
    folder = Path(run_dir) / ANALYSIS_CHECKPOINTS
    found = []
    for path in folder.glob("epoch=*.ckpt") if folder.is_dir() else ():
        match = _NAME.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)
