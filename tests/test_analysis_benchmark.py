"""The analysis benchmark's distributed mode (experiments/benchmarks/analysis.py --world): each
rank generates exactly its rows of the one synthetic split, and the mode runs R gloo processes
and prints every R beside the first (the output format and the agreement, never the speed)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO_ROOT
from tests.helpers import load_script

SCRIPT = REPO_ROOT / "experiments" / "benchmarks" / "analysis.py"


@pytest.fixture(scope="module")
def bench():
    return load_script(SCRIPT, "analysis_benchmark")


@pytest.mark.parametrize("balanced", [False, True])
def test_each_rank_generates_its_rows_of_the_same_split(bench, balanced):
    n, n_test, world = 20_003, 701, 3  # two chunks of generation, N not a multiple of R
    whole = bench.synthetic_pair(n, n_test, 24, 5, seed=4, balanced=balanced)
    (z0, z1), (t0, t1), y, y_test = whole
    for rank in range(world):
        (a0, a1), (b0, b1), ya, yb = bench.synthetic_pair(
            n, n_test, 24, 5, seed=4, rank=rank, world=world, balanced=balanced
        )
        assert torch.equal(a0, z0[rank::world]) and torch.equal(a1, z1[rank::world])
        assert torch.equal(ya, y[rank::world])
        assert torch.equal(b0, t0[rank::world]) and torch.equal(b1, t1[rank::world])
        assert torch.equal(yb, y_test[rank::world])


def test_balanced_splits_draw_their_classes_evenly(bench):
    _, _, y, y_test = bench.synthetic_pair(10_000, 1_000, 24, 10, seed=0, balanced=True)
    for labels, n in ((y, 10_000), (y_test, 1_000)):
        counts = torch.bincount(labels, minlength=10)
        assert (counts - n // 10).abs().max() <= 0.03 * n  # even but for the 3 % flipped labels


@pytest.mark.slow  # three processes import torch and analyse a small split (about 30 s)
def test_world_mode_prints_every_rank_and_the_summary_beside_one_process():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    cmd = [sys.executable, str(SCRIPT), "--world", "1,2", "--n-train", "1201", "--n-test", "300"]
    cmd += ["--dim", "24", "--classes", "5", "--threads", "1"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    assert "-- R = 2: rank 0's stages --" in text
    assert len(re.findall(r"rank [01]: analysis .* ru_maxrss .* modelled", text)) == 3
    rows = re.findall(
        r"^\s+([12])\s+([\d.]+)\s+([\d.]+)\s+.*?\s([\d.]+e[+-]\d+)(?:\s+\(\S+\))?$", text, re.M
    )
    assert [r[0] for r in rows] == ["1", "2"]
    assert float(rows[0][3]) == 0.0 and float(rows[1][3]) < 1e-5  # the same numbers


def test_the_split_does_not_depend_on_the_thread_count_that_draws_it(bench):
    """R = 1 runs on more threads than each of R ranks: the features must still be the same
    numbers (float32 products differ in their last bits with the thread count, and the noise-
    bulk directions turn that into 1e-3 differences of the null threshold)."""
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        (z0, z1), (t0, t1), *_ = bench.synthetic_pair(3_000, 500, 384, 10, seed=1)
        torch.set_num_threads(1)
        for rank in range(2):
            (a0, a1), (b0, b1), *_ = bench.synthetic_pair(
                3_000, 500, 384, 10, seed=1, rank=rank, world=2
            )
            assert torch.equal(a1, z1[rank::2]) and torch.equal(b1, t1[rank::2])
            assert torch.equal(a0, z0[rank::2]) and torch.equal(b0, t0[rank::2])
    finally:
        torch.set_num_threads(threads)
