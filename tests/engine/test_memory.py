"""The analysis's memory per rank (ncib/engine/memory.py) and the check before training
(ncib.callbacks.AnalysisMemoryCheck, added by ncib.run)."""

from __future__ import annotations

import math
import re

import pytest

from ncib.callbacks import AnalysisMemoryCheck, PairAnalysisCallback
from ncib.data import DigitsDataModule
from ncib.engine import budget, memory
from ncib.engine.memory import (
    GIB,
    MemoryBudget,
    analysis_bytes_per_rank,
    analysis_memory,
    check_analysis_memory,
)
from tests.helpers.builders import quiet_trainer, tiny_pair

IMAGENET32 = {"n_train": 1_281_167, "n_test": 50_000, "d": 2048, "k": 1000}


@pytest.mark.parametrize("precision", ["float32", "float64"])
@pytest.mark.parametrize("world,side", [(1, None), (1, 1), (2, None), (3, None), (8, None)])
def test_a_rank_holds_its_shards_and_d2_statistics(world, side, precision):
    n_train, n_test, d, k = IMAGENET32.values()
    parts = analysis_memory(
        n_train, n_test, d, k, world, folds=20, side_by_side=side, precision=precision
    ).parts
    w = {"float32": 4, "float64": 8}[precision]  # the working dtype's bytes
    n = math.ceil(n_train / world)  # the largest shard of each split
    n_t = math.ceil(n_test / world)
    members = side or (2 if world == 1 else 1)  # an unsharded CPU process: both at once
    assert parts["train features"] == 2 * n * d * w
    assert parts["train normal scores"] == 2 * n * d * w
    assert parts["T_K of the shard"] == 2 * n * k * w
    assert parts["probe"] == members * (n * d * w + 2 * n * k * w)
    assert parts["probe state"] == members * 90 * d * k * 8  # not sharded: d × K, float64
    assert parts["test split"] == 2 * n_t * (2 * d + k) * w  # sharded like the training split
    assert parts["test variates"] == 4 * n_t * d * 8  # raw and normal scores
    assert parts["d x d statistics"] == 30 * d * d * 8
    assert parts["per-fold grams"] == 6 * 20 * d * d * w
    assert parts["per-fold class sums"] == 4 * 20 * k * d * 8  # float64, K = k here
    assert parts["bootstrap weights"] == 200 * n_test * 16  # the whole test split, every world
    cols = math.ceil(d / world)
    block = members * ((n_train + n_test) * cols * w + 16 * w * (n_train + n_test))
    if world > 1:  # column blocks of both splits received and concatenated, blocks sent back
        block += (2 * (n_train + n_test) * cols + 2 * (n + n_t) * d) * w
    assert parts["normal-score pass"] == block
    sharded = world > 1  # one rank's test variates and permutation indices; one refit's directions
    assert parts["null threshold"] == (n_t * d * 8 + 3 * 200 * n_t * 8 if sharded else 0)
    assert parts["refit directions"] == (2 * d * d * 8 if sharded else 0)
    named = sum(v for name, v in parts.items() if name != "workspace")
    assert parts["workspace"] == int(0.1 * named)


def test_without_intervals_no_part_of_them_is_held():
    parts = analysis_memory(**IMAGENET32, world=4, folds=None).parts
    assert all(
        parts[p] == 0
        for p in (
            "per-fold grams",
            "per-fold class sums",
            "bootstrap weights",
            "null threshold",
            "refit directions",
        )
    )
    assert parts["d x d statistics"] == 19 * 2048 * 2048 * 8  # no refit's blocks
    # the intervals' resamples count as set (analysis.intervals.bootstrap, .permutations)
    more = analysis_memory(**IMAGENET32, world=4, bootstrap=1000, permutations=50).parts
    assert more["bootstrap weights"] == 1000 * 50_000 * 16
    assert more["null threshold"] == 12_500 * 2048 * 8 + 3 * 50 * 12_500 * 8


def test_float64_doubles_what_is_held_in_the_working_dtype_and_nothing_else():
    single = analysis_memory(**IMAGENET32, world=4).parts
    double = analysis_memory(**IMAGENET32, world=4, precision="float64").parts
    working = {
        "train features",
        "train normal scores",
        "T_K of the shard",
        "normal-score pass",
        "test split",
        "probe",
        "per-fold grams",
    }
    for name in single:
        if name == "workspace":
            continue
        factor = 2 if name in working else 1
        assert double[name] == factor * single[name], name
    for bad in ("float16", "double", None):
        with pytest.raises(
            ValueError, match=f"precision must be 'float32' or 'float64'; got {bad!r}"
        ):
            analysis_memory(**IMAGENET32, precision=bad)


