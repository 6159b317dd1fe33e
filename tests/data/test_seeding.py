"""Seeding across whole runs: every batch of every epoch, and the analysis subset.

The views of a training sample are a function of (member seed, epoch, sample index, view)
only (``ncib/data/base.py``): each batch of an epoch draws new views, each epoch draws new
ones again, and the same (seed, epoch, index) gives the same views wherever the sample falls.
The analysis subset (``analysis.max_samples``) is drawn once: the same rows at every epoch and
for both members.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from ncib.data import DigitsDataModule, EpochBatchSampler
from ncib.data.base import PairedViewDataModule, stratified_subset
from ncib.engine import analysis_rows
from ncib.engine.features import extract_pair_features


class OneImage(PairedViewDataModule):
    """Every training image is the same image: two views are equal only if their draws are."""

    total_classes = 4
    mean, std = (0.5,), (0.25,)

    def __init__(self, seeds, n=48, **kw):
        super().__init__(seeds, **kw)
        self.n = n

    def load(self):
        g = torch.Generator().manual_seed(0)
        x = torch.randint(0, 256, (1, 1, 8, 8), dtype=torch.uint8, generator=g).expand(
            self.n, -1, -1, -1
        )
        y = torch.arange(self.n) % 4
        return {"train": (x.contiguous(), y), "test": (x[:8].contiguous(), y[:8])}

    def setup(self, stage=None):
        super().setup(stage)
        from ncib.data.augment import DigitsAugment

        self.augment = DigitsAugment()


def _epoch(dm, member, epoch):
    """``[(indices (B,), key, views (B, V, C, H, W))]`` of every batch of one epoch."""
    loader = dm.train_dataloader()[member]
    loader.sampler.set_epoch(epoch)
    out = []
    for batch in loader:
        out.append((batch["idx"], int(batch["seed"]), dm.make_views(batch)["views"]))
    return out


def test_every_batch_and_every_epoch_draws_new_views():
    dm = OneImage(seeds=[0, 1], n=48, batch_size=8)
    dm.setup()
    epochs = [_epoch(dm, "m0", e) for e in range(3)]
    assert all(len(batches) == 6 for batches in epochs)
    # the same image everywhere: all 3 epochs × 48 samples × 2 views must differ
    flat = torch.cat([v.flatten(0, 1).flatten(1) for run in epochs for _, _, v in run])
    assert flat.shape[0] == 3 * 48 * 2
    assert len(torch.unique(flat, dim=0)) == len(flat)
    # batch 0 and batch 1 of an epoch are not one draw repeated, nor is epoch 1 epoch 0's
    assert not torch.equal(epochs[0][0][2], epochs[0][1][2])
    assert not torch.equal(epochs[0][0][2], epochs[1][0][2])


def test_the_views_are_a_function_of_seed_epoch_and_index_only():
    dm = DigitsDataModule(seeds=[3, 4], batch_size=32)
    dm.setup()
    for epoch in (0, 2):
        batches = _epoch(dm, "m1", epoch)[:3]
        key = EpochBatchSampler(1, 1, seed=4).augment_key(epoch)
        for idx, k, views in batches:
            assert k == key  # one key per (member seed, epoch), whatever the batch
            # each sample alone, in reverse order, or in another batch: the same views
            alone = dm.make_views({"idx": idx[:1], "seed": key})["views"]
            assert torch.equal(alone[0], views[0])
            flipped = dm.make_views({"idx": idx.flip(0), "seed": key})["views"]
            assert torch.equal(flipped.flip(0), views)
        # and the whole epoch again from a fresh module: bit-identical
        again = DigitsDataModule(seeds=[3, 4], batch_size=32)
        again.setup()
        for (i0, k0, v0), (i1, k1, v1) in zip(batches, _epoch(again, "m1", epoch)[:3], strict=True):
            assert torch.equal(i0, i1) and k0 == k1 and torch.equal(v0, v1)
    # another epoch or member seed: other views of the same samples
    idx = _epoch(dm, "m1", 0)[0][0]
    key0, key1 = (EpochBatchSampler(1, 1, seed=4).augment_key(e) for e in (0, 1))
    other_seed = EpochBatchSampler(1, 1, seed=3).augment_key(0)
    v = {k: dm.make_views({"idx": idx, "seed": k})["views"] for k in (key0, key1, other_seed)}
    assert not torch.equal(v[key0], v[key1]) and not torch.equal(v[key0], v[other_seed])


class _Flatten(nn.Module):
    """A member whose features are its input pixels times a factor (changed between calls)."""

    def __init__(self, factor):
        super().__init__()
        self.factor = nn.Parameter(torch.tensor(float(factor)))

    def forward(self, x):
        return x.flatten(1) * self.factor


class _Pair(nn.Module):
    def __init__(self):
        super().__init__()
        self.members = nn.ModuleList([_Flatten(1.0), _Flatten(2.0)])

    def features(self, x):
        return [m(x) for m in self.members]


@pytest.mark.parametrize("max_samples", [100, 333])
def test_the_analysis_subset_is_fixed_across_epochs_and_shared_by_the_members(max_samples):
    dm = DigitsDataModule(seeds=[0, 1], batch_size=64)
    dm.setup()
    pair = _Pair()
    y = dm.splits["train"][1]
    expected = torch.from_numpy(stratified_subset(y.numpy(), max_samples, 0))
    seen = []
    for epoch in range(3):  # the weights change between analyses, as in training
        with torch.no_grad():
            pair.members[0].factor.add_(epoch)
        torch.manual_seed(epoch)  # whatever the global RNG holds, the subset is the same
        feats = extract_pair_features(pair, dm, torch.device("cpu"), max_samples, progress=False)
        rows = feats.indices["train"]
        assert torch.equal(rows, expected) and len(rows) == max_samples
        assert torch.equal(feats.y_train, y[rows])
        # both members saw exactly these rows: their features are the same pixels, scaled
        pixels = dm.eval_transform(dm.splits["train"][0][rows]).flatten(1)
        f0, f1 = feats.train
        torch.testing.assert_close(f1, 2.0 * pixels, rtol=0, atol=0)
        torch.testing.assert_close(f0, pair.members[0].factor.item() * pixels)
        assert torch.equal(feats.indices["test"], torch.arange(len(dm.splits["test"][1])))
        seen.append(rows)
    assert all(torch.equal(seen[0], r) for r in seen)
    # and the subset keeps the classes' shares (within one sample each)
    share = torch.bincount(y[seen[0]], minlength=10) / max_samples
    assert torch.all((share - torch.bincount(y, minlength=10) / len(y)).abs() <= 1 / max_samples)
    assert torch.equal(analysis_rows(y, None), torch.arange(len(y)))


def _stratified_reference(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Quotas by largest remainder (ties to the lower class id), then, within each class, the
    first samples of the class in the order of one seeded permutation."""
    counts = np.bincount(labels)
    exact = [c * n / len(labels) for c in counts]
    quota = [int(math.floor(e)) for e in exact]
    order = sorted(range(len(counts)), key=lambda c: (-(exact[c] - quota[c]), c))
    for c in order[: n - sum(quota)]:
        quota[c] += 1
    perm = np.random.default_rng(seed).permutation(len(labels))
    taken, chosen = [0] * len(counts), []
    for i in perm:
        if taken[labels[i]] < quota[labels[i]]:
            taken[labels[i]] += 1
            chosen.append(int(i))
    return np.sort(np.asarray(chosen, dtype=np.int64))


