import pytest
import torch

from ncib.data import DigitsDataModule, EpochBatchSampler
from ncib.data import base as data_base


@pytest.fixture
def digits():
    dm = DigitsDataModule(seeds=[0, 1], batch_size=64)
    dm.setup()
    return dm


def test_digits_split_is_stratified_and_independent_of_member_seeds(digits):
    x_tr, y_tr = digits.splits["train"]
    x_te, y_te = digits.splits["test"]
    assert x_tr.dtype == torch.uint8 and x_tr.shape[1:] == (1, 8, 8)
    assert len(y_tr) + len(y_te) == 1797
    frac = y_te.bincount() / (y_tr.bincount() + y_te.bincount())
    assert torch.all((frac - 0.2).abs() < 0.02)
    other = DigitsDataModule(seeds=[7, 9], batch_size=64)
    other.setup()
    assert torch.equal(other.splits["test"][0], x_te)
    moved = DigitsDataModule(seeds=[0, 1], batch_size=64, split_seed=1)
    moved.setup()
    assert not torch.equal(moved.splits["test"][0], x_te)


def _first_batch(dm, member):
    return next(iter(dm.train_dataloader()[member]))


def test_each_member_draws_its_own_order(digits):
    b0, b1 = _first_batch(digits, "m0"), _first_batch(digits, "m1")
    assert not torch.equal(b0["idx"], b1["idx"]) and int(b0["seed"]) != int(b1["seed"])
    alone = DigitsDataModule(seeds=[0], batch_size=64)
    alone.setup()
    a0 = _first_batch(alone, "m0")
    assert torch.equal(a0["idx"], b0["idx"]) and int(a0["seed"]) == int(b0["seed"])


def test_sampler_epochs_are_permutations_and_differ():
    s = EpochBatchSampler(100, 10, seed=3)
    first = torch.cat([idx for idx, _ in s])
    assert sorted(first.tolist()) == list(range(100))
    s.set_epoch(1)
    second = torch.cat([idx for idx, _ in s])
    assert not torch.equal(first, second)
    s.set_epoch(0)
    assert torch.equal(torch.cat([idx for idx, _ in s]), first)


def test_global_batch_is_split_across_ranks(monkeypatch):
    single = [(idx, seed) for idx, seed in EpochBatchSampler(64, 16, seed=5)]
    shards = []
    for rank in range(4):
        monkeypatch.setattr(data_base, "_dist_rank_world", lambda r=rank: (r, 4))
        shards.append(list(EpochBatchSampler(64, 16, seed=5)))
    for b, (idx, key) in enumerate(single):
        assert torch.equal(torch.cat([shards[r][b][0] for r in range(4)]), idx)
        assert all(shards[r][b][1] == key for r in range(4))  # the views' key is not the rank's
    monkeypatch.setattr(data_base, "_dist_rank_world", lambda: (0, 3))
    with pytest.raises(ValueError, match="not divisible by the 3 devices"):
        list(EpochBatchSampler(64, 16, seed=5))


def test_views_are_reproducible_from_the_batch_key(digits):
    batch = _first_batch(digits, "m0")
    v1, v2 = digits.make_views(batch), digits.make_views(batch)
    assert v1["views"].shape == (64, 2, 1, 8, 8) and v1["views"].dtype == torch.float32
    assert torch.equal(v1["y"], digits.splits["train"][1][batch["idx"]])
    assert torch.equal(v1["views"], v2["views"])
    assert not torch.allclose(v1["views"][:, 0], v1["views"][:, 1])  # two different views
    other = dict(batch, seed=torch.tensor(int(batch["seed"]) + 1))
    assert not torch.allclose(digits.make_views(other)["views"], v1["views"])
    # a sample's views do not depend on the rest of the batch
    half = digits.make_views(dict(batch, idx=batch["idx"][5:20]))
    assert torch.equal(half["views"], v1["views"][5:20])


def test_after_transfer_hook_builds_views_only_for_training_batches(digits):
    train = {"m0": _first_batch(digits, "m0"), "m1": _first_batch(digits, "m1")}
    out = digits.on_after_batch_transfer(train, 0)
    assert set(out) == {"m0", "m1"} and out["m1"]["views"].shape[:2] == (64, 2)
    eval_batch = next(iter(digits.eval_dataloader("test")))
    assert digits.on_after_batch_transfer(eval_batch, 0) is eval_batch


def test_eval_loader_covers_the_split_in_order(digits):
    batches = list(digits.eval_dataloader("train"))
    xs = [b["x"] for b in batches]
    assert torch.equal(torch.cat(xs), digits.splits["train"][0])
    assert torch.equal(torch.cat([b["y"] for b in batches]), digits.splits["train"][1])
    feats = digits.eval_transform(xs[0])
    assert abs(feats.mean().item()) < 0.1 and abs(feats.std().item() - 1) < 0.1
    with pytest.raises(ValueError, match="unknown split 'val'"):
        digits.eval_dataloader("val")


def test_bad_arguments_are_clear():
    with pytest.raises(ValueError, match="views must be an integer >= 1; got 0"):
        DigitsDataModule(seeds=[0, 1], views=0)
    assert DigitsDataModule(seeds=[0, 1], views=1).views == 1  # the classifier objectives' one
    with pytest.raises(ValueError, match="test_fraction"):
        DigitsDataModule(seeds=[0, 1], test_fraction=1.5)
    with pytest.raises(ValueError, match="batch_size=5000 is larger"):
        EpochBatchSampler(1437, 5000, seed=0)


def test_eval_transform_maps_0_and_255_to_the_normalised_ends(digits):
    x = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1).expand(2, 1, 8, 8)
    out = digits.eval_transform(x)
    mean, std = digits.mean[0], digits.std[0]
    torch.testing.assert_close(out[0], torch.full((1, 8, 8), (0.0 - mean) / std))
    torch.testing.assert_close(out[1], torch.full((1, 8, 8), (1.0 - mean) / std))


def test_the_training_split_is_copied_to_a_device_once(digits):
    cpu = torch.device("cpu")
    first = digits.train_split_on(cpu)
    again = digits.train_split_on(cpu)
    assert again[0] is first[0] and again[1] is first[1]  # cached, not copied per batch
    assert torch.equal(first[0], digits.splits["train"][0])
    assert torch.equal(first[1], digits.splits["train"][1])
    meta = torch.device("meta")  # another device, on any machine: copied there once too
    moved = digits.train_split_on(meta)
    assert moved[0].device == meta and moved[1].device == meta
    assert digits.train_split_on(meta)[0] is moved[0]
    assert digits.train_split_on(cpu)[0] is not moved[0]  # back on the CPU: the CPU tensors


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_the_loaders_take_the_worker_settings(workers):
    """``num_workers`` reaches every training loader, which keeps its workers between epochs
    when it has any; memory is pinned for the copy to a GPU when there is one."""
    dm = DigitsDataModule(seeds=[0, 1], batch_size=64, num_workers=workers)
    dm.setup()
    for loader in [*dm.train_dataloader().values(), dm.eval_dataloader("test")]:
        assert loader.pin_memory == torch.cuda.is_available()
    for loader in dm.train_dataloader().values():
        assert loader.num_workers == workers
        assert loader.persistent_workers == (workers > 0)
