"""The sharded analysis over real gloo processes (torch.distributed, as under DDP) gives the
numbers of one process: the synthetic split of ``tests/analysis/test_shards.py`` and the
digits epoch analysis of ``tests/engine/test_sharded_epoch.py`` (both splits sharded), for
R = 2 and 3 (slow: each
process imports torch and composes the config)."""

from __future__ import annotations

import json

import pytest
import torch
import torch.multiprocessing as mp

from ncib.analysis.shards import Shard, TorchDistributed, strided_rows
from tests.analysis.test_shards import N_TEST, N, analysis, assert_same_record, every_metric
from tests.engine.test_sharded_epoch import analysed, relative, scalars
from tests.helpers.ranks import free_port, gloo_init

pytestmark = pytest.mark.slow


def _synthetic(rank, world, port, out):
    gloo_init(rank, world, port)
    comm = TorchDistributed()
    shard = Shard(comm, strided_rows(N, rank, world), N)
    test_shard = Shard(comm, strided_rows(N_TEST, rank, world), N_TEST)
    with open(f"{out}.{rank}", "w") as f:
        json.dump(every_metric(analysis(shard, test_shard)), f)


@pytest.mark.parametrize("world", [2, 3])
def test_gloo_processes_give_every_metric_of_one_process(tmp_path, world):
    want = every_metric(analysis())
    mp.spawn(_synthetic, args=(world, free_port(), str(tmp_path / "out")), nprocs=world)
    for r in range(world):
        assert_same_record(json.loads((tmp_path / f"out.{r}").read_text()), want)


def _digits(rank, world, port, run_dir):
    from hydra.utils import instantiate

    from ncib.engine import AnalysisSettings, PairEpochAnalysis
    from ncib.engine.features import TorchCollective
    from ncib.metrics.outputs import DEFAULT_GROUPS
    from tests.conftest import compose_config

    gloo_init(rank, world, port)
    cfg = compose_config([], output_dir=run_dir)
    dm = instantiate(cfg.dataset.datamodule)
    pair = instantiate(cfg.model).eval()
    engine = PairEpochAnalysis(run_dir, AnalysisSettings(), collective=TorchCollective())
    engine.run(pair, dm, 0, 0, DEFAULT_GROUPS, device="cpu")


@pytest.mark.parametrize("world", [2, 3])
def test_gloo_processes_analyse_digits_as_one_process(tmp_path, world):
    from hydra.utils import instantiate

    from ncib.engine import AnalysisSettings, PairEpochAnalysis
    from ncib.engine.features import extract_pair_features
    from ncib.metrics.outputs import DEFAULT_GROUPS
    from ncib.rundir.records import read_records
    from tests.conftest import compose_config

    cfg = compose_config([], output_dir=tmp_path / "one")
    dm = instantiate(cfg.dataset.datamodule)
    pair = instantiate(cfg.model).eval()
    settings = AnalysisSettings()
    one = PairEpochAnalysis(tmp_path / "one", settings).run(
        pair, dm, 0, 0, DEFAULT_GROUPS, device="cpu"
    )
    exact = analysed(extract_pair_features(pair, dm, torch.device("cpu")), settings, torch.float64)
    mp.spawn(_digits, args=(world, free_port(), str(tmp_path / "many")), nprocs=world)
    (record,) = read_records(tmp_path / "many" / "analysis.jsonl")
    assert record["num_train"] == one["num_train"] == 1437
    want, got = scalars(one), scalars(record)
    assert got.keys() == want.keys()
    differ = [
        (k, want[k], got[k], exact[k])
        for k in want
        if want[k] is not None
        and relative(got[k], want[k]) > 1e-6
        and relative(got[k], exact[k]) > 1e-6 + 4 * relative(want[k], exact[k])
    ]
    assert not differ, differ[:10]
