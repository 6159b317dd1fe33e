"""Files of a run directory that the analysis writes and the report reads.

``analysis.jsonl`` holds one JSON record per analysis epoch, appended atomically;
``linear_probe.json`` the offline probes' Table 1.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

__all__ = ["PROBE_FILE", "RECORDS_FILE", "append_record", "read_records", "to_jsonable"]

RECORDS_FILE = "analysis.jsonl"
PROBE_FILE = "linear_probe.json"


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


def append_record(path: str | Path, record: dict) -> None:
    """Append one record as a JSON line. The file is rewritten through a temporary file and
    ``os.replace``, so a crash leaves either the old file or the new one, never half a line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(to_jsonable(record), allow_nan=False) + "\n"
    old = path.read_bytes() if path.exists() else b""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(old + line.encode())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_records(path: str | Path) -> list[dict]:
    """Every record of an ``analysis.jsonl``, in order."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no analysis records at {path}: was analysis enabled for this run?")
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]
