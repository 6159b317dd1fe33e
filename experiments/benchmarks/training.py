"""Training throughput of the real path, optionally side by side with a reference-style loop.

ncib's path is a Lightning fit of ``PairedSupCon`` (two members) on CIFAR-shaped data kept as
uint8 on the training device, views made there by ``make_views`` (``SupConAugment``), bf16
autocast and channels_last on CUDA, float32 on the CPU; ``--compile`` compiles each member's
training path (``PairedSupCon(compile=True)``), ``--compile-augment`` also the augmentation
(``SupConAugment.apply``; a hook of this script only). With either, the first step's time minus
the median step is printed as the compile time (``--cold-compile``: into an empty Inductor cache,
as on a fresh machine; otherwise earlier runs' cached kernels shorten it).

``--reference`` adds a loop written the way the SupContrast reference code trains (Khosla et al.
2020): PIL images augmented one by one in DataLoader workers (RandomResizedCrop(32, scale=(0.2,
1)), RandomHorizontalFlip, RandomApply(ColorJitter(0.4, 0.4, 0.4, 0.1), p=0.8),
RandomGrayscale(0.2), ToTensor, Normalize, two crops per image), the mask-based SupCon loss
with its τ/τ_base factor, ``loss.item()`` every step, NCHW, float32 (PyTorch's defaults: cuDNN
may use TF32 for convolutions, matmuls stay float32) or autocast (``--reference-amp``). The two
members train one after the other, each with its own model and SGD optimiser, as two separate
runs would; one loader with ``--workers`` workers yields each step's batches of both members
(each member its own shuffle), so the workers make one batch per model step, as a single
run's do (the reference's learning-rate schedule, which costs nothing, is left out). It trains the same backbone on the same synthetic uint8 images in the same
process, alternating with ncib's path in rounds (ncib ``--round-steps`` steps, reference
``--round-steps`` steps, repeat) so that machine noise hits both.

    python experiments/benchmarks/training.py --backbone resnet18 --batch-size 64 --steps 3
    python experiments/benchmarks/training.py --device cpu --backbone convnet --batch-size 32 \\
        --steps 6 --round-steps 3 --reference
    python experiments/benchmarks/training.py --device cuda --backbone resnet50 --batch-size 1024 \\
        --steps 40 --round-steps 10 --reference --compile --compile-augment --cold-compile

Timing (the device is synchronised at every boundary):
* ncib: data = end of the previous batch → ``on_train_batch_start``: the loader (indices and
  seeds), the transfer, and ``make_views`` of both members (its own share, "augment on device",
  is timed apart); model = ``on_train_batch_start`` → ``on_train_batch_end``: forward, SupCon
  loss, backward and the SGD step of both members.
* reference: data = time blocked in the loader's ``next`` (its workers augment); model = the
  two members' steps (transfer, forward, loss, backward, SGD, ``loss.item()``).
Every round starts with ``--settle`` untimed steps of each path (by default the batches the
reference's workers can hold ready, ``2 × workers``: they were made while ncib ran, and the
workers still compete for CPU at the start of ncib's round); the first round also starts with
``--warmup`` untimed steps (compilation, cuDNN autotuning). Counting, the same for both: a step
trains each of the ``members`` on ``batch_size`` images with ``views`` views each, so
``images/s = members × views × batch_size / step time`` (view-images through an encoder).
FLOPs per view-image: ``3 ×`` the forward FLOPs of encoder + head (``torch.utils.flop_counter``
on one batch; backward ≈ 2 × forward); on CUDA the achieved share of ``--peak-tflops`` (989 =
H200 bf16 dense) is printed.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import statistics
import tempfile
import time
from functools import partial

import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision import transforms

from ncib.data.base import PairedViewDataModule
from ncib.data.supcon_augment import SupConAugment
from ncib.models import ConvNet, Member, PairedSupCon, ProjectionHead, cifar_resnet
from ncib.models.schedules import warmup_cosine

SEEDS = (0, 1)
TEMPERATURE, BASE_TEMPERATURE = 0.1, 0.07
OPTIMIZER = partial(torch.optim.SGD, lr=0.5, momentum=0.9, weight_decay=1e-4)


def clock(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


# -- ncib's path ---------------------------------------------------------------------------------
class SyntheticCIFAR(PairedViewDataModule):
    """Random uint8 ``(N, 3, 32, 32)`` images with 10 labels, CIFAR-10's normalisation.

    ``augment_s`` accumulates the time spent in :meth:`make_views` (device synchronised);
    ``compile_augment`` compiles ``SupConAugment.apply`` (the draws stay eager: they use a
    ``torch.Generator``), a benchmark-only hook.
    """

    total_classes = 10
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)

    def __init__(
        self,
        seeds,
        num_samples: int,
        random_order: bool = True,
        compile_augment: bool = False,
        **kwargs,
    ):
        super().__init__(seeds, **kwargs)
        self.num_samples = int(num_samples)
        self.augment = SupConAugment(size=32, random_order=random_order)
        if compile_augment:
            self.augment.apply = torch.compile(self.augment.apply, dynamic=False)
        self.augment_s = 0.0

    def load(self):
        return {
            "train": synthetic_split(self.num_samples, seed=0),
            "test": synthetic_split(1000, seed=1),
        }

    def make_views(self, batch: dict) -> dict:
        device = batch["idx"].device
        start = clock(device)
        views = super().make_views(batch)
        self.augment_s += clock(device) - start
        return views


def synthetic_split(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
        torch.randint(0, 10, (n,), generator=g),
    )


def build_backbone(name: str, width: int = 32):
    if name == "convnet":
        return partial(ConvNet, in_channels=3, feature_dim=4 * width, width=width)
    return partial(cifar_resnet, name=name, in_channels=3)


HEAD = partial(ProjectionHead, out_dim=128)


def seeded_member(backbone, seed: int) -> Member:
    """Encoder + head initialised under ``seed``, as ``PairedSupCon`` builds its members."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = backbone()
        return Member(encoder, HEAD(encoder.feature_dim))