@pytest.mark.parametrize("n", [7, 50, 101, 333])
@pytest.mark.parametrize("seed", [0, 3])
def test_stratified_subset_matches_a_slow_reference_with_remainders(n, seed):
    rng = np.random.default_rng(100 + seed)
    labels = rng.choice(6, size=977, p=[0.3, 0.25, 0.2, 0.12, 0.08, 0.05])
    got = stratified_subset(labels, n, seed)
    assert len(got) == n and len(np.unique(got)) == n
    np.testing.assert_array_equal(got, _stratified_reference(labels, n, seed))


@pytest.mark.parametrize("n", [30, 97, 150])
def test_stratified_subset_breaks_ties_by_class_with_many_classes(n):
    """Many classes of few sizes tie in their remainders (CIFAR-100, ImageNet's 1,000): the
    leftover places go to the lowest class ids, and each class keeps its seeded order — numpy's
    default (unstable) sort reorders ties among 17 or more values."""
    labels = np.random.default_rng(1).choice(60, size=420)
    counts = np.bincount(labels)
    exact = counts * (n / len(labels))
    assert len(np.unique(exact - np.floor(exact))) < 30  # ties among the remainders
    got = stratified_subset(labels, n, 1)
    np.testing.assert_array_equal(got, _stratified_reference(labels, n, 1))


