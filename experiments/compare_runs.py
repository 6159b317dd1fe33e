"""Whether two finished runs trained the same: their final weights bit for bit, every logged
training loss, and their analysis records but for the timings.

A change that must not alter training (a refactor of the models, the data or the loop) is
checked by training the same command before and after it, on the same machine, and comparing:

    git worktree add /tmp/before <commit before>; cd /tmp/before
    PYTHONPATH=. python -m ncib.run hydra.run.dir=/tmp/run-before
    cd -; python -m ncib.run hydra.run.dir=/tmp/run-after
    python experiments/compare_runs.py /tmp/run-before /tmp/run-after

Exits 1 when anything differs. Reads checkpoints with ``weights_only=True`` only.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import torch

TIMINGS = {"seconds"}  # record fields that measure time, not the analysis


def weights(run: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    return ckpt["state_dict"]


def training_losses(run: Path) -> list[tuple[str, str, str]]:
    rows = list(csv.DictReader(open(next(run.rglob("metrics.csv")))))
    return [(r["epoch"], k, r[k]) for r in rows for k in r if k.startswith("train/loss/") and r[k]]


def records(run: Path) -> list[dict]:
    lines = (run / "analysis.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in TIMINGS} for line in lines]


def main(a: Path, b: Path) -> int:
    wa, wb = weights(a), weights(b)
    differing = sorted(set(wa) ^ set(wb)) + [
        k for k in wa if k in wb and not torch.equal(wa[k], wb[k])
    ]
    numbers = sum(v.numel() for v in wa.values())
    print(
        f"final weights: {len(wa)} tensors, {numbers} numbers; differing tensors: {len(differing)}"
    )
    la, lb = training_losses(a), training_losses(b)
    print(f"training losses: {len(la)} logged; identical: {la == lb}")
    ra, rb = records(a), records(b)
    print(f"analysis records: {len(ra)} epochs; identical but for timings: {ra == rb}")
    return 0 if not differing and la == lb and ra == rb else 1


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
