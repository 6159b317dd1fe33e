"""Feature extraction shared over ranks gives the features one process extracts from rank 0's
weights: every row once, in order, and with rank 0's BatchNorm running statistics (each DDP rank
updates its own copy with its own last batches; rank 0's are the ones checkpointed)."""

from __future__ import annotations

import copy
import threading

import pytest
import torch
from hydra.utils import instantiate

from ncib.engine.features import extract_pair_features
from tests.conftest import compose_config
from tests.helpers.ranks import ThreadRanks


@pytest.fixture(scope="module")
def pair_and_data(tmp_path_factory):
    cfg = compose_config(
        ["dataset.datamodule.eval_batch_size=100"], output_dir=tmp_path_factory.mktemp("run")
    )
    dm = instantiate(cfg.dataset.datamodule)
    dm.setup("fit")
    pair = instantiate(cfg.model)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in pair.modules())
    return pair, dm


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_extract_what_one_process_does_with_rank_0s_buffers(pair_and_data, world):
    pair, dm = pair_and_data
    one = extract_pair_features(pair, dm, torch.device("cpu"), max_samples=500, progress=False)
    copies = [copy.deepcopy(pair) for _ in range(world)]
    for r, c in enumerate(copies[1:], start=1):  # other ranks' own running statistics
        for m in c.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean += 0.1 * r
                m.running_var *= 1 + 0.5 * r
    ranks, results = ThreadRanks(world), [None] * world

    def work(r):
        results[r] = extract_pair_features(
            copies[r], dm, torch.device("cpu"), 500, ranks.comm(r), progress=False
        )

    threads = [threading.Thread(target=work, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    for got in results:
        assert got is not None
        for split in ("train", "test"):
            a, b = getattr(one, split), getattr(got, split)
            assert len(a) == len(b) == 2
            for fa, fb in zip(a, b, strict=True):
                assert fa.shape == fb.shape
                torch.testing.assert_close(fb, fa, rtol=0, atol=1e-6)
        assert torch.equal(got.y_train, one.y_train) and torch.equal(got.y_test, one.y_test)


def test_ranks_keep_their_training_shard_and_gather_the_test_split(pair_and_data):
    pair, dm = pair_and_data
    one = extract_pair_features(pair, dm, torch.device("cpu"), max_samples=500, progress=False)
    ranks = ThreadRanks(3)
    results = [None] * 3

    def work(r):
        results[r] = extract_pair_features(
            pair, dm, torch.device("cpu"), 500, ranks.comm(r), progress=False, shard_train=True
        )

    threads = [threading.Thread(target=work, args=(r,)) for r in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    for r, got in enumerate(results):
        assert torch.equal(got.train_positions, torch.arange(r, 500, 3))
        assert torch.equal(got.y_train, one.y_train[r::3])
        assert torch.equal(got.indices["train"], one.indices["train"])
        for m in range(2):
            torch.testing.assert_close(got.train[m], one.train[m][r::3], rtol=0, atol=1e-6)
            torch.testing.assert_close(got.test[m], one.test[m], rtol=0, atol=1e-6)
