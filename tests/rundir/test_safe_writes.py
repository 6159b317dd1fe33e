"""Writes that a kill or a full disk cannot tear: checkpoints and records."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import warnings

import pytest
import torch

from ncib.callbacks import AtomicCheckpointIO
from ncib.report import write_report
from ncib.rundir.records import append_record, atomic_write_bytes, read_records, rewrite_records


class _FillsUp:
    """A file that takes ``room`` bytes, then fails like a full device."""

    def __init__(self, f, room: int):
        self._f, self._room = f, room

    def write(self, data):
        if len(data) > self._room:
            self._f.write(bytes(data[: self._room]))
            self._room = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self._room -= len(data)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def _check_previous_survives(path, save):
    save({"state_dict": {"w": torch.ones(3)}, "epoch": 4})
    message = (
        "no space left on the device while writing .*last.ckpt; the previous version of the "
        "file, if any, is intact — free some space and resume$"
    )
    with pytest.raises(OSError, match=message) as err:
        save({"state_dict": {"w": torch.zeros(200_000)}, "epoch": 5})
    assert err.value.errno == errno.ENOSPC
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["epoch"] == 4 and torch.equal(ckpt["state_dict"]["w"], torch.ones(3))
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no temporary left


def test_a_full_disk_during_a_checkpoint_write_leaves_the_previous_one_loadable(
    tmp_path, monkeypatch
):
    path = tmp_path / "checkpoints" / "last.ckpt"
    real_fdopen = os.fdopen
    room = {"bytes": 10**9}
    monkeypatch.setattr(
        os, "fdopen", lambda fd, *a, **k: _FillsUp(real_fdopen(fd, *a, **k), room["bytes"])
    )

    def save(ckpt):
        room["bytes"] = 10**9 if ckpt["epoch"] == 4 else 50_000  # the second write fills the disk
        AtomicCheckpointIO().save_checkpoint(ckpt, path)

    _check_previous_survives(path, save)


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small disk needs root")
def test_a_really_full_small_disk(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(disk)], capture_output=True
    ).returncode:
        pytest.skip("tmpfs cannot be mounted here")
    try:
        path = disk / "checkpoints" / "last.ckpt"
        _check_previous_survives(
            path, lambda ckpt: AtomicCheckpointIO().save_checkpoint(ckpt, path)
        )
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_written_files_get_normal_permissions(tmp_path):
    os.umask(0o022)
    path = atomic_write_bytes(tmp_path / "x.json", b"{}")
    append_record(tmp_path / "analysis.jsonl", {"epoch": 1})
    for p in (path, tmp_path / "analysis.jsonl"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o644


def test_the_temporary_is_a_hidden_sibling_named_after_the_file(tmp_path):
    """Folders are created as needed; while a write is in progress the data sits in a hidden
    ``.<name>.*.tmp`` beside the target, which globs for the real files do not match."""
    path = tmp_path / "a" / "b" / "x.json"
    seen = []

    def writer(f):
        f.write(b"{}")
        seen.extend(p.name for p in path.parent.iterdir())

    assert atomic_write_bytes(path, writer=writer) == path and path.read_bytes() == b"{}"
    assert len(seen) == 1 and seen[0].startswith(".x.json.") and seen[0].endswith(".tmp")
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]


def test_an_interrupted_write_leaves_no_temporary_and_raises_its_own_error(tmp_path):
    path = tmp_path / "x.json"
    path.write_bytes(b"old")

    def writer(f):
        f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(path, writer=writer)
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"] and path.read_bytes() == b"old"


def _torn(tmp_path):
    path = tmp_path / "analysis.jsonl"
    append_record(path, {"epoch": 1, "a": 1.0})
    append_record(path, {"epoch": 2, "a": 2.0})
    with open(path, "ab") as f:  # a writer killed half-way through a line
        f.write(b'{"epoch": 3, "a": [1.0, 2.')
    return path


def test_a_torn_last_line_is_skipped_by_readers_with_a_warning(tmp_path):
    path = _torn(tmp_path)
    with pytest.warns(RuntimeWarning, match="skipped 1 unreadable line"):
        assert [r["epoch"] for r in read_records(path)] == [1, 2]
    assert path.read_bytes().endswith(b"2.")  # reading changes nothing


def test_the_next_append_sets_a_torn_line_aside_instead_of_gluing_onto_it(tmp_path):
    path = _torn(tmp_path)
    with pytest.warns(RuntimeWarning, match="set aside"):
        append_record(path, {"epoch": 3, "a": 3.0})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [r["epoch"] for r in read_records(path)] == [1, 2, 3]
    assert (tmp_path / "analysis.jsonl.corrupt").read_bytes() == b'{"epoch": 3, "a": [1.0, 2.\n'


def test_rewrite_keeps_the_chosen_records_and_sets_torn_lines_aside(tmp_path):
    path = _torn(tmp_path)
    with pytest.warns(RuntimeWarning):
        assert rewrite_records(path, keep=lambda r: r["epoch"] <= 1) == (1, 1)
    assert [json.loads(x)["epoch"] for x in path.read_text().splitlines()] == [1]
    assert (tmp_path / "analysis.jsonl.corrupt").exists()


def test_the_report_still_reports_the_good_records_of_a_torn_file(tmp_path):
    path = _torn(tmp_path)
    for r in ({"epoch": 1}, {"epoch": 2}):
        r |= {
            "num_classes": 10,
            "k": 10,
            "feature_dim": 8,
            "identifiability": {"scalars": {"cca/mean_k/raw": 0.5}},
        }
    path.write_bytes(
        b"".join(
            json.dumps(r).encode() + b"\n"
            for r in (
                {
                    "epoch": 1,
                    "num_classes": 10,
                    "k": 10,
                    "feature_dim": 8,
                    "identifiability": {"scalars": {"cca/mean_k/raw": 0.5}},
                },
                {
                    "epoch": 2,
                    "num_classes": 10,
                    "k": 10,
                    "feature_dim": 8,
                    "identifiability": {"scalars": {"cca/mean_k/raw": 0.6}},
                },
            )
        )
        + b'{"epoch": 3, "a": [1.0, 2.'
    )
    with pytest.warns(RuntimeWarning, match="unreadable"):
        report = write_report(tmp_path)
    assert "Analysed epochs: 1, 2;" in report.markdown
