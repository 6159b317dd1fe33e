"""The CUDA path: augmentation on the device, views that stay there, bf16 + channels_last
training of a pair. Marked ``gpu`` (deselected by default; ``pytest -m gpu``) and skipped
without CUDA."""

from __future__ import annotations

import math
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from ncib.data import CIFAR10DataModule, PairedViewDataModule, SupConAugment
from ncib.models import cifar_resnet
from tests.helpers.builders import quiet_trainer, tiny_pair
from tests.helpers.fake_datasets import write_cifar10

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _exact_float32():
    """Full float32 matmuls (``affine_grid`` is a matmul), whatever another test set."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    yield
    torch.set_float32_matmul_precision(before)


def _images(n, device, seed=0):
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed)).to(device)


def test_augment_on_cuda_equals_cpu_for_the_same_draws():
    aug = SupConAugment()
    x = _images(256, "cuda")
    params = aug.sample_params(x.shape, torch.Generator("cuda").manual_seed(0), "cuda")
    assert all(v.device.type == "cuda" for v in params.values())
    on_gpu = aug.apply(x, params)
    on_cpu = aug.apply(x.cpu(), {k: v.cpu() for k, v in params.items()})
    torch.testing.assert_close(on_gpu.cpu(), on_cpu, atol=1e-4, rtol=0)


def test_augment_on_cuda_is_seeded_and_has_the_cpu_statistics():
    aug = SupConAugment()
    x = _images(4096, "cuda")
    out = aug(x, torch.Generator("cuda").manual_seed(3))
    assert out.device.type == "cuda" and out.min() >= 0 and out.max() <= 1
    assert torch.equal(out, aug(x, torch.Generator("cuda").manual_seed(3)))
    assert not torch.allclose(out, aug(x, torch.Generator("cuda").manual_seed(4)))
    ref = aug(x.cpu(), torch.Generator().manual_seed(3))  # another random stream, same law
    for stat in (lambda t: t.mean((0, 2, 3)), lambda t: t.std((0, 2, 3))):
        torch.testing.assert_close(stat(out).cpu(), stat(ref), atol=0.01, rtol=0)
    p = aug.sample_params(x.shape, torch.Generator("cuda").manual_seed(5), "cuda")
    tol = 4 * math.sqrt(0.25 / len(x))
    assert abs(p["flip"].float().mean().item() - 0.5) < tol
    assert abs(p["gray"].float().mean().item() - 0.2) < tol


@pytest.fixture
def cifar(tmp_path):
    write_cifar10(tmp_path, n_train=256, n_test=64)
    dm = CIFAR10DataModule(seeds=[0, 1], root=str(tmp_path), batch_size=64)
    dm.setup()
    return dm


def test_make_views_keeps_everything_on_the_device(cifar):
    batch = next(iter(cifar.train_dataloader()["m0"]))
    on_gpu = {
        k: v.cuda() if torch.is_tensor(v) else v for k, v in batch.items()
    }  # Lightning's transfer
    out = cifar.make_views(on_gpu)
    assert out["views"].device.type == "cuda" and out["y"].device.type == "cuda"
    assert out["views"].shape == (64, 2, 3, 32, 32) and out["views"].dtype == torch.float32
    images, labels = cifar.train_split_on(torch.device("cuda", torch.cuda.current_device()))
    assert images.device.type == "cuda" and images.dtype == torch.uint8
    assert cifar.train_split_on(images.device)[0] is images  # copied once
    assert torch.equal(out["views"], cifar.make_views(on_gpu)["views"])
    assert torch.equal(out["y"].cpu(), cifar.splits["train"][1][batch["idx"]])


class ColouredClasses(PairedViewDataModule):
    """Ten classes told apart by colour and stripe direction, so a few steps can learn them."""

    total_classes, mean, std = 10, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)

    def __init__(self, seeds, **kw):
        super().__init__(seeds, **kw)
        self.augment = SupConAugment()

    def load(self):
        g = torch.Generator().manual_seed(0)

        def split(n):
            y = torch.arange(n) % 10
            palette = torch.rand(10, 3, 1, 1, generator=g)
            stripes = (torch.arange(32) // 4 % 2).float()
            pattern = torch.where(
                (y % 2 == 0).view(-1, 1, 1, 1), stripes.view(1, 1, 1, 32), stripes.view(1, 1, 32, 1)
            )
            x = 0.6 * palette[y] + 0.3 * pattern + 0.1 * torch.rand(n, 3, 32, 32, generator=g)
            return (x * 255).round().clamp(0, 255).to(torch.uint8), y

        return {"train": split(512), "test": split(100)}


class LossRecorder(pl.Callback):
    def __init__(self):
        self.losses = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))


def _pair(backbone="resnet18", channels_last=True):
    return tiny_pair(
        [0, 1],
        backbone=partial(cifar_resnet, name=backbone),
        out_dim=128,
        lr=0.05,
        momentum=0.9,
        weight_decay=1e-4,
        channels_last=channels_last,
    )


def test_bf16_channels_last_pair_trains_on_the_gpu():
    model, rec = _pair(), LossRecorder()
    trainer = quiet_trainer(
        accelerator="gpu",
        devices=1,
        precision="bf16-mixed",
        max_steps=24,
        callbacks=[rec],
        benchmark=True,
    )
    trainer.fit(model, datamodule=ColouredClasses([0, 1], batch_size=128))
    assert trainer.global_step == 24 and all(math.isfinite(v) for v in rec.losses)
    first, last = sum(rec.losses[:4]) / 4, sum(rec.losses[-4:]) / 4
    assert last < first, rec.losses
    conv = model.members[1].encoder.conv1.weight
    # (Lightning moves the module back to the CPU when fit ends)
    assert conv.is_contiguous(memory_format=torch.channels_last)


def test_channels_last_bf16_features_are_close_to_float32():
    model = _pair(channels_last=True).cuda().eval()
    x = _images(32, "cuda")
    ref = [f.float() for f in model.features(x.contiguous())]
    with torch.autocast("cuda", dtype=torch.bfloat16):
        feats = model.features(x)
    assert feats[0].dtype == torch.bfloat16 and feats[0].shape == (32, 512)
    for f, r in zip(feats, ref):
        rel = (f.float() - r).norm() / r.norm()
        assert rel < 0.05, rel


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
def test_benchmark_script_runs_on_cuda(backbone):
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "experiments/benchmarks/training.py"),
            "--device",
            "cuda",
            "--backbone",
            backbone,
            "--batch-size",
            "256",
            "--steps",
            "3",
            "--warmup",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "images/s" in proc.stdout and "peak GPU memory" in proc.stdout


def test_analysis_features_of_a_bf16_trained_pair_are_full_float32():
    # features for analysis and for the linear evaluation are extracted without autocast,
    # whatever the training precision: float32, equal to a plain float32 forward pass
    from ncib.engine import extract_pair_features
    from ncib.engine.features import full_float32

    model = _pair()
    dm = ColouredClasses([0, 1], batch_size=128)
    trainer = quiet_trainer(accelerator="gpu", devices=1, precision="bf16-mixed", max_steps=4)
    trainer.fit(model, datamodule=dm)
    model.cuda().eval()
    torch.set_float32_matmul_precision("high")  # what a run sets: TF32 in training matmuls
    feats = extract_pair_features(model, dm, torch.device("cuda"), progress=False)
    assert all(f.dtype == torch.float32 for f in (*feats.train, *feats.test))
    with torch.no_grad(), full_float32():
        images = dm.eval_transform(dm.splits["test"][0].cuda())
        reference = [
            m.encoder(images.contiguous(memory_format=torch.channels_last)).float()
            for m in model.members
        ]
        in_bf16 = torch.autocast("cuda", dtype=torch.bfloat16)
        with in_bf16:
            low = (
                model.members[0]
                .encoder(images.contiguous(memory_format=torch.channels_last))
                .float()
            )
    for m in range(2):
        torch.testing.assert_close(feats.test[m], reference[m], atol=1e-6, rtol=1e-6)
    assert (low - reference[0]).abs().max() > 1e-4  # bf16 would not have passed the check above
