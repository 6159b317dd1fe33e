"""Input validation and warning bookkeeping shared by :mod:`ncib.analysis`.

* :class:`WarningLog` — collects warnings for a result's ``warnings`` field and emits each one
  as a :class:`RuntimeWarning` attributed to the caller of the analysis.
* :func:`check_matrix` / :func:`check_labels` — input checks with actionable messages.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["WarningLog", "check_labels", "check_matrix"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _caller_stacklevel() -> int:
    """``stacklevel`` for ``warnings.warn`` (called one frame below here) that points at the
    first frame outside ``ncib.analysis`` and ``contextlib`` (the caller of the analysis)."""
    frame = sys._getframe(2)
    level = 2
    while frame is not None:
        filename = os.path.abspath(frame.f_code.co_filename)
        if not (filename.startswith(_PACKAGE_DIR) or filename == contextlib.__file__):
            break
        frame = frame.f_back
        level += 1
    return level


class WarningLog:
    """Ordered, de-duplicated warnings of one result; :meth:`warn` also emits them."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._items: dict[str, None] = {}

    def warn(self, message: str) -> None:
        text = f"{self.source}: {message}"
        if text not in self._items:
            self._items[text] = None
            warnings.warn(text, RuntimeWarning, stacklevel=_caller_stacklevel())

    def extend(self, items: Sequence[str]) -> None:
        """Adopt already-emitted warnings of an intermediate result (not re-emitted)."""
        for item in items:
            self._items.setdefault(item, None)

    def as_tuple(self) -> tuple[str, ...]:
        return tuple(self._items)


def check_matrix(name: str, x: object, min_rows: int = 1) -> Tensor:
    """Validate a feature matrix: a floating-point ``(N, d)`` tensor with N >= ``min_rows``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N, d), got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, d), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
    if x.shape[0] < min_rows or x.shape[1] < 1:
        raise ValueError(
            f"{name} has shape {tuple(x.shape)}; need at least {min_rows} rows and 1 column"
        )
    return x


def check_labels(name: str, y: object, n: int, num_classes: int) -> Tensor:
    """Validate integer labels ``(N,)`` in ``[0, num_classes)``; returns them as int64."""
    if not isinstance(y, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (N,), got {type(y).__name__}")
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(
            f"{name} must have shape ({n},) to match the features, got {tuple(y.shape)}"
        )
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer class labels, got {y.dtype}")
    if num_classes < 2:
        raise ValueError(
            f"num_classes={num_classes}: need at least two classes for class-mean geometry "
            "and classification"
        )
    if n > 0:
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(
                f"{name} has labels in [{lo}, {hi}], outside [0, num_classes={num_classes})"
            )
    return y.long()
