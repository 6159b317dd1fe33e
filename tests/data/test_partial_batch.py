"""The last partial batch of an epoch is trained on, as the reference SupContrast loader does
(``drop_last=False``), in each member's own order and split evenly across ranks
(:class:`ncib.data.EpochBatchSampler`)."""

from __future__ import annotations

import math

import pytest
import torch

import ncib.data.base as data_base
from ncib.data import DigitsDataModule, EpochBatchSampler


def _epoch(n, batch, seed, epoch, monkeypatch, world=1, drop_last=None):
    """``[[indices of batch b on rank r for r in ranks] for b in batches]`` and each rank's len."""
    per_rank, lengths = [], []
    for rank in range(world):
        monkeypatch.setattr(data_base, "_dist_rank_world", lambda r=rank: (r, world))
        # the default (what the linear evaluation's sampler gets) unless drop_last is given
        kwargs = {} if drop_last is None else {"drop_last": drop_last}
        sampler = EpochBatchSampler(n, batch, seed, **kwargs)
        sampler.set_epoch(epoch)
        per_rank.append([idx for idx, _ in sampler])
        lengths.append(len(sampler))
    assert all(len(batches) == length for batches, length in zip(per_rank, lengths, strict=True))
    return [list(parts) for parts in zip(*per_rank, strict=True)], lengths


def _order(n, seed, epoch):
    """The member's data order of the epoch, as docs/design.md §5 defines it."""
    g = torch.Generator().manual_seed(data_base.mix_seed(seed, data_base._ORDER, epoch))
    return torch.randperm(n, generator=g)


@pytest.mark.parametrize("epoch", [0, 3])
def test_one_device_sees_every_sample_once_in_its_own_order(epoch, monkeypatch):
    batches, (length,) = _epoch(100, 32, seed=7, epoch=epoch, monkeypatch=monkeypatch)
    assert length == 4 and [len(b[0]) for b in batches] == [32, 32, 32, 4]
    assert torch.equal(torch.cat([b[0] for b in batches]), _order(100, 7, epoch))
    dropped, (short,) = _epoch(100, 32, 7, epoch, monkeypatch, drop_last=True)
    assert short == 3 and all(torch.equal(a[0], b[0]) for a, b in zip(dropped, batches[:3]))


@pytest.mark.parametrize(
    "n,batch,world,last",
    [
        (100, 32, 2, 4),  # R = 4: two parts of 2
        (100, 32, 4, 4),  # four parts of 1
        (100, 30, 3, 9),  # R = 10: the first 9, three parts of 3
        (65, 16, 4, 0),  # R = 1 < W: left out
    ],
)
def test_ranks_split_each_global_batch_and_the_partial_one_evenly(
    n, batch, world, last, monkeypatch
):
    one, _ = _epoch(n, batch, seed=5, epoch=1, monkeypatch=monkeypatch)
    many, lengths = _epoch(n, batch, seed=5, epoch=1, monkeypatch=monkeypatch, world=world)
    assert len(set(lengths)) == 1 and lengths[0] == n // batch + (last > 0)
    for b, parts in enumerate(many):
        assert len({len(p) for p in parts}) == 1  # equal parts: the loss's gather needs them
        merged = torch.cat(parts)
        # the global batch of one device, or the first R − (R mod W) samples of its last one
        assert torch.equal(merged, one[b][0][: len(merged)])
    assert len(torch.cat(many[-1])) == (last or batch)


def test_both_members_keep_the_partial_batch_in_their_own_orders():
    dm = DigitsDataModule(seeds=[0, 1], batch_size=256)
    dm.setup()
    n = len(dm.splits["train"][1])
    assert n % 256  # the digits split leaves a partial batch
    loaders = dm.train_dataloader()
    seen = {}
    for name, loader in loaders.items():
        assert len(loader) == math.ceil(n / 256)
        seen[name] = torch.cat([batch["idx"] for batch in loader])
        assert sorted(seen[name].tolist()) == list(range(n))
    assert not torch.equal(seen["m0"], seen["m1"])
    dropped = DigitsDataModule(seeds=[0, 1], batch_size=256, drop_last=True)
    dropped.setup()
    assert len(dropped.train_dataloader()["m0"]) == n // 256