def test_the_seed_streams_are_the_documented_derivations():
    """A run's randomness must not change under a refactor: ``mix_seed`` is the first 64-bit
    word of numpy's SeedSequence over the 32-bit parts, halved into 63 bits; epoch e's order is
    ``randperm`` from ``mix_seed(seed, 1, e)`` and its augmentation key ``mix_seed(seed, 2, e)``."""
    from ncib.data.base import mix_seed

    def spec(*parts):
        state = np.random.SeedSequence([p & 0xFFFFFFFF for p in parts]).generate_state(2, np.uint64)
        return int(state[0]) // 2

    for parts in [(0,), (7, 1, 3), (2**40 + 5, 2, 0), (123, 2, 999), (2**31 + 3, 1, 2**33 + 2**29)]:
        assert mix_seed(*parts) == spec(*parts)
    sampler = EpochBatchSampler(20, 5, seed=7)
    sampler.set_epoch(3)
    batches = list(sampler)
    order = torch.randperm(20, generator=torch.Generator().manual_seed(spec(7, 1, 3)))
    assert torch.equal(torch.cat([idx for idx, _ in batches]), order)
    assert {key for _, key in batches} == {spec(7, 2, 3)} == {sampler.augment_key()}
    assert sampler.augment_key(4) == spec(7, 2, 4)


def test_a_batch_larger_than_the_training_set_is_refused_with_the_setting_to_change():
    message = (
        "batch_size=21 is larger than the 20 training samples; choose "
        "dataset.datamodule.batch_size <= the training set size"
    )
    with pytest.raises(ValueError, match=f"^{message}$"):
        EpochBatchSampler(20, 21, seed=0)


def test_make_views_takes_the_evaluation_crops_and_view_count():
    """``augment`` and ``views`` replace the training ones (the linear evaluation's crops); with
    the identity the views are the normalised images, x/255."""
    dm = OneImage((0, 1), views=2)
    dm.setup()
    idx = torch.tensor([3, 5])
    out = dm.make_views({"idx": idx, "seed": 11}, augment=lambda x, rng: x, views=3)
    images, labels = dm.splits["train"]
    expected = (images[idx].float() / 255.0 - 0.5) / 0.25
    assert out["views"].shape == (2, 3, 1, 8, 8) and torch.equal(out["y"], labels[idx])
    for v in range(3):
        torch.testing.assert_close(out["views"][:, v], expected, rtol=0, atol=1e-6)
    assert dm.make_views({"idx": idx, "seed": 11})["views"].shape[1] == 2  # the training ones


class Plain(PairedViewDataModule):
    """The base class's defaults: no augmentation set."""

    total_classes, mean, std = 3, (0.5,), (0.25,)

    def load(self):
        x = torch.arange(6 * 16, dtype=torch.uint8).reshape(6, 1, 4, 4)
        return {"train": (x, torch.arange(6) % 3), "test": (x[:3], torch.arange(3))}


def test_the_base_module_defaults():
    """256 per batch, 1,024 per evaluation batch, no workers, all classes, and without an
    augmentation the views are the normalised images."""
    dm = Plain(seeds=[0, 1])
    assert (dm.batch_size, dm.eval_batch_size, dm.num_workers, dm.views) == (256, 1024, 0, 2)
    assert dm.class_ids is None and dm.num_classes == 3
    dm.setup()
    idx = torch.tensor([4, 1])
    views = dm.make_views({"idx": idx, "seed": 3})["views"]
    expected = (dm.splits["train"][0][idx].float() / 255.0 - 0.5) / 0.25
    for v in range(2):
        torch.testing.assert_close(views[:, v], expected, rtol=0, atol=1e-6)