def test_more_ranks_need_less_per_rank_down_to_the_unsharded_part():
    per_rank = [analysis_bytes_per_rank(**IMAGENET32, world=r) for r in (2, 4, 8, 64)]
    assert per_rank == sorted(per_rank, reverse=True)
    fixed = analysis_memory(**IMAGENET32, world=64).parts
    unsharded = (
        "d x d statistics",
        "per-fold grams",
        "per-fold class sums",
        "probe state",
        "bootstrap weights",
        "refit directions",
    )
    floor = sum(fixed[p] for p in unsharded)
    assert 1.1 * floor < per_rank[-1] < 1.1 * floor + 4 * GIB  # + the 10 % workspace
    no_intervals = analysis_bytes_per_rank(**IMAGENET32, world=8, folds=None)
    d, n_t = 2048, math.ceil(50_000 / 8)
    intervals = (
        6 * 20 * d**2 * 4 + 200 * 50_000 * 16 + n_t * d * 8 + 3 * 200 * n_t * 8 + 2 * d**2 * 8
    )
    intervals += 4 * 20 * 1000 * d * 8 + 11 * d**2 * 8  # fold class sums; one refit's blocks
    assert abs(per_rank[2] - no_intervals - 1.1 * intervals) <= 1


def test_on_a_gpu_the_model_covers_the_measured_peak():
    # one H200, `experiments/benchmarks/analysis.py --device cuda --world 1 --balanced
    # --classes 1000 --n-train 100000 --n-test 50000`: torch.cuda.max_memory_allocated 18.13 GiB
    shape = dict(n_train=100_000, n_test=50_000, d=2048, k=1000, folds=20, side_by_side=1)
    host = analysis_memory(**shape)
    gpu = analysis_memory(**shape, cuda=True)
    assert 18.13 <= gpu.total / GIB < 1.15 * 18.13
    assert gpu.parts["CUDA overhead"] == int(0.10 * host.total)
    assert "CUDA overhead" not in host.parts


def test_the_check_passes_what_fits_and_names_what_to_set_otherwise():
    shape = dict(n_train=1_281_167, n_test=50_000, d=2048, k=1000, folds=20, least=5000)
    a100 = MemoryBudget(80 * GIB, "80.0 GiB of GPU memory on cuda:0")  # an A100
    assert check_analysis_memory(**shape, world=8, budget=a100).total < 0.9 * a100.bytes
    with pytest.raises(MemoryError) as err:
        check_analysis_memory(**shape, world=1, budget=a100)
    msg = str(err.value)
    need = analysis_bytes_per_rank(1_281_167, 50_000, 2048, 1000, 1, 20)
    assert f"{need / GIB:.1f} GiB per rank" in msg and "80.0 GiB of GPU memory on cuda:0" in msg
    largest = int(msg.split("analysis.max_samples=")[1].split()[0])
    allowed = int(0.9 * a100.bytes)
    assert analysis_bytes_per_rank(largest, 50_000, 2048, 1000, 1, 20) <= allowed
    assert analysis_bytes_per_rank(largest + 1, 50_000, 2048, 1000, 1, 20) > allowed
    ranks = int(msg.split("run on ")[1].split()[0])
    assert analysis_bytes_per_rank(1_281_167, 50_000, 2048, 1000, ranks, 20) <= allowed
    assert analysis_bytes_per_rank(1_281_167, 50_000, 2048, 1000, ranks - 1, 20) > allowed
    # max_samples counts: the subset that fits passes
    check_analysis_memory(**shape, world=1, budget=a100, max_samples=largest)


