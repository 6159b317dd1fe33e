"""CIFAR-10/100 and ImageNet32 readers on tiny files in the real formats, SupCon's batched
augmentation against torchvision, the dataset/experiment configs, and an end-to-end fit."""

from __future__ import annotations

import colorsys
import math
import re

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from hydra.utils import instantiate
from omegaconf import OmegaConf

from ncib.data import (
    CIFAR10DataModule,
    CIFAR100DataModule,
    ImageNet32DataModule,
    SupConAugment,
    supcon_augment,
)
from ncib.data.base import stratified_subset
from tests.conftest import compose_config
from tests.helpers.app import run_app
from tests.helpers.builders import quiet_trainer, tiny_pair
from tests.helpers.fake_datasets import (
    pattern_image,
    pattern_index,
    write_cifar10,
    write_cifar100,
    write_imagenet32,
)

CIFAR = {
    "cifar10": (CIFAR10DataModule, write_cifar10, 10),
    "cifar100": (CIFAR100DataModule, write_cifar100, 100),
}


def _module(name, root, **kw):
    cls, write, _ = CIFAR[name]
    write(root)
    dm = cls(seeds=[0, 1], root=str(root), batch_size=16, **kw)
    dm.setup()
    return dm


# -- readers ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CIFAR))
def test_cifar_reads_the_official_pickles(name, tmp_path):
    dm = _module(name, tmp_path)
    for split, n in (("train", 50), ("test", 20)):
        x, y = dm.splits[split]
        assert x.shape == (n, 3, 32, 32) and x.dtype == torch.uint8 and x.is_contiguous()
        assert y.shape == (n,) and y.dtype == torch.int64
        assert 0 <= y.min() and y.max() < CIFAR[name][2] == dm.num_classes
        # image i of the split (files in order) comes back pixel for pixel
        for i in (0, 7, n - 1):
            assert torch.equal(x[i], torch.from_numpy(pattern_image(i)))
    x = dm.splits["train"][0]
    assert x[3, 0, 0, 0] == 255 and x[3, 0, 5, 9] == 72  # red: 8 · column
    assert x[3, 1, 9, 5] == 72 and x[3, 2, 4, 4] == 3  # green: 8 · row; blue: the index
    assert len(dm.mean) == len(dm.std) == 3


def test_cifar10_labels_follow_the_batches(tmp_path):
    import pickle

    dm = _module("cifar10", tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    expected = []
    for b in range(1, 6):
        with open(folder / f"data_batch_{b}", "rb") as f:
            expected += pickle.load(f, encoding="bytes")[b"labels"]
    assert dm.splits["train"][1].tolist() == expected
    assert torch.equal(dm.splits["train"][1].bincount(), torch.full((10,), 5))


def test_building_a_datamodule_reads_nothing(tmp_path):
    for cls in (CIFAR10DataModule, CIFAR100DataModule, ImageNet32DataModule):
        dm = cls(seeds=[0, 1], root=str(tmp_path / "absent"))
        assert not dm.splits and not (tmp_path / "absent").exists()


@pytest.mark.parametrize(
    "name,folder,cls",
    [
        ("cifar10", "cifar-10-batches-py", "CIFAR10"),
        ("cifar100", "cifar-100-python", "CIFAR100"),
    ],
)
def test_missing_cifar_says_where_and_how_to_fix(name, folder, cls, tmp_path):
    dm = CIFAR[name][0](seeds=[0, 1], root=str(tmp_path / "nowhere"))
    where = re.escape(str(tmp_path / "nowhere"))
    pattern = rf"root={where} has no {folder}.*torchvision\.datasets\.{cls}\('{where}', download=True\).*download=true"
    with pytest.raises(FileNotFoundError, match=pattern):
        dm.setup()


def test_partly_missing_cifar_names_the_files(tmp_path):
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_4").unlink()
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(
        FileNotFoundError, match="lacks data_batch_4, test_batch in cifar-10-batches-py"
    ):
        CIFAR10DataModule(seeds=[0, 1], root=str(tmp_path)).setup()


def test_download_goes_through_torchvision(tmp_path, monkeypatch):
    import torchvision

    calls = []

    def fake_cifar10(root, train, download):
        calls.append((root, train, download))
        write_cifar10(root)

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fake_cifar10)
    dm = CIFAR10DataModule(seeds=[0, 1], root=str(tmp_path), download=True, batch_size=16)
    dm.prepare_data()
    dm.prepare_data()  # files present: no second fetch
    dm.setup()
    assert calls == [(str(tmp_path), True, True)] and len(dm.splits["train"][1]) == 50


