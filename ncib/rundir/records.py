"""Files of a run directory that the analysis writes and the report reads.

``analysis.jsonl`` holds one JSON record per analysis epoch, appended atomically;
``linear_eval.json`` the offline linear evaluation (Table 1).
"""

from __future__ import annotations

import errno
import json
import math
import os
import tempfile
import warnings
from pathlib import Path

from ncib.metrics.legacy import upgrade_record

__all__ = [
    "LINEAR_EVAL_FILE",
    "RECORDS_FILE",
    "append_record",
    "atomic_torch_save",
    "atomic_write_bytes",
    "read_linear_eval",
    "read_records",
    "read_resumes",
    "report_names",
    "rewrite_records",
    "to_jsonable",
]

RECORDS_FILE = "analysis.jsonl"
LINEAR_EVAL_FILE = "linear_eval.json"
STATE_DIR = ".ncib"  # what ncib keeps about the run itself (first config, W&B id, resumes)
RESUMES_FILE = f"{STATE_DIR}/resumes.jsonl"


def read_resumes(run_dir: str | Path) -> list[dict]:
    """The resumes of a run (``ncib.rundir.resume``), oldest first: time, checkpoint, epochs done."""
    path = Path(run_dir) / RESUMES_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def report_names(records_name: str = RECORDS_FILE) -> tuple[str, str]:
    """The report file and figure folder of a records file: ``analysis.jsonl`` →
    (``report.md``, ``figures``); ``analysis-<name>.jsonl`` → (``report-<name>.md``,
    ``figures-<name>``)."""
    stem = Path(records_name).stem
    suffix = stem[len("analysis") :] if stem.startswith("analysis") else f"-{stem}"
    return f"report{suffix}.md", f"figures{suffix}"


def atomic_write_bytes(path: str | Path, data: bytes | None = None, writer=None) -> Path:
    """Write ``path`` through a temporary file in the same folder, ``fsync`` and
    ``os.replace``: a crash or a full disk leaves the previous file intact, never half a file.
    Give the bytes, or ``writer(file)`` that writes them."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if writer is not None:
                writer(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        if err.errno == errno.ENOSPC:
            raise OSError(
                errno.ENOSPC,
                f"no space left on the device while writing {path}; the previous "
                "version of the file, if any, is intact — free some space and resume",
            ) from err
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_torch_save(obj, path: str | Path) -> Path:
    """``torch.save`` through :func:`atomic_write_bytes`. The object is serialised in memory
    first, so a failing write is the file system's own error (``torch.save`` writing straight
    to a full disk reports a zip-writer ``RuntimeError`` instead of "no space left")."""
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write_bytes(path, buffer.getbuffer())


def to_jsonable(value):
    """Tensors, numpy values and nested containers → plain JSON (non-finite floats → None)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        value = value.item() if value.ndim == 0 else value.tolist()
    elif hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _split_records(data: bytes) -> tuple[list[bytes], list[bytes]]:
    """Lines of a records file that parse as records (JSON objects with an integer ``epoch``),
    and those that do not (a torn or foreign line: a record cut short cannot parse, its closing
    brace is its last byte)."""
    good, bad = [], []
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:  # a record is a JSON object with an integer epoch; anything else is foreign
            record = json.loads(line)
            ok = isinstance(record, dict) and type(record.get("epoch")) is int
        except ValueError:
            ok = False
        (good if ok else bad).append(line)
    return good, bad


def _set_aside(path: Path, bad: list[bytes]) -> Path:
    """Append unreadable lines to ``<path>.corrupt`` (never deleted) and warn."""
    corrupt = path.with_name(path.name + ".corrupt")
    with open(corrupt, "ab") as f:
        for line in bad:
            f.write(line + b"\n")
    warnings.warn(
        f"{path}: {len(bad)} unreadable line(s) (a torn write?) set aside in {corrupt}",
        RuntimeWarning,
        stacklevel=3,
    )
    return corrupt


def rewrite_records(path: str | Path, keep=lambda record: True) -> tuple[int, int]:
    """Rewrite a records file atomically with the records ``keep`` accepts; unreadable lines
    are moved to ``<path>.corrupt``. Returns ``(kept, dropped)`` record counts."""
    path = Path(path)
    if not path.exists():
        return 0, 0
    good, bad = _split_records(path.read_bytes())
    if bad:
        _set_aside(path, bad)
    kept = [line for line in good if keep(json.loads(line))]
    if bad or len(kept) != len(good):
        atomic_write_bytes(path, b"".join(line + b"\n" for line in kept))
    return len(kept), len(good) - len(kept)


def append_record(path: str | Path, record: dict) -> None:
    """Append one record as a JSON line. The file is rewritten through
    :func:`atomic_write_bytes`, so a crash leaves either the old file or the new one, never
    half a line; an unreadable line already there (a torn write of another tool) is set aside
    in ``<path>.corrupt`` rather than glued to the new record."""
    path = Path(path)
    line = json.dumps(to_jsonable(record), allow_nan=False).encode()
    good = []
    if path.exists():
        good, bad = _split_records(path.read_bytes())
        if bad:
            _set_aside(path, bad)
    atomic_write_bytes(path, b"".join(g + b"\n" for g in [*good, line]))


def read_linear_eval(path: str | Path) -> dict:
    """Table 1 from a ``linear_eval.json``; a file that is not one (damaged, foreign) fails
    with ``ValueError`` naming it and how to write it again."""
    path = Path(path)
    fix = f"write it again with python -m ncib.linear_eval {path.parent} --force"
    try:
        entry = json.loads(path.read_bytes())
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
        raise ValueError(f"{path} is not readable JSON ({err}); {fix}") from err
    keys = ("test_acc/m0", "test_acc/m1", "train_acc/m0", "train_acc/m1", "both_correct")
    missing = [
        k for k in keys if not isinstance(entry, dict) or not isinstance(entry.get(k), int | float)
    ]
    if missing:
        raise ValueError(
            f"{path} is not a linear evaluation: no number for {', '.join(missing)}; {fix}"
        )
    return entry


def read_records(path: str | Path) -> list[dict]:
    """Every readable record of an ``analysis.jsonl``, in order, under today's metric names
    (records of older runs are upgraded in memory, :func:`ncib.metrics.legacy.upgrade_record`).
    Unreadable lines (a torn write) are skipped with a warning; the file is not changed."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"no analysis records at {path}: was analysis enabled for this run?"
        )
    good, bad = _split_records(path.read_bytes())
    if bad:
        warnings.warn(
            f"{path}: skipped {len(bad)} unreadable line(s) (a torn write?); the other "
            f"{len(good)} records are used",
            RuntimeWarning,
            stacklevel=2,
        )
    return [upgrade_record(json.loads(line)) for line in good]