def test_a_float64_analysis_that_does_not_fit_is_told_float32_where_that_fits():
    shape = dict(n_train=1_281_167, n_test=50_000, d=2048, k=1000, folds=20, least=5000)
    single = analysis_bytes_per_rank(1_281_167, 50_000, 2048, 1000, 8, 20)
    double = analysis_bytes_per_rank(1_281_167, 50_000, 2048, 1000, 8, 20, precision="float64")
    assert 1.8 * single < double < 2 * single  # the float64 parts stay as they are
    budget = MemoryBudget(int((single + double) / 2 / 0.9), "the budget")
    assert check_analysis_memory(**shape, world=8, budget=budget).total == single
    with pytest.raises(MemoryError) as err:
        check_analysis_memory(**shape, world=8, budget=budget, precision="float64")
    msg = str(err.value)
    assert f"{double / GIB:.1f} GiB per rank" in msg and "k=1000, float64;" in msg
    assert "analysis.precision=float32 (half the feature memory)" in msg
    # the subset and the ranks it suggests are those that fit in float64
    largest = int(msg.split("analysis.max_samples=")[1].split()[0])
    allowed = int(0.9 * budget.bytes)
    wide = dict(world=8, folds=20, precision="float64")
    assert analysis_bytes_per_rank(largest, 50_000, 2048, 1000, **wide) <= allowed
    assert analysis_bytes_per_rank(largest + 1, 50_000, 2048, 1000, **wide) > allowed
    ranks = int(msg.split("run on ")[1].split()[0])
    wide["world"] = ranks
    assert analysis_bytes_per_rank(1_281_167, 50_000, 2048, 1000, **wide) <= allowed
    wide["world"] = ranks - 1
    assert analysis_bytes_per_rank(1_281_167, 50_000, 2048, 1000, **wide) > allowed


def test_the_planned_check_counts_the_settings_precision(monkeypatch):
    from ncib.engine.settings import AnalysisSettings

    monkeypatch.setattr(budget, "_meminfo_available", lambda: 2**50)  # all fits
    splits = {"train": (None, range(10_000)), "test": (None, range(2_000))}

    def need(**settings):
        return memory.check_planned_analysis(
            AnalysisSettings(**settings), splits, 10, 128, "cpu", world=2
        ).parts

    single, double = need(), need(precision="float64")
    assert double["train features"] == 2 * single["train features"] == 2 * 5_000 * 128 * 8
    assert double["test split"] == 2 * single["test split"] == 2 * 1_000 * (256 + 10) * 8


def test_host_memory_is_shared_by_the_ranks_of_the_host(monkeypatch):
    monkeypatch.setattr(budget, "_meminfo_available", lambda: 24 * GIB)
    assert budget.available_memory("cpu").bytes == 24 * GIB
    four = budget.available_memory("cpu", ranks_on_host=4)
    assert four.bytes == 6 * GIB and "shared by 4 ranks" in four.what


def _fit(tmp_path, callbacks):
    steps = []
    model = tiny_pair()
    model.on_train_batch_start = lambda *a: steps.append(1)
    trainer = quiet_trainer(
        max_epochs=1, limit_train_batches=2, callbacks=callbacks, default_root_dir=str(tmp_path)
    )
    trainer.fit(model, datamodule=DigitsDataModule(seeds=[0, 1], batch_size=128))
    return steps


def test_the_run_is_refused_before_its_first_step_when_the_analysis_does_not_fit(
    tmp_path, monkeypatch
):
    plan = {"epochs": [1], "progress": False, "checkpoints": False}
    budget = int(analysis_bytes_per_rank(700, 360, 32, 10, 1, 20) / 0.9) + 1  # digits: N = 1437
    monkeypatch.setattr(
        memory, "available_memory", lambda *a, **kw: MemoryBudget(budget, "the budget")
    )
    steps = []
    with pytest.raises(MemoryError, match=r"per rank .*the budget allows.*max_samples=700 "):
        steps = _fit(tmp_path, [PairAnalysisCallback(plan), AnalysisMemoryCheck()])
    assert steps == []
    # without the analysis there is nothing to check
    assert _fit(tmp_path, [AnalysisMemoryCheck()])


def test_ncib_run_refuses_an_analysis_that_does_not_fit_before_training(tmp_path):
    from tests.helpers.app import ncib

    out = ncib(  # 10^8 folds: 6 · 10^8 float32 Grams of 128 × 128, on no machine
        "ncib.run",
        "analysis.intervals.folds=100000000",
        "logger=csv",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
        timeout=300,
    )
    assert out.returncode != 0
    assert re.search(r"MemoryError: the analysis would need [\d.]+ GiB per rank", out.output)
    assert "set fewer analysis.intervals.folds" in out.output
    assert "Epoch 0" not in out.output and not list((tmp_path / "run").rglob("*.ckpt"))