@pytest.mark.parametrize("layout", ["npz", "pickle"])
def test_imagenet32_reads_both_layouts_with_zero_based_labels(layout, tmp_path):
    write_imagenet32(tmp_path, num_classes=10, layout=layout)
    dm = ImageNet32DataModule(seeds=[0, 1], root=str(tmp_path), batch_size=16)
    dm.setup()
    x, y = dm.splits["train"]
    assert x.shape == (50, 3, 32, 32) and x.dtype == torch.uint8 and y.dtype == torch.int64
    assert torch.equal(y.bincount(), torch.full((10,), 5))  # files' 1..10 → 0..9
    assert all(torch.equal(x[i], torch.from_numpy(pattern_image(i))) for i in (0, 5, 49))
    assert dm.splits["test"][0].shape == (20, 3, 32, 32) and dm.num_classes == 1000


def test_imagenet32_class_and_sample_subsets(tmp_path):
    write_imagenet32(tmp_path, n_train=3000, n_test=1000, num_classes=1000)
    full = ImageNet32DataModule(seeds=[0, 1], root=str(tmp_path))
    full.setup()
    chosen = [700, 3, 512, 9, 250, 64, 999]
    sub = ImageNet32DataModule(seeds=[0, 1], root=str(tmp_path), classes=chosen)
    sub.setup()
    xs, ys = sub.splits["train"]
    orig = [pattern_index(img) for img in xs]
    classes = full.splits["train"][1][orig]
    assert orig == sorted(orig) and sub.num_classes == 7
    # relabelled 0..6 in the order given, every image of those classes kept
    assert torch.equal(ys, torch.tensor([chosen.index(int(c)) for c in classes]))
    assert len(ys) == int(torch.isin(full.splits["train"][1], torch.tensor(chosen)).sum())
    assert torch.equal(sub.splits["test"][1].unique(), torch.arange(7))
    first = ImageNet32DataModule(seeds=[5, 6], root=str(tmp_path), classes=7)  # the first 7
    first.setup()
    assert set(
        full.splits["train"][1][[pattern_index(i) for i in first.splits["train"][0]]].tolist()
    ) == set(range(7))
    few = ImageNet32DataModule(seeds=[0, 1], root=str(tmp_path), max_train_samples=1000)
    few.setup()
    assert len(few.splits["train"][1]) == 1000 and len(few.splits["test"][1]) == 1000
    assert few.splits["train"][1].bincount(minlength=1000).max() == 1  # 3 per class → 1


@pytest.mark.parametrize("classes", [[7, 2, 5], 4])
def test_digits_and_cifar_class_subsets_relabel_in_the_order_given(tmp_path, classes):
    from ncib.data import CIFAR10DataModule, DigitsDataModule

    ids = list(range(classes)) if isinstance(classes, int) else classes
    full, sub = DigitsDataModule(seeds=[0, 1]), DigitsDataModule(seeds=[0, 1], classes=classes)
    full.setup()
    sub.setup()
    assert sub.num_classes == len(ids)
    for split in ("train", "test"):
        x, y = full.splits[split]
        keep = torch.isin(y, torch.tensor(ids))
        assert torch.equal(sub.splits[split][0], x[keep])
        assert torch.equal(sub.splits[split][1], torch.tensor([ids.index(int(c)) for c in y[keep]]))
    write_cifar10(tmp_path)
    cifar = CIFAR10DataModule(seeds=[0, 1], root=str(tmp_path), classes=classes, batch_size=4)
    cifar.setup()
    assert cifar.num_classes == len(ids) and set(cifar.splits["train"][1].tolist()) == set(
        range(len(ids))
    )


@pytest.mark.parametrize(
    "classes,match",
    [([3, 3], "distinct"), ([1, 10], "outside"), (1, "between 2 and 10"), ([4], "at least two")],
)
def test_bad_class_subsets_say_what_is_allowed(classes, match):
    from ncib.data import DigitsDataModule

    with pytest.raises(ValueError, match=match):
        DigitsDataModule(seeds=[0, 1], classes=classes)


