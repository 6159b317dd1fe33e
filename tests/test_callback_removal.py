"""One metric group left out through Hydra, as a user types it: exactly the GIB keys go.

Two quick runs of the app (``debug=fast``: one epoch, one analysis), with every metric group and
with ``analysis.groups`` less ``gib``: the records and the logged CSV columns of the second are those of the first less
exactly the ``gib`` group's keys — nothing else lost, nothing else changed.
"""

from __future__ import annotations

import csv

import pytest

from ncib.metrics import keys, logged_name
from ncib.rundir.records import read_records
from tests.helpers.app import run_app


def _run(tmp_path, name, *overrides):
    run_dir = tmp_path / name
    proc = run_app("debug=fast", f"hydra.run.dir={run_dir}", *overrides, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(run_dir / "csv" / "metrics.csv") as f:
        columns = set(next(csv.reader(f)))
    return read_records(run_dir / "analysis.jsonl"), columns


@pytest.mark.slow
def test_leaving_the_gib_group_out_removes_exactly_the_gib_keys(tmp_path):
    full, full_columns = _run(tmp_path, "full")
    less, less_columns = _run(tmp_path, "less", "analysis.groups=[identifiability,simplex_etf]")
    gib_columns = {logged_name("gib", k) for k in keys("gib")}
    assert gib_columns and gib_columns <= full_columns
    assert full_columns - less_columns == gib_columns
    assert less_columns <= full_columns
    # the records: as many, at the same epochs, equal but for the gib group
    assert len(full) == len(less) >= 1
    assert [r["epoch"] for r in full] == [r["epoch"] for r in less]
    for a, b in zip(full, less, strict=True):
        assert "gib" in a and "gib" not in b
        assert set(a) - set(b) == {"gib"}
        for name in set(b) - {"seconds", "warnings"}:  # timings and warnings may differ
            assert b[name] == a[name], name