def test_the_suggested_subset_is_one_the_config_accepts():
    from ncib.config import MIN_SAMPLES_PER_CLASS

    assert memory.MIN_SAMPLES_PER_CLASS == MIN_SAMPLES_PER_CLASS


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_the_check_reads_the_runs_shape_and_the_memory_of_its_device(monkeypatch, device):
    from types import SimpleNamespace

    import torch

    seen = {}
    monkeypatch.setattr(  # what the callback's check (ncib.engine.memory) reads
        memory,
        "available_memory",
        lambda dev, ranks_on_host: seen.update(host=ranks_on_host) or MemoryBudget(GIB, "1 GiB"),
    )
    monkeypatch.setattr(
        memory,
        "check_analysis_memory",
        lambda **kw: seen.update(kw) or analysis_memory(10, 10, 4, 2),
    )
    plan = {
        "epochs": [1],
        "k": 3,
        "max_samples": 700,
        "precision": "float64",
        "intervals": {"folds": 7, "bootstrap": 300, "permutations": 100},
    }
    images = torch.zeros(1000, 3, 8, 8, dtype=torch.uint8)
    dm = SimpleNamespace(
        splits={"train": (images, torch.zeros(1000)), "test": (None, torch.zeros(300))},
        num_classes=10,
    )
    trainer = SimpleNamespace(
        callbacks=[PairAnalysisCallback(plan)],
        datamodule=dm,
        strategy=SimpleNamespace(root_device=torch.device(device)),
        world_size=4,
        num_devices=2,
    )
    AnalysisMemoryCheck().setup(trainer, tiny_pair(feature_dim=48), "fit")
    assert (seen["n_train"], seen["n_test"], seen["d"], seen["k"], seen["classes"]) == (
        1000,
        300,
        48,
        3,
        10,
    )
    assert (seen["world"], seen["folds"], seen["max_samples"], seen["least"]) == (4, 7, 700, 50)
    assert (seen["precision"], seen["bootstrap"], seen["permutations"]) == ("float64", 300, 100)
    if device == "cpu":  # the host's memory is shared by this node's 2 ranks
        assert seen["host"] == 2 and seen["budget"].bytes == GIB
        assert seen["side_by_side"] is None  # the model's default: both members in one process
        assert seen["cuda"] is False
    else:  # a GPU each, less the training images it holds; one member at a time
        assert seen["host"] == 1 and seen["budget"].bytes == GIB - 1000 * 3 * 64
        assert seen["side_by_side"] == 1
        assert seen["cuda"] is True  # the measured CUDA overhead counts


def test_the_model_counts_every_d_by_d_block_and_variate_the_analysis_keeps():
    """The float64 d × d blocks and test variates a finished analysis keeps are within the
    model's (the blocks of one refit at a time come on top: memory.DD_REFIT)."""
    import torch

    from ncib.analysis import PairAnalysis
    from ncib.metrics.outputs import DEFAULT_GROUPS, group_outputs
    from tests.analysis.test_shards import tensors

    n, n_t, d, k = 600, 300, 24, 5
    g = torch.Generator().manual_seed(0)
    y, y_t = torch.arange(n) % k, torch.arange(n_t) % k
    means = 3 * torch.randn(k, d, generator=g)
    shared = torch.randn(n + n_t, d, generator=g)
    labels = torch.cat([y, y_t])
    z = [means[labels] + shared + torch.randn(n + n_t, d, generator=g) for _ in range(2)]
    pa = PairAnalysis([m[:n] for m in z], [m[n:] for m in z], y, y_t, k)
    for group in DEFAULT_GROUPS:
        group_outputs(pa, group)
    held = {t.untyped_storage().data_ptr(): t for t in tensors(pa._cache)}.values()
    blocks = [t for t in held if t.dtype == torch.float64 and tuple(t.shape) == (d, d)]
    variates = [t for t in held if t.dtype == torch.float64 and tuple(t.shape) == (n_t, d)]
    assert 0 < len(blocks) <= memory.DD_KEPT == memory.DD_BLOCKS - memory.DD_REFIT
    model = analysis_memory(n, n_t, d, k).parts
    assert sum(t.numel() * 8 for t in variates) <= model["test variates"]