def test_class_subsets_at_their_bounds_and_the_full_messages():
    from ncib.data.base import class_subset

    assert class_subset(None, 10) is None
    np.testing.assert_array_equal(class_subset(10, 10), np.arange(10))  # all, as the first n
    np.testing.assert_array_equal(class_subset(np.int64(2), 10), [0, 1])
    pair = class_subset([9, 0], 10)
    assert pair.dtype == np.int64 and pair.tolist() == [9, 0]
    with pytest.raises(
        ValueError, match=r"^dataset.classes=11: keep between 2 and 10 classes \(the first n\)$"
    ):
        class_subset(11, 10)
    with pytest.raises(
        ValueError,
        match=r"^dataset.classes=\[3, 3\]: give at least two distinct class ids in \[0, 10\)$",
    ):
        class_subset([3, 3], 10)
    with pytest.raises(ValueError, match=r"in \[0, 10\); \[-1, 10\] are outside$"):
        class_subset([-1, 10, 2], 10)


def test_select_classes_relabels_in_order_even_for_classes_absent_from_a_split():
    """A split may lack a chosen class (the largest id here) or be empty."""
    from ncib.data.base import select_classes

    images = torch.arange(5).reshape(5, 1)
    labels = torch.tensor([0, 1, 0, 3, 1])
    x, y = select_classes(images, labels, np.array([4, 0, 1]))
    assert x.flatten().tolist() == [0, 1, 2, 4] and y.tolist() == [1, 2, 1, 2]
    x, y = select_classes(images[:0], labels[:0], np.array([1, 0]))
    assert x.shape == (0, 1) and y.tolist() == []


def test_stratified_subset_keeps_class_shares():
    labels = np.repeat(np.arange(4), [400, 300, 200, 100])
    idx = stratified_subset(labels, 100, seed=0)
    assert len(idx) == 100 and np.all(np.diff(idx) > 0)
    assert np.bincount(labels[idx]).tolist() == [40, 30, 20, 10]
    assert np.array_equal(idx, stratified_subset(labels, 100, seed=0))
    assert not np.array_equal(idx, stratified_subset(labels, 100, seed=1))
    assert len(stratified_subset(labels, 7, seed=0)) == 7


def test_missing_imagenet32_says_where_it_comes_from(tmp_path):
    dm = ImageNet32DataModule(seeds=[0, 1], root=str(tmp_path))
    with pytest.raises(
        FileNotFoundError,
        match=r"has no complete ImageNet32.*Imagenet32_train_npz.*image-net\.org/download-images.*account",
    ):
        dm.setup()
    with pytest.raises(ValueError, match="between 2 and 1000"):
        ImageNet32DataModule(seeds=[0, 1], classes=1001)


def test_views_of_a_real_format_batch(tmp_path):
    dm = _module("cifar10", tmp_path)
    batch = next(iter(dm.train_dataloader()["m1"]))
    out = dm.make_views(batch)
    assert out["views"].shape == (16, 2, 3, 32, 32) and out["views"].dtype == torch.float32
    assert torch.equal(out["y"], dm.splits["train"][1][batch["idx"]])
    assert torch.equal(dm.make_views(batch)["views"], out["views"])
    lo = (0 - torch.tensor(dm.mean)) / torch.tensor(dm.std)
    hi = (1 - torch.tensor(dm.mean)) / torch.tensor(dm.std)
    per_channel = out["views"].transpose(0, 2).flatten(1)
    assert torch.all(per_channel.min(1).values >= lo - 1e-5) and torch.all(
        per_channel.max(1).values <= hi + 1e-5
    )


# -- augmentation ------------------------------------------------------------------------------
def _images(b=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, 3, 32, 32, generator=g)
    x[0] = x[0, :1]  # a grey image: hue and saturation undefined
    x[1, :, :8] = 1.0  # saturated white and black areas, ties between channels
    x[1, :, 8:16] = 0.0
    x[2, 0] = x[2, 1]  # red = green: a tie for the largest channel
    return x


