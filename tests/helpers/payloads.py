"""Pickles that would run code: a loader of user files must never let one run."""

from __future__ import annotations

import builtins
import io
import os


class Payload:
    """Unpickling this calls ``how`` to create the directory ``marker``: if the marker exists,
    a file ran code. ``how``: ``os.mkdir``, ``exec`` (a string of Python) or ``numpy`` (numpy's
    own ``runstring``, so that admitting "anything from numpy" would be caught)."""

    def __init__(self, marker, how: str = "os.mkdir"):
        self.marker, self.how = str(marker), how

    def __reduce__(self):
        if self.how == "os.mkdir":
            return os.mkdir, (self.marker,)
        if self.how == "exec":
            return builtins.exec, (f"import os; os.mkdir({self.marker!r})",)
        if self.how == "numpy":
            from numpy.testing._private.utils import runstring

            return runstring, (f"import os; os.mkdir({self.marker!r})", {})
        raise ValueError(self.how)


def torch_saved(obj) -> bytes:
    """The bytes ``torch.save(obj)`` writes (a checkpoint archive)."""
    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()
