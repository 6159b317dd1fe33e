"""The training benchmark: its reference-style pieces, and that its CPU mode runs and reports
both paths (the output format, never the speed)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from ncib.losses import supcon_loss
from tests.conftest import REPO_ROOT
from tests.helpers import load_script

SCRIPT = REPO_ROOT / "experiments" / "benchmarks" / "training.py"


@pytest.fixture(scope="module")
def bench():
    return load_script(SCRIPT, "training_benchmark")


@pytest.mark.parametrize("views", [2, 3])
def test_reference_loss_is_tau_over_base_tau_times_supcon(bench, views):
    g = torch.Generator().manual_seed(0)
    features = F.normalize(torch.randn(12, views, 5, generator=g, dtype=torch.float64), dim=-1)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 3, 3, 0, 4, 5, 6])  # singletons too
    loss = bench.ReferenceSupConLoss(temperature=0.2, base_temperature=0.07)(features, labels)
    torch.testing.assert_close(loss, supcon_loss(features, labels, 0.2) * (0.2 / 0.07))


def test_round_plan(bench):
    assert bench.round_plan(7, 3, settle=2, warmup=1) == [(3, 3), (2, 3), (2, 1)]
    assert bench.round_plan(3, 3, settle=0, warmup=2) == [(2, 3)]


def test_member_orders_are_per_member_permutations(bench):
    batches = iter(bench.MemberOrders(10, 3, seeds=[0, 1]))
    epoch = [next(batches) for _ in range(3)]  # 10 // 3 batches, the last partial one dropped
    firsts, seconds = ([i for batch in epoch for i in (pair[m] for pair in batch)] for m in (0, 1))
    assert len(set(firsts)) == len(firsts) == 9 and len(set(seconds)) == 9
    assert firsts != seconds
    assert [pair[0] for pair in next(batches)] != firsts[:3]  # a fresh order next epoch


def test_cpu_mode_prints_both_throughputs_and_their_ratio(tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    cmd = [
        sys.executable,
        str(SCRIPT),
        "--device",
        "cpu",
        "--backbone",
        "convnet",
        "--convnet-width",
        "4",
        "--batch-size",
        "4",
        "--steps",
        "2",
        "--round-steps",
        "1",
        "--warmup",
        "0",
        "--settle",
        "0",
        "--workers",
        "1",
        "--train-size",
        "64",
        "--reference",
    ]
    out = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    ncib = re.search(r"^throughput ncib\s+([\d.]+) view-images/s", text, re.M)
    ref = re.search(r"^throughput reference\s+([\d.]+) view-images/s", text, re.M)
    ratio = re.search(r"^ratio ncib/reference (\d+\.\d+)$", text, re.M)
    assert ncib and ref and ratio, text
    assert float(ratio.group(1)) == pytest.approx(
        float(ncib.group(1)) / float(ref.group(1)), rel=0.02
    )
    assert "2 round(s)" in text
    assert len(re.findall(r"^  data wait\s+[\d.]+ ms \([\d.]+%\)", text, re.M)) == 2, text


class _StubReference:
    def __init__(self, rounds):
        self.rounds, self.calls = rounds, []

    def run(self, steps):
        self.calls.append((len(self.rounds.ncib.model), steps))


class _StubData:
    augment_s = 0.0


def test_rounds_alternate_ncib_then_reference(bench):
    plan = bench.round_plan(4, 2, settle=1, warmup=1)  # [(2, 2), (1, 2)]
    rounds = bench.Rounds(torch.device("cpu"), _StubData(), plan, reference=None)
    rounds.reference = _StubReference(rounds)
    batch = {"m0": {"views": None}}
    rounds.on_train_epoch_start(None, None)
    for i in range(7):
        rounds.on_train_batch_start(None, None, batch, i)
        rounds.on_train_batch_end(None, None, None, batch, i)
    # the reference runs its round (untimed + timed steps) right after each of ncib's rounds
    assert rounds.reference.calls == [(4, 4), (7, 3)]
    assert rounds.ncib.timed == [False, False, True, True, False, True, True]
