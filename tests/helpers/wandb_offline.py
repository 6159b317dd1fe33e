"""Read an offline W&B run (``<run_dir>/wandb/offline-run-*/run-<id>.wandb``) without network.

The ``.wandb`` file is what ``wandb sync`` uploads: a LevelDB-style log of protobuf ``Record``s
(``wandb.proto.wandb_internal_pb2``). Reading it checks what W&B itself would receive: config
updates, metric definitions, history rows, summaries and artifact manifests.
"""

from __future__ import annotations

import json
import struct
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

BLOCK = 32768
FILE_HEADER = struct.Struct("<4sHB")  # b":W&B", magic 0xBEE1, version
CHUNK_HEADER = struct.Struct("<IHB")  # crc32, length, type (1 full, 2 first, 3 middle, 4 last)


def _payloads(data: bytes):
    ident, magic, _ = FILE_HEADER.unpack_from(data, 0)
    assert ident == b":W&B" and magic == 0xBEE1, "not a .wandb file"
    pos, parts = FILE_HEADER.size, []
    while pos + CHUNK_HEADER.size <= len(data):
        left = BLOCK - pos % BLOCK
        if left < CHUNK_HEADER.size:  # block trailer: zero padding
            pos += left
            continue
        crc, length, kind = CHUNK_HEADER.unpack_from(data, pos)
        if length == 0 and kind == 0:  # end of the written data
            pos += left
            continue
        body = data[pos + CHUNK_HEADER.size : pos + CHUNK_HEADER.size + length]
        assert zlib.crc32(bytes([kind]) + body) & 0xFFFFFFFF == crc, f"bad checksum at byte {pos}"
        pos += CHUNK_HEADER.size + length
        parts.append(body)
        if kind in (1, 4):
            yield b"".join(parts)
            parts = []


@dataclass
class OfflineRun:
    run: object = None  # RunRecord
    config: dict = field(default_factory=dict)
    metrics: list = field(default_factory=list)  # MetricRecord
    history: list = field(default_factory=list)  # dict per row
    summary: dict = field(default_factory=dict)
    artifacts: list = field(default_factory=list)  # ArtifactRecord
    exited: bool = False  # the run's exit record is in the file: it is complete

    def step_of(self, name: str) -> str | None:
        """The step metric W&B has for ``name`` (its last explicit definition)."""
        found = None
        for m in self.metrics:
            if m.name == name:
                found = m.step_metric or found
        return found

    def glob_step(self, glob: str) -> str | None:
        return next((m.step_metric for m in self.metrics if m.glob_name == glob), None)

    def artifact_paths(self, type_: str) -> dict[str, list[str]]:
        return {
            a.name: sorted(e.path for e in a.manifest.contents)
            for a in self.artifacts
            if a.type == type_
        }


def read_offline_run(path: str | Path, timeout: float = 60.0) -> OfflineRun:
    """Parse one ``.wandb`` file (or the only one under a run directory's ``wandb/``).

    W&B's service writes the file in the background: after ``run.finish()`` in this process
    (not after the process has exited) the file may still be incomplete for a moment, so wait
    up to ``timeout`` seconds for the run's exit record."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("wandb/offline-run-*/*.wandb")) or sorted(path.glob("*.wandb"))
        assert len(files) == 1, f"expected one .wandb file under {path}, found {files}"
        path = files[0]
    deadline = time.monotonic() + timeout
    while True:
        try:
            out = _parse(path)
        except (AssertionError, struct.error):  # a chunk being written
            out = None
        if (out is not None and out.exited) or time.monotonic() > deadline:
            return out if out is not None else _parse(path)
        time.sleep(0.25)


def _parse(path: Path) -> OfflineRun:
    from wandb.proto import wandb_internal_pb2 as pb

    out = OfflineRun()

    def put(items):
        for item in items:
            keys = list(item.nested_key) or [item.key]
            target = out.config
            for k in keys[:-1]:
                target = target.setdefault(k, {})
            target[keys[-1]] = json.loads(item.value_json)

    for payload in _payloads(path.read_bytes()):
        record = pb.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out.run = record.run
            put(record.run.config.update)
        elif kind == "config":
            put(record.config.update)
        elif kind == "metric":
            out.metrics.append(record.metric)
        elif kind == "history":
            out.history.append(
                {
                    "/".join(i.nested_key) if i.nested_key else i.key: json.loads(i.value_json)
                    for i in record.history.item
                }
            )
        elif kind == "summary":
            for i in record.summary.update:
                out.summary["/".join(i.nested_key) if i.nested_key else i.key] = json.loads(
                    i.value_json
                )
        elif kind == "artifact":
            out.artifacts.append(record.artifact)
        elif kind == "exit":
            out.exited = True
    return out
