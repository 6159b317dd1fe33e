"""The run directory's small records (``ncib/rundir/records.py``): resumes, report names, rewrites."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from ncib.rundir.records import (
    RESUMES_FILE,
    append_record,
    read_records,
    read_resumes,
    report_names,
    rewrite_records,
)
from tests.conftest import UNDER_MUTMUT
from tests.helpers.processes import ncib_process


def test_read_resumes_reads_every_line_in_order_and_is_empty_without_a_file(tmp_path):
    assert read_resumes(tmp_path) == []
    path = tmp_path / RESUMES_FILE
    path.parent.mkdir(parents=True)
    rows = [{"time": "t0", "epochs_done": 2}, {"time": "t1", "epochs_done": 5}]
    path.write_text(json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n  \n")
    assert read_resumes(tmp_path) == rows
    assert read_resumes(str(tmp_path)) == rows


@pytest.mark.parametrize(
    "name,expected",
    [
        ("analysis.jsonl", ("report.md", "figures")),
        ("analysis-k5.jsonl", ("report-k5.md", "figures-k5")),
        ("runs/x/analysis-more.jsonl", ("report-more.md", "figures-more")),
        ("other.jsonl", ("report-other.md", "figures-other")),
    ],
)
def test_report_names_follow_the_records_file(name, expected):
    assert report_names(name) == expected


def test_report_names_default_to_the_main_records_file():
    assert report_names() == ("report.md", "figures")


def test_rewrite_records_keeps_the_chosen_ones_and_reports_the_counts(tmp_path):
    path = tmp_path / "analysis.jsonl"
    assert rewrite_records(path) == (0, 0) and not path.exists()
    for epoch in range(4):
        append_record(path, {"epoch": epoch})
    before = path.read_bytes()
    stamp = os.stat(path).st_mtime_ns
    # keeping everything leaves the file as it is (not even rewritten)
    assert rewrite_records(path) == (4, 0)
    assert path.read_bytes() == before and os.stat(path).st_mtime_ns == stamp
    assert rewrite_records(path, keep=lambda r: r["epoch"] % 2 == 0) == (2, 2)
    assert path.read_bytes() == b'{"epoch": 0}\n{"epoch": 2}\n'
    assert [r["epoch"] for r in read_records(path)] == [0, 2]
    assert rewrite_records(path, keep=lambda r: False) == (0, 2)
    assert path.read_bytes() == b""


def test_rewrite_records_with_only_a_torn_line_rewrites_the_file(tmp_path):
    path = tmp_path / "analysis.jsonl"
    path.write_bytes(b'{"epoch": 0}\n{"epoch": 1')
    with pytest.warns(RuntimeWarning, match="unreadable") as caught:
        assert rewrite_records(path) == (1, 0)
    if not UNDER_MUTMUT:  # mutmut's trampolines add frames
        assert [w.filename for w in caught] == [__file__]  # the warning points at the caller
    assert path.read_bytes() == b'{"epoch": 0}\n'
    assert (tmp_path / "analysis.jsonl.corrupt").read_bytes() == b'{"epoch": 1\n'


def test_fault_point_kills_only_at_its_name_and_epoch(monkeypatch):
    import ncib.rundir.faults as faults
    from ncib.rundir.faults import fault_point

    kills = []
    monkeypatch.setattr(faults.os, "kill", lambda pid, sig: kills.append((pid, sig)))
    monkeypatch.delenv("NCIB_FAULT", raising=False)
    fault_point("after_analysis", 3)  # nothing set: nothing happens
    monkeypatch.setenv("NCIB_FAULT", "after_analysis:2")
    fault_point("after_analysis", 3)
    fault_point("before_analysis", 2)
    assert kills == []
    fault_point("after_analysis", 2.0)
    assert kills == [(os.getpid(), signal.SIGKILL)]


def test_fault_point_kills_the_process():
    code = "from ncib.rundir.faults import fault_point; fault_point('after_analysis', 2); print('alive')"
    process = ncib_process(NCIB_FAULT="after_analysis:2")  # runs the ncib imported here
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, **process)
    assert proc.returncode == -signal.SIGKILL and "alive" not in proc.stdout


def test_to_jsonable_converts_numpy_values_and_non_finite_floats():
    import numpy as np
    import torch

    from ncib.rundir.records import to_jsonable

    value = {
        "a": np.arange(3),
        "b": np.float64(0.5),
        "c": np.array([[1.5, np.nan]]),
        "d": (np.int64(2), torch.tensor([np.inf])),
        5: float("-inf"),
    }
    out = to_jsonable(value)
    assert out == {"a": [0, 1, 2], "b": 0.5, "c": [[1.5, None]], "d": [2, [None]], "5": None}
    assert type(out["b"]) is float and type(out["d"][0]) is int
    json.dumps(out, allow_nan=False)  # plain JSON


def test_blank_lines_are_skipped_not_the_end_of_the_records(tmp_path):
    path = tmp_path / "analysis.jsonl"
    path.write_bytes(b'{"epoch": 0}\n\n  \n{"epoch": 1}\n')
    assert [r["epoch"] for r in read_records(path)] == [0, 1]
