"""Schedule, records and the feature gathering behind the analysis callbacks."""

import json
import os

import pytest
import torch

from ncib.engine.features import analysis_rows, reassemble
from ncib.engine.plan import AnalysisSchedule
from ncib.rundir.records import append_record, read_records, to_jsonable


def test_schedule_explicit_list_and_every_n():
    s = AnalysisSchedule(epochs=[5, 1, 5, 10])
    assert s.planned(12) == [1, 5, 10]
    assert AnalysisSchedule(epochs=[3], at_init=True).planned(5) == [3]  # a list is exact
    assert AnalysisSchedule(epochs=[0, 3]).planned(5) == [0, 3]
    every = AnalysisSchedule(every_n_epochs=4, at_init=True)
    assert every.planned(10) == [0, 4, 8, 10]  # the last epoch is always analysed
    assert AnalysisSchedule(every_n_epochs=5).planned(10) == [5, 10]


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({}, "analysis.epochs"),
        ({"every_n_epochs": 0}, "every_n_epochs=0 cannot be used"),
        ({"epochs": [-1, 2]}, r"\[0, trainer.max_epochs\]"),
    ],
)
def test_schedule_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AnalysisSchedule(**kwargs)


def test_records_append_in_order_and_never_leave_partial_lines(tmp_path, monkeypatch):
    path = tmp_path / "analysis.jsonl"
    append_record(path, {"epoch": 1, "rho": torch.tensor([0.9, 0.5]), "x": float("nan")})
    append_record(path, {"epoch": 2, "scalar": torch.tensor(3.5, dtype=torch.float64)})
    records = read_records(path)
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[0]["rho"] == pytest.approx([0.9, 0.5]) and records[0]["x"] is None
    assert records[1]["scalar"] == 3.5

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        append_record(path, {"epoch": 3})
    assert [r["epoch"] for r in read_records(path)] == [1, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["analysis.jsonl"]  # no temporary left over
    for line in path.read_text().splitlines():
        json.loads(line)


def test_to_jsonable_handles_nested_tensors():
    out = to_jsonable({"a": (torch.arange(3), {"b": torch.tensor(float("inf"))})})
    assert out == {"a": [[0, 1, 2], {"b": None}]}


def test_missing_records_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no analysis records"):
        read_records(tmp_path / "analysis.jsonl")


@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("n", [7, 10, 12])
def test_reassemble_puts_every_row_back_exactly_once(world, n):
    data = torch.arange(n * 2, dtype=torch.float32).view(n, 2)
    rows = torch.arange(n)
    counts = [len(rows[r::world]) for r in range(world)]
    longest = max(counts)
    # what an all-gather of padded shards returns: (world, longest, d), padding rows garbage
    gathered = torch.full((world, longest, 2), -1.0)
    for r in range(world):
        gathered[r, : counts[r]] = data[rows[r::world]]
    out = reassemble(gathered, n)
    torch.testing.assert_close(out, data)


def test_stratified_subset_keeps_class_proportions_and_is_fixed():
    labels = torch.arange(10).repeat_interleave(
        torch.tensor([100, 50, 50, 100, 100, 100, 100, 100, 100, 200])
    )
    sub = analysis_rows(labels, 100)
    counts = labels[sub].bincount(minlength=10)
    assert counts.tolist() == [10, 5, 5, 10, 10, 10, 10, 10, 10, 20]
    assert torch.equal(sub, analysis_rows(labels, 100)) and torch.equal(sub, sub.sort().values)
    assert torch.equal(analysis_rows(labels, None), torch.arange(len(labels)))
    with pytest.raises(ValueError, match="max_samples"):
        analysis_rows(labels, 0)
