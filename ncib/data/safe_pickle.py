"""Read the pickled batches of CIFAR and ImageNet32 without running anything from them.

A pickle names the functions the reader must call to rebuild it; ``pickle.load`` calls whatever
a file names, so a tampered download would run its own code on every node that reads it. The
batches hold only a dict of bytes/str keys, lists of ints, bytes and numpy arrays of numbers, so
:func:`load_data_pickle` admits exactly the functions that rebuild a numpy array (and
``_codecs.encode``, which Python 3 writes for bytes at pickle protocol 2) and refuses every
other name, before calling anything, with an error naming the file and what it referred to.
(The pattern: "Restricting Globals" in the Python documentation of :mod:`pickle`; why:
docs/design.md §9.)
"""

from __future__ import annotations

import _codecs
import pickle
from pathlib import Path

import numpy as np

__all__ = ["UntrustedPickleError", "admitted_globals", "load_data_pickle"]


class UntrustedPickleError(pickle.UnpicklingError, ValueError):
    """A data pickle referred to something a data batch never holds; nothing was called."""


def _numeric_dtype(*args):
    """``numpy.dtype`` for numbers and bytes only: an object dtype would let the array's
    contents name further Python objects, which no batch format needs."""
    dtype = np.dtype(*args)
    if dtype.hasobject:
        raise UntrustedPickleError(f"an array of dtype {dtype} (Python objects)")
    return dtype


def admitted_globals() -> dict[tuple[str, str], object]:
    """``(module, name)`` → the object a data pickle may refer to. numpy writes its helpers
    under ``numpy._core`` (numpy 2) or ``numpy.core`` (numpy 1); both spellings map to the
    helpers of the numpy installed here."""
    helpers = [
        np.zeros(1).__reduce__()[0],  # _reconstruct (protocols 0–4)
        np.zeros(1).__reduce_ex__(5)[0],  # _frombuffer (protocol 5)
        np.float64(0).__reduce__()[0],  # scalar (a numpy number)
    ]
    admitted: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): _numeric_dtype,
        ("_codecs", "encode"): _codecs.encode,
    }
    for fn in helpers:
        submodule = fn.__module__.rsplit(".", 1)[-1] if fn.__module__ else "multiarray"
        for package in ("numpy.core", "numpy._core"):
            admitted[(f"{package}.{submodule}", fn.__name__)] = fn
    return admitted


class _DataUnpickler(pickle.Unpickler):
    def __init__(self, file, admitted, **kwargs):
        super().__init__(file, **kwargs)
        self._admitted = admitted

    def find_class(self, module: str, name: str):
        try:
            return self._admitted[(module, name)]
        except KeyError:
            raise UntrustedPickleError(f"{module}.{name}") from None

    def persistent_load(self, pid):
        raise UntrustedPickleError(f"a persistent id {pid!r}")


def load_data_pickle(path: str | Path, what: str, fix: str, encoding: str = "ASCII"):
    """The object pickled in ``path`` (a ``what`` batch, e.g. ``"CIFAR"``), rebuilt from plain
    containers, strings, numbers and numeric numpy arrays only.

    Raises :class:`UntrustedPickleError` naming the file, the refused name and what to do when
    the pickle refers to anything else (nothing it names is called), and ``ValueError`` naming
    the file when it is not a readable pickle (empty, truncated, random bytes); ``fix`` says
    how to get the file again. ``encoding`` as in :class:`pickle.Unpickler` (``"latin1"`` or
    ``"bytes"`` for files written by Python 2; a ``UnicodeDecodeError`` is passed on, for the
    caller to try another).
    """
    path = Path(path)
    with open(path, "rb") as f:
        try:
            return _DataUnpickler(f, admitted_globals(), encoding=encoding).load()
        except UntrustedPickleError as err:
            raise UntrustedPickleError(
                f"{path} is not a {what} batch: its pickle refers to {err}, which a {what} batch "
                "never holds, and ncib does not run code from data files (nothing was run). The "
                f"file was replaced or tampered with: {fix}"
            ) from None
        except UnicodeDecodeError:
            raise
        except Exception as err:  # empty, truncated, random bytes: the unpickler's own errors
            raise ValueError(
                f"{path} is not a readable {what} batch ({type(err).__name__}: {err}); the file "
                f"is truncated or corrupt: {fix}"
            ) from err
