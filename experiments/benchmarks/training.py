"""Training throughput of the real path: a Lightning fit of ``PairedSupCon`` (two members) on
CIFAR-shaped data kept as uint8 on the training device, views made there by ``make_views``
(``SupConAugment``), bf16 autocast and channels_last on CUDA, float32 on the CPU.

    python experiments/benchmarks/training.py --backbone resnet18 --batch-size 64 --steps 3
    python experiments/benchmarks/training.py --device cuda --backbone resnet50 --batch-size 1024 --steps 20

A timing callback synchronises the device at the start and the end of every training batch:
* data  = end of the previous batch → ``on_train_batch_start``: loader (indices and seeds),
  transfer, and ``make_views`` for both members (augmentation on the device);
* model = ``on_train_batch_start`` → ``on_train_batch_end``: forward, SupCon loss, backward and
  the SGD step of both members.
The first ``--warmup`` steps are left out. Counting: a step trains each of the ``members`` on
``batch_size`` training images with ``views`` views each, so
``images/s = members × views × batch_size / step time`` (view-images through an encoder);
``samples/s per member = batch_size / step time`` is also printed.
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import pytorch_lightning as pl
import torch

from ncib.data.base import PairedViewDataModule
from ncib.data.color import SupConAugment
from ncib.models import ConvNet, PairedSupCon, ProjectionHead, cifar_resnet
from ncib.models.schedules import warmup_cosine


class SyntheticCIFAR(PairedViewDataModule):
    """Random uint8 ``(N, 3, 32, 32)`` images with 10 labels, CIFAR-10's normalisation."""

    num_classes = 10
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)

    def __init__(self, seeds, num_samples: int, random_order: bool = True, **kwargs):
        super().__init__(seeds, **kwargs)
        self.num_samples = int(num_samples)
        self.augment = SupConAugment(size=32, random_order=random_order)

    def load(self):
        g = torch.Generator().manual_seed(0)
        def split(n):
            return (torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g),
                    torch.randint(0, 10, (n,), generator=g))
        return {"train": split(self.num_samples), "test": split(1000)}


class StepTimer(pl.Callback):
    """Wall-clock time of the data part and the model part of every training batch."""

    def __init__(self, device: torch.device, warmup: int):
        self.device, self.warmup, self.data, self.model = device, int(warmup), [], []
        self._mark = None

    def _now(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module):
        self._mark = self._now()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        now = self._now()
        if "views" not in batch["m0"]:  # the views must already be made when this runs
            raise RuntimeError("on_train_batch_start got a batch without views; timing would be wrong")
        self.data.append(now - self._mark)
        self._mark = now

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        now = self._now()
        self.model.append(now - self._mark)
        self._mark = now
        if len(self.model) == self.warmup and self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)


def build_backbone(name: str):
    if name == "convnet":
        return partial(ConvNet, in_channels=3, feature_dim=128, width=32)
    return partial(cifar_resnet, name=name, in_channels=3)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backbone", choices=["resnet18", "resnet50", "convnet"], default="resnet18")
    p.add_argument("--batch-size", type=int, default=64, help="global batch per member")
    p.add_argument("--steps", type=int, default=3, help="timed steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--train-size", type=int, default=None, help="images held (default: 50,000 or enough for the run)")
    p.add_argument("--fixed-jitter-order", action="store_true", help="brightness→contrast→saturation→hue instead of a random order per sample")
    args = p.parse_args(argv)

    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    if cuda and not torch.cuda.is_available():
        p.error("--device cuda but torch.cuda.is_available() is False")
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    torch.set_float32_matmul_precision("high")
    total = args.warmup + args.steps
    n = args.train_size or max(50_000, args.batch_size * (total + 1))
    if n < args.batch_size * total:
        p.error(f"--train-size {n} holds fewer than the {total} batches of {args.batch_size} the run needs in one epoch")

    dm = SyntheticCIFAR([0, 1], num_samples=n, random_order=not args.fixed_jitter_order,
                        batch_size=args.batch_size, eval_batch_size=1024)
    model = PairedSupCon(
        backbone=build_backbone(args.backbone),
        head=partial(ProjectionHead, out_dim=128),
        optimizer=partial(torch.optim.SGD, lr=0.5, momentum=0.9, weight_decay=1e-4),
        scheduler=partial(warmup_cosine, warmup_epochs=10),
        seeds=[0, 1],
        temperature=0.1,
        channels_last=cuda,
    )
    timer = StepTimer(device, args.warmup)
    trainer = pl.Trainer(
        accelerator="gpu" if cuda else "cpu", devices=1,
        precision="bf16-mixed" if cuda else "32-true", benchmark=cuda,
        max_steps=total, max_epochs=1, logger=False, callbacks=[timer],
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        use_distributed_sampler=False, num_sanity_val_steps=0,
    )
    start = time.perf_counter()
    trainer.fit(model, datamodule=dm)
    wall = time.perf_counter() - start

    data, step = timer.data[args.warmup:], timer.model[args.warmup:]
    totals = [d + m for d, m in zip(data, step)]
    members, views = len(model.members), dm.views
    mean_total = statistics.mean(totals)
    result = {
        "step_ms": 1e3 * mean_total,
        "step_ms_median": 1e3 * statistics.median(totals),
        "data_ms": 1e3 * statistics.mean(data),
        "model_ms": 1e3 * statistics.mean(step),
        "images_per_s": members * views * args.batch_size / mean_total,
        "samples_per_s_per_member": args.batch_size / mean_total,
        "peak_gpu_mem_gib": torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None,
    }
    name = torch.cuda.get_device_name(device) if cuda else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device            {name}; torch {torch.__version__}")
    print(f"setup             PairedSupCon, {members} members × {args.backbone}, batch {args.batch_size} per member, "
          f"{views} views, {'bf16-mixed, channels_last' if cuda else 'float32'}, "
          f"jitter order {'fixed' if args.fixed_jitter_order else 'random'}, {n} images held")
    print(f"steps             {args.steps} timed after {args.warmup} warm-up (fit wall time {wall:.1f} s)")
    print(f"step              {result['step_ms']:.1f} ms mean, {result['step_ms_median']:.1f} ms median "
          f"(min {1e3 * min(totals):.1f}, max {1e3 * max(totals):.1f})")
    share = result["data_ms"] / result["step_ms"]
    print(f"  data + augment  {result['data_ms']:.1f} ms ({100 * share:.1f}%)  [loader, transfer, make_views of both members]")
    print(f"  model step      {result['model_ms']:.1f} ms ({100 * (1 - share):.1f}%)  [forward, loss, backward, SGD of both members]")
    print(f"throughput        {result['images_per_s']:.0f} images/s (= {members} members × {views} views × "
          f"{args.batch_size} / step time); {result['samples_per_s_per_member']:.0f} training samples/s per member")
    if cuda:
        print(f"peak GPU memory   {result['peak_gpu_mem_gib']:.2f} GiB (timed steps)")
    return result


if __name__ == "__main__":
    main()