# -- the reference-style loop --------------------------------------------------------------------
class TwoCrops:
    """Two independent draws of ``transform`` of one image (the reference's two views)."""

    def __init__(self, transform):
        self.transform = transform

    def __call__(self, image):
        return [self.transform(image), self.transform(image)]


def reference_transform(mean, std) -> TwoCrops:
    """The reference's per-image CIFAR training augmentation, torchvision on PIL images."""
    return TwoCrops(
        transforms.Compose(
            [
                transforms.RandomResizedCrop(size=32, scale=(0.2, 1.0)),
                transforms.RandomHorizontalFlip(),
                transforms.RandomApply([transforms.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
                transforms.RandomGrayscale(p=0.2),
                transforms.ToTensor(),
                transforms.Normalize(mean, std),
            ]
        )
    )


class MemberPairDataset(Dataset):
    """An item is one index per member: a PIL image is made from the ``(H, W, C)`` uint8 array
    (as torchvision's CIFAR datasets do) and transformed, for each member."""

    def __init__(self, images_hwc: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images_hwc, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, indices):
        return tuple(
            (self.transform(Image.fromarray(self.images[i])), int(self.labels[i])) for i in indices
        )


class MemberOrders(Sampler):
    """Endless batches of ``(i_0, i_1, …)`` tuples: member ``m`` walks its own permutation of
    the data, a fresh one per epoch, and drops the last partial batch."""

    def __init__(self, num_samples: int, batch_size: int, seeds):
        self.n, self.batch_size, self.seeds = int(num_samples), int(batch_size), list(seeds)

    def __iter__(self):
        for epoch in itertools.count():
            orders = [
                torch.randperm(
                    self.n, generator=torch.Generator().manual_seed(1_000_003 * s + epoch)
                ).tolist()
                for s in self.seeds
            ]
            for b in range(self.n // self.batch_size):
                rows = slice(b * self.batch_size, (b + 1) * self.batch_size)
                yield list(zip(*(order[rows] for order in orders)))


class ReferenceSupConLoss(nn.Module):
    """The SupCon loss computed the reference's way, all views as anchors.

    ``features`` ``(B, V, D)`` (L2-normalised) are laid out view-major as ``(V·B, D)``; the
    positives mask (same label, not the anchor itself) and the non-self mask are dense
    ``(V·B, V·B)`` float masks; the logits ``p_i·p_a/τ`` have their row maximum subtracted, the
    log-probabilities use ``log(Σ_{a≠i} exp + 1e-9)``, and the loss is
    ``−(τ/τ_base) · mean_i mean_{p∈P(i)} log_prob(i, p)``: ``τ/τ_base`` times the L_out loss of
    ``ncib.losses.supcon_loss`` (``docs/math.md``).
    """

    def __init__(
        self, temperature: float = TEMPERATURE, base_temperature: float = BASE_TEMPERATURE
    ):
        super().__init__()
        self.temperature, self.base_temperature = float(temperature), float(base_temperature)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        b, v = features.shape[:2]
        contrast = torch.cat(torch.unbind(features, dim=1), dim=0)
        same_label = torch.eq(labels.view(-1, 1), labels.view(1, -1)).float().repeat(v, v)
        not_self = 1.0 - torch.eye(b * v, device=features.device)
        positives = same_label * not_self
        logits = torch.matmul(contrast, contrast.T) / self.temperature
        logits = logits - logits.max(dim=1, keepdim=True).values.detach()
        denominator = (torch.exp(logits) * not_self).sum(dim=1, keepdim=True)
        log_prob = logits - torch.log(denominator + 1e-9)
        mean_positive = (positives * log_prob).sum(dim=1) / positives.sum(dim=1)
        return -(self.temperature / self.base_temperature) * mean_positive.mean()


class ReferenceLoop:
    """Both members trained the reference's way, step by step; times data wait and model."""

    def __init__(
        self,
        backbone,
        images: torch.Tensor,
        labels: torch.Tensor,
        mean,
        std,
        *,
        batch_size: int,
        workers: int,
        device: torch.device,
        amp: str | None,
    ):
        self.device = device
        self.members = [seeded_member(backbone, s).to(device) for s in SEEDS]
        self.optimizers = [OPTIMIZER(m.parameters()) for m in self.members]
        self.criterion = ReferenceSupConLoss()
        self.amp = {None: None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.amp == torch.float16)
        data = MemberPairDataset(
            images.permute(0, 2, 3, 1).contiguous().numpy(),
            labels.numpy(),
            reference_transform(mean, std),
        )
        self.loader = DataLoader(
            data,
            batch_sampler=MemberOrders(len(data), batch_size, SEEDS),
            num_workers=workers,
            pin_memory=device.type == "cuda",
            persistent_workers=workers > 0,
        )
        self.batches = iter(self.loader)  # workers start now, before any timing
        self.data: list[float] = []
        self.model: list[float] = []

    def member_step(self, member, optimizer, views, labels) -> float:
        images = torch.cat(views, dim=0).to(self.device, non_blocking=True)
        labels = labels.to(self.device, non_blocking=True)
        b = labels.shape[0]
        autocast = (
            torch.autocast(self.device.type, dtype=self.amp)
            if self.amp is not None
            else torch.autocast(self.device.type, enabled=False)
        )
        with autocast:
            features = member(images)
            first, second = torch.split(features, [b, b], dim=0)
            loss = self.criterion(torch.stack([first, second], dim=1), labels)
        optimizer.zero_grad()
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizer)
        self.scaler.update()
        return loss.item()  # the reference logs every step's loss

    def run(self, steps: int) -> None:
        previous = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("highest")  # PyTorch's default, as the reference runs
        try:
            with torch.enable_grad():
                for m in self.members:
                    m.train()
                mark = clock(self.device)
                for _ in range(steps):
                    batch = next(self.batches)
                    fetched = time.perf_counter()
                    for member, optimizer, (views, labels) in zip(
                        self.members, self.optimizers, batch
                    ):
                        self.member_step(member, optimizer, views, labels)
                    end = clock(self.device)
                    self.data.append(fetched - mark)
                    self.model.append(end - fetched)
                    mark = end
        finally:
            torch.set_float32_matmul_precision(previous)


# -- schedule and timing -------------------------------------------------------------------------
def round_plan(steps: int, round_steps: int, settle: int, warmup: int) -> list[tuple[int, int]]:
    """``[(untimed, timed)]`` per round: ``steps`` timed steps in rounds of ``round_steps``;
    each round first runs ``settle`` untimed steps, the first round also ``warmup``."""
    plan = []
    for r in range(math.ceil(steps / round_steps)):
        plan.append((settle + (warmup if r == 0 else 0), min(round_steps, steps - r * round_steps)))
    return plan


class PathTimes:
    """Per-step data / augment / model seconds of one path, and which steps are timed."""

    def __init__(self):
        self.data, self.augment, self.model, self.timed = [], [], [], []

    def summary(self, images_per_step: int) -> dict:
        pick = [i for i, t in enumerate(self.timed) if t]
        data = [self.data[i] for i in pick]
        model = [self.model[i] for i in pick]
        total = [d + m for d, m in zip(data, model)]
        mean = statistics.mean(total)
        out = {
            "step_ms": 1e3 * mean,
            "step_ms_median": 1e3 * statistics.median(total),
            "step_ms_min": 1e3 * min(total),
            "step_ms_max": 1e3 * max(total),
            "data_ms": 1e3 * statistics.mean(data),
            "model_ms": 1e3 * statistics.mean(model),
            "images_per_s": images_per_step / mean,
            "first_step_s": self.data[0] + self.model[0],
        }
        if self.augment:
            out["augment_ms"] = 1e3 * statistics.mean(self.augment[i] for i in pick)
        return out


class Rounds(pl.Callback):
    """Times ncib's steps inside the fit and, after each of its rounds, runs the reference's."""

    def __init__(self, device, dm: SyntheticCIFAR, plan, reference: ReferenceLoop | None):
        self.device, self.dm, self.plan, self.reference = device, dm, plan, reference
        self.ncib, self.peak_mem = PathTimes(), {"ncib": 0, "reference": 0}
        self.round_ends, end = {}, 0
        for r, (untimed, timed) in enumerate(plan):
            self.ncib.timed += [False] * untimed + [True] * timed
            end += untimed + timed
            self.round_ends[end] = r
        self._mark = None

    def _reset_peak(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def _read_peak(self, path):
        if self.device.type == "cuda":
            self.peak_mem[path] = max(
                self.peak_mem[path], torch.cuda.max_memory_allocated(self.device)
            )

    def on_train_epoch_start(self, trainer, pl_module):
        self._reset_peak()
        self._mark = clock(self.device)
        self.dm.augment_s = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        now = clock(self.device)
        if "views" not in batch["m0"]:  # the views must already be made when this runs
            raise RuntimeError(
                "on_train_batch_start got a batch without views; timing would be wrong"
            )
        self.ncib.data.append(now - self._mark)
        self.ncib.augment.append(self.dm.augment_s)
        self.dm.augment_s = 0.0
        self._mark = now

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        now = clock(self.device)
        self.ncib.model.append(now - self._mark)
        done = len(self.ncib.model)
        if done in self.round_ends and self.reference is not None:
            self._read_peak("ncib")
            untimed, timed = self.plan[self.round_ends[done]]
            self._reset_peak()
            self.reference.run(untimed + timed)
            self._read_peak("reference")
            self._reset_peak()
            now = clock(self.device)
        self._mark = now

    def on_train_end(self, trainer, pl_module):
        self._read_peak("ncib")


def forward_flops_per_image(backbone) -> float:
    """FLOPs of encoder + head forward per image (``torch.utils.flop_counter``, 2 per MAC),
    counted on the CPU for a batch of two."""
    from torch.utils.flop_counter import FlopCounterMode

    member = seeded_member(backbone, 0)
    x = torch.zeros(2, 3, 32, 32)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        member(x)
    return counter.get_total_flops() / x.shape[0]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backbone", choices=["resnet18", "resnet50", "convnet"], default="resnet18")
    p.add_argument(
        "--convnet-width", type=int, default=32, help="ConvNet width (features: 4 × width)"
    )
    p.add_argument("--batch-size", type=int, default=64, help="global batch per member")
    p.add_argument("--steps", type=int, default=3, help="timed steps of each path")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps of each path first")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument(
        "--train-size",
        type=int,
        default=None,
        help="images held (default: 50,000 or enough for the run)",
    )
    p.add_argument(
        "--fixed-jitter-order",
        action="store_true",
        help="brightness→contrast→saturation→hue instead of a random order per sample",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="PairedSupCon(compile=True): torch.compile each member's training path",
    )
    p.add_argument(
        "--compile-augment",
        action="store_true",
        help="also torch.compile SupConAugment.apply (benchmark-only hook)",
    )
    p.add_argument(
        "--cold-compile",
        action="store_true",
        help="compile into a fresh, empty Inductor cache (TORCHINDUCTOR_CACHE_DIR), so the compile time is that of a first run",
    )
    p.add_argument(
        "--reference",
        action="store_true",
        help="also time the reference-style loop, alternating in rounds",
    )
    p.add_argument(
        "--reference-amp",
        nargs="?",
        const="bf16",
        choices=["bf16", "fp16"],
        default=None,
        help="autocast for the reference loop (bare flag: bf16; fp16 uses a GradScaler); default float32",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=min(8, os.cpu_count() or 1),
        help="reference DataLoader workers",
    )
    p.add_argument(
        "--round-steps",
        type=int,
        default=None,
        help="timed steps per round and path (default: all in one round)",
    )
    p.add_argument(
        "--settle",
        type=int,
        default=None,
        help="untimed steps at the start of every round (default with --reference: 2 × workers, else 0)",
    )
    p.add_argument(
        "--peak-tflops",
        type=float,
        default=989.0,
        help="dense peak for the achieved share (default: H200 bf16)",
    )
    args = p.parse_args(argv)
    for name in ("batch_size", "steps", "round_steps", "convnet_width"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1; got {value}")
    for name in ("warmup", "workers", "settle"):
        value = getattr(args, name)
        if value is not None and value < 0:
            p.error(f"--{name} must be >= 0; got {value}")

    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    if cuda and not torch.cuda.is_available():
        p.error("--device cuda but torch.cuda.is_available() is False")
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    torch.set_float32_matmul_precision("high")
    if args.cold_compile:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="ncib-inductor-")
    settle = args.settle if args.settle is not None else (2 * args.workers if args.reference else 0)
    plan = round_plan(args.steps, args.round_steps or args.steps, settle, args.warmup)
    total = sum(u + t for u, t in plan)
    n = args.train_size or max(50_000, args.batch_size * (total + 1))
    if n < args.batch_size * total:
        p.error(
            f"--train-size {n} holds fewer than the {total} batches of {args.batch_size} the run needs in one epoch"
        )

    dm = SyntheticCIFAR(
        list(SEEDS),
        num_samples=n,
        random_order=not args.fixed_jitter_order,
        compile_augment=args.compile_augment,
        batch_size=args.batch_size,
        eval_batch_size=1024,
    )
    backbone = build_backbone(args.backbone, args.convnet_width)
    model = PairedSupCon(
        backbone=backbone,
        head=HEAD,
        optimizer=OPTIMIZER,
        scheduler=partial(warmup_cosine, warmup_epochs=10),
        seeds=list(SEEDS),
        temperature=TEMPERATURE,
        channels_last=cuda,
        compile=args.compile,
    )
    reference = None
    if args.reference:
        dm.setup("fit")
        images, labels = dm.splits["train"]
        reference = ReferenceLoop(
            backbone,
            images,
            labels,
            dm.mean,
            dm.std,
            batch_size=args.batch_size,
            workers=args.workers,
            device=device,
            amp=args.reference_amp,
        )
    rounds = Rounds(device, dm, plan, reference)
    trainer = pl.Trainer(
        accelerator="gpu" if cuda else "cpu",
        devices=1,
        precision="bf16-mixed" if cuda else "32-true",
        benchmark=cuda,
        max_steps=total,
        max_epochs=1,
        logger=False,
        callbacks=[rounds],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        use_distributed_sampler=False,
        num_sanity_val_steps=0,
    )
    start = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    wall = time.perf_counter() - start

    members, views = len(model.members), dm.views
    images_per_step = members * views * args.batch_size
    result = {"ncib": rounds.ncib.summary(images_per_step)}
    if reference is not None:
        ref_times = PathTimes()
        ref_times.data, ref_times.model = reference.data, reference.model
        ref_times.timed = [flag for u, t in plan for flag in [False] * u + [True] * t]
        result["reference"] = ref_times.summary(images_per_step)
        result["ratio"] = result["ncib"]["images_per_s"] / result["reference"]["images_per_s"]
    flops = 3 * forward_flops_per_image(backbone)
    result["train_flops_per_image"] = flops
    for path in ("ncib", "reference"):
        if path in result:
            r = result[path]
            r["tflops"] = r["images_per_s"] * flops / 1e12
            r["peak_share"] = r["tflops"] / args.peak_tflops if cuda else None
            r["peak_gpu_mem_gib"] = rounds.peak_mem[path] / 2**30 if cuda else None

    name = (
        torch.cuda.get_device_name(device) if cuda else f"CPU ({torch.get_num_threads()} threads)"
    )
    print(f"device            {name}; torch {torch.__version__}")
    print(
        f"setup             {members} members × {args.backbone}, batch {args.batch_size} per member, "
        f"{views} views, {n} synthetic CIFAR-shaped uint8 images"
    )
    print(
        f"ncib path         PairedSupCon (Lightning), augmentation on the device "
        f"(jitter order {'fixed' if args.fixed_jitter_order else 'random'}"
        f"{', compiled' if args.compile_augment else ''}), "
        f"{'bf16-mixed, channels_last' if cuda else 'float32'}"
        f"{', torch.compile' if args.compile else ''}"
    )
    if reference is not None:
        print(
            f"reference path    per-image PIL/torchvision augmentation in {args.workers} loader workers, "
            f"mask-based SupConLoss, NCHW, {args.reference_amp or 'float32'}, one member after the other"
        )
    print(
        f"schedule          {len(plan)} round(s) of ≤ {args.round_steps or args.steps} timed steps per path; "
        f"{settle} untimed at every round start, {args.warmup} more in the first "
        f"(fit wall time {wall:.1f} s)"
    )

    def report(path: str, r: dict, data_note: str, model_note: str):
        share = r["data_ms"] / r["step_ms"]
        print(
            f"{path:<9} step      {r['step_ms']:.1f} ms mean, {r['step_ms_median']:.1f} ms median "
            f"(min {r['step_ms_min']:.1f}, max {r['step_ms_max']:.1f})"
        )
        if "augment_ms" in r:
            wait = r["data_ms"] - r["augment_ms"]
            print(
                f"  data wait       {wait:.1f} ms ({100 * wait / r['step_ms']:.1f}%)  [loader, transfer]"
            )
            print(
                f"  augment         {r['augment_ms']:.1f} ms ({100 * r['augment_ms'] / r['step_ms']:.1f}%)  [make_views of both members, on the device]"
            )
        else:
            print(f"  data wait       {r['data_ms']:.1f} ms ({100 * share:.1f}%)  [{data_note}]")
        print(
            f"  model           {r['model_ms']:.1f} ms ({100 * (1 - share):.1f}%)  [{model_note}]"
        )

    report("ncib", result["ncib"], "", "forward, loss, backward, SGD of both members")
    if reference is not None:
        report(
            "reference",
            result["reference"],
            "blocked on the loader; workers augment",
            "transfer, forward, loss, backward, SGD, loss.item() of both members",
        )
    for path in ("ncib", "reference"):
        if path in result:
            r = result[path]
            peak = (
                f" ({100 * r['peak_share']:.1f}% of {args.peak_tflops:g} TFLOP/s)" if cuda else ""
            )
            mem = f"; peak GPU memory {r['peak_gpu_mem_gib']:.2f} GiB" if cuda else ""
            print(
                f"throughput {path:<9} {r['images_per_s']:.1f} view-images/s (= {members} members × "
                f"{views} views × {args.batch_size} / step time); {r['tflops']:.2f} TFLOP/s{peak}{mem}"
            )
    if reference is not None:
        print(f"ratio ncib/reference {result['ratio']:.3f}")
    print(
        f"FLOPs             {flops / 1e9:.3f} GFLOP per view-image trained (3 × encoder+head forward, "
        f"torch.utils.flop_counter)"
    )
    if args.compile or args.compile_augment:
        r = result["ncib"]
        print(
            f"compile           first ncib step {r['first_step_s']:.1f} s vs {r['step_ms_median'] / 1e3:.2f} s "
            f"median: ≈ {r['first_step_s'] - r['step_ms_median'] / 1e3:.1f} s compiling "
            f"({'fresh' if args.cold_compile else 'existing'} Inductor cache)"
        )
    return result


if __name__ == "__main__":
    main()