@pytest.mark.parametrize(
    "op,ref,lo,hi",
    [
        (supcon_augment.adjust_brightness, TF.adjust_brightness, 0.0, 2.0),
        (supcon_augment.adjust_contrast, TF.adjust_contrast, 0.0, 2.0),
        (supcon_augment.adjust_saturation, TF.adjust_saturation, 0.0, 2.0),
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_jitter_ops_match_torchvision(op, ref, lo, hi, seed):
    x = _images(seed=seed)
    f = lo + (hi - lo) * torch.rand(len(x), generator=torch.Generator().manual_seed(seed))
    expected = torch.stack([ref(img, float(v)) for img, v in zip(x, f)])
    torch.testing.assert_close(op(x, f), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hue_matches_torchvision(seed):
    x = _images(seed=seed)
    shift = torch.rand(len(x), generator=torch.Generator().manual_seed(seed)) - 0.5
    expected = torch.stack([TF.adjust_hue(img, float(v)) for img, v in zip(x, shift)])
    torch.testing.assert_close(supcon_augment.adjust_hue(x, shift), expected, atol=1e-3, rtol=0)


def test_grayscale_and_hsv_against_references():
    x = _images()
    torch.testing.assert_close(
        supcon_augment.rgb_to_grayscale(x), TF.rgb_to_grayscale(x), atol=1e-5, rtol=0
    )
    hsv = supcon_augment.rgb_to_hsv(x)
    for b, i, j in [(1, 3, 20), (2, 5, 6), (3, 30, 1), (5, 16, 16)]:
        expected = colorsys.rgb_to_hsv(*x[b, :, i, j].tolist())
        torch.testing.assert_close(hsv[b, :, i, j], torch.tensor(expected), atol=1e-5, rtol=0)
    torch.testing.assert_close(supcon_augment.hsv_to_rgb(hsv), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        supcon_augment.adjust_hue(x, torch.zeros(len(x))), x, atol=1e-5, rtol=0
    )


def test_full_crop_is_the_identity_and_flip_flips():
    x = _images()
    full = torch.tensor([[0.0, 0.0, 32.0, 32.0]]).expand(len(x), 4)
    torch.testing.assert_close(supcon_augment.resized_crop(x, full, 32), x, atol=1e-5, rtol=0)
    flip = torch.tensor([True, False, True, False, True, False])
    out = supcon_augment.resized_crop(x, full, 32, flip)
    torch.testing.assert_close(out[flip], x[flip].flip(-1), atol=1e-5, rtol=0)
    torch.testing.assert_close(out[~flip], x[~flip], atol=1e-5, rtol=0)
    aug = SupConAugment(
        scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip_p=0.0, jitter_p=0.0, grayscale_p=0.0
    )
    torch.testing.assert_close(aug(x, torch.Generator().manual_seed(0)), x, atol=1e-5, rtol=0)


def test_crop_matches_torchvision_resized_crop_inside_the_border():
    x = _images()
    box = torch.tensor([[16.0, 0.0, 16.0, 16.0]]).expand(len(x), 4)  # top-right quarter
    torch.testing.assert_close(
        supcon_augment.resized_crop(x, box, 16), x[:, :, :16, 16:], atol=1e-5, rtol=0
    )
    up = supcon_augment.resized_crop(
        x, torch.tensor([[5.0, 9.0, 12.0, 20.0]]).expand(len(x), 4), 32
    )
    ref = TF.resized_crop(x, top=9, left=5, height=20, width=12, size=[32, 32], antialias=False)
    # the same bilinear resize; only the outermost ring differs (torchvision clamps at the crop
    # edge, the grid samples the neighbouring pixels of the full image)
    torch.testing.assert_close(up[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1], atol=1e-5, rtol=0)


def test_crop_boxes_follow_scale_and_ratio():
    g = torch.Generator().manual_seed(0)
    boxes = supcon_augment.random_resized_crop_boxes(
        20000, 32, 32, (0.2, 1.0), (3 / 4, 4 / 3), g, "cpu"
    )
    x0, y0, w, h = boxes.unbind(1)
    assert torch.all((x0 >= 0) & (y0 >= 0) & (x0 + w <= 32 + 1e-4) & (y0 + h <= 32 + 1e-4))
    area = w * h / 1024
    assert area.min() >= 0.2 - 1e-5 and area.max() <= 1 + 1e-5
    ratio = w / h
    assert ratio.min() >= 0.75 - 1e-5 and ratio.max() <= 4 / 3 + 1e-5
    # with ten tries nearly every draw fits; the log-ratio is uniform, so the median is 1
    assert abs(ratio.log().median().item()) < 0.02
    # a crop that can never fit falls back to the centre crop with the ratio clamped
    wide = supcon_augment.random_resized_crop_boxes(4, 32, 32, (1.0, 1.0), (2.0, 2.0), g, "cpu")
    torch.testing.assert_close(wide, torch.tensor([[0.0, 8.0, 32.0, 16.0]]).expand(4, 4))


def _compose(x, factors, order):
    for k in order:
        x = (
            supcon_augment.adjust_brightness,
            supcon_augment.adjust_contrast,
            supcon_augment.adjust_saturation,
            supcon_augment.adjust_hue,
        )[k](x, factors[:, k])
    return x


def test_apply_composes_the_drawn_ops_in_the_drawn_order():
    aug = SupConAugment()
    x = _images(b=64)
    p = aug.sample_params(x.shape, torch.Generator().manual_seed(3), "cpu")
    out = aug.apply(x, p)
    cropped = supcon_augment.resized_crop(x, p["boxes"], 32, p["flip"])
    for i in range(len(x)):
        expected = cropped[i : i + 1]
        if p["jitter"][i]:
            expected = _compose(expected, p["factors"][i : i + 1], p["order"][i].tolist())
        if p["gray"][i]:
            expected = supcon_augment.rgb_to_grayscale(expected).expand(1, 3, 32, 32)
        torch.testing.assert_close(out[i : i + 1], expected, atol=1e-5, rtol=0)
    assert len({tuple(o) for o in p["order"].tolist()}) > 10  # orders really vary
    fixed = SupConAugment(random_order=False).sample_params(x.shape, torch.Generator(), "cpu")
    assert torch.equal(fixed["order"], torch.arange(4).expand(64, 4))


def test_augment_is_seeded_in_range_and_has_the_right_rates():
    aug = SupConAugment(size=12)
    x = torch.rand(4000, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    out = aug(x, torch.Generator().manual_seed(7))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert torch.equal(out, aug(x, torch.Generator().manual_seed(7)))
    assert not torch.allclose(out, aug(x, torch.Generator().manual_seed(8)))
    p = aug.sample_params(x.shape, torch.Generator().manual_seed(7), "cpu")
    n = len(x)
    tol = 4 * math.sqrt(0.25 / n)
    assert abs(p["flip"].float().mean() - 0.5) < tol
    assert abs(p["jitter"].float().mean() - 0.8) < tol and abs(p["gray"].float().mean() - 0.2) < tol
    lo, hi = p["factors"].min(0).values, p["factors"].max(0).values
    assert torch.all(lo[:3] >= 0.6) and torch.all(hi[:3] <= 1.4) and lo[3] >= -0.1 and hi[3] <= 0.1
    gray = (out.max(1).values - out.min(1).values).amax((1, 2)) < 1e-6
    assert torch.equal(gray, p["gray"])  # grey exactly where drawn (random inputs are colourful)
    with pytest.raises(ValueError, match="RGB"):
        aug(torch.rand(2, 1, 8, 8), torch.Generator())


# -- configs -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name,expected", [("cifar10", 400), ("cifar100", 400), ("imagenet32", 100)]
)
def test_dataset_alone_selects_the_paper_setup(name, expected, tmp_path):
    cfg = compose_config([f"dataset={name}"], output_dir=tmp_path)
    assert cfg.backbone.name == "resnet50" and cfg.trainer.accelerator == "auto"
    assert cfg.trainer.max_epochs == expected and cfg.model.temperature == 0.1
    opt = cfg.model.optimizer
    assert (opt.lr, opt.momentum, opt.weight_decay) == (0.5, 0.9, 1e-4)
    dm = cfg.dataset.datamodule
    assert dm.batch_size == 1024 and dm.eval_batch_size == 1024 and not dm.get("download", False)
    assert dm.root == str(tmp_path / "data" / name)  # NCIB_DATA_DIR (conftest)
    assert (
        compose_config(
            [f"dataset={name}", "paths.data_dir=/x"], output_dir=tmp_path
        ).dataset.datamodule.root
        == f"/x/{name}"
    )


def test_explicit_overrides_win_over_the_dataset_recipe(tmp_path):
    cfg = compose_config(
        [
            "dataset=cifar10",
            "backbone=resnet18",
            "trainer=cpu",
            "trainer.max_epochs=1",
            "model.optimizer.lr=0.1",
            "dataset.datamodule.batch_size=64",
        ],
        output_dir=tmp_path,
    )
    assert cfg.backbone.name == "resnet18" and cfg.trainer.accelerator == "cpu"
    assert cfg.trainer.max_epochs == 1 and cfg.model.optimizer.lr == 0.1
    assert cfg.dataset.datamodule.batch_size == 64


@pytest.mark.parametrize("dataset", ["digits", "cifar10", "cifar100", "imagenet32"])
def test_a_class_subset_is_one_key_and_num_classes_follows(dataset, tmp_path):
    cfg = compose_config([f"dataset={dataset}", "dataset.classes=[1,0,3]"], output_dir=tmp_path)
    assert cfg.dataset.num_classes == 3 and list(cfg.dataset.datamodule.classes) == [1, 0, 3]
    assert instantiate(cfg.dataset.datamodule).num_classes == 3
    first = compose_config([f"dataset={dataset}", "dataset.classes=2"], output_dir=tmp_path)
    assert first.dataset.num_classes == 2 and instantiate(first.dataset.datamodule).num_classes == 2


@pytest.mark.parametrize(
    "name,dataset",
    [
        ("paper_cifar10", "cifar10"),
        ("paper_cifar100", "cifar100"),
        ("imagenet32_pretrain", "imagenet32"),
    ],
)
def test_experiments_compose_and_build(name, dataset, tmp_path):
    cfg = compose_config([f"experiment={name}"], output_dir=tmp_path)
    OmegaConf.resolve(cfg)
    assert cfg.dataset.name == dataset and cfg.backbone.name == "resnet50"
    dm = instantiate(cfg.dataset.datamodule)
    assert not dm.splits
    model = instantiate(cfg.model)
    assert len(model.members) == 2 and model.members[0].encoder.feature_dim == 2048
    small = compose_config(
        [f"experiment={name}", "backbone=resnet18", "trainer.max_epochs=1"], output_dir=tmp_path
    )
    assert small.backbone.name == "resnet18" and small.trainer.max_epochs == 1


def test_experiment_names_the_run(tmp_path):
    cfg = compose_config(["experiment=paper_cifar10"], output_dir=tmp_path)
    assert cfg.experiment_name == "paper_cifar10" and "paper" in cfg.tags


# -- end to end --------------------------------------------------------------------------------
def test_paired_supcon_fits_on_fake_cifar10(tmp_path):
    write_cifar10(tmp_path / "data", n_train=64, n_test=20)
    dm = CIFAR10DataModule(seeds=[0, 1], root=str(tmp_path / "data"), batch_size=16)
    model = tiny_pair(
        [0, 1], in_channels=3, feature_dim=16, width=4, out_dim=8, momentum=0.9, warmup_epochs=1
    )
    trainer = quiet_trainer(max_steps=2)
    trainer.fit(model, datamodule=dm)
    assert trainer.global_step == 2
    losses = [float(trainer.callback_metrics[f"train/loss/m{m}"]) for m in (0, 1)]
    assert all(math.isfinite(v) and v > 0 for v in losses)


def test_app_runs_on_fake_cifar10(tmp_path):
    write_cifar10(tmp_path / "data" / "cifar10", n_train=64, n_test=20)
    run_dir = tmp_path / "run"
    proc = run_app(
        "dataset=cifar10",
        f"paths.data_dir={tmp_path / 'data'}",
        "backbone=convnet",
        "backbone.width=4",
        "backbone.feature_dim=16",
        "trainer=cpu",
        "trainer.max_steps=2",
        "dataset.datamodule.batch_size=16",
        "dataset.datamodule.eval_batch_size=32",
        "logger=csv",
        "callbacks=none",
        "linear_eval.batch_size=16",
        "linear_eval.epochs=1",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    cfg = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    assert cfg.dataset.name == "cifar10" and cfg.trainer.max_steps == 2
    assert (run_dir / "csv" / "metrics.csv").exists()
