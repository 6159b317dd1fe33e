"""The offline linear evaluation of both members (the paper's Table 1), at the end of training or
standalone from a run directory:

    python -m ncib.linear_eval <run_dir> [key=value ...] [--checkpoint PATH] [--epochs N] [--output NAME] [--force]

``key=value`` changes the run's settings for this evaluation, e.g. ``linear_eval.batch_size=256``
(a run trained with a bad linear-evaluation setting is finished this way).

Writes ``<run_dir>/linear_eval.json``: test accuracy of m0, of m1, and the share of test samples
that both classify correctly. Each member's evaluation draws all its randomness (the linear
layer's initialisation, the data order, the views) from the member's own seed and
``linear_eval.seed``, so swapping the seed pair swaps Table 1 exactly, and a rerun on the same
checkpoint reproduces it (docs/design.md §6).

The rooms are imported inside the functions that use them, not at the top: a wrong path or
setting fails in seconds, before Lightning and the models load.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils.data import DataLoader, TensorDataset

from ncib.config import LINEAR_EVAL_VIEWS, ConfigError, check_linear_eval
from ncib.console import interactive
from ncib.data.base import EpochBatchSampler, IndexedTensors, mix_seed
from ncib.engine.features import member_features
from ncib.metrics import MEMBERS, key
from ncib.rundir.records import LINEAR_EVAL_FILE, atomic_write_bytes

__all__ = ["member_eval_seed", "train_linear_evaluation", "write_linear_eval"]
log = logging.getLogger("ncib.linear_eval")

_LINEAR_EVAL = 3  # stream of mix_seed reserved for the linear evaluation


def member_eval_seed(member_seed: int, eval_seed: int) -> int:
    """The seed of one member's linear evaluation: a function of its own seed, not its position."""
    return mix_seed(int(member_seed), _LINEAR_EVAL, int(eval_seed)) % 2**31


def _collate_xy(samples) -> dict:
    x, y = zip(*samples)
    return {"x": torch.stack(x), "y": torch.stack(y)}


def _feature_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    return DataLoader(
        TensorDataset(x, y),
        batch_size=batch_size,
        shuffle=True,
        generator=g,
        collate_fn=_collate_xy,
    )


VIEWS = LINEAR_EVAL_VIEWS


def _crop_flip(datamodule):
    """The reference linear evaluation's views: RandomResizedCrop(scale 0.2–1) and a horizontal
    flip, nothing else (no colour jitter, no grayscale)."""
    from ncib.data.supcon_augment import SupConAugment

    size = int(datamodule.splits["train"][0].shape[-1])
    return SupConAugment(size=size, scale=(0.2, 1.0), hflip_p=0.5, jitter_p=0.0, grayscale_p=0.0)


def _view_fn(datamodule, views: str):
    if views == "train":
        return datamodule.make_views
    augment = _crop_flip(datamodule)
    return lambda batch: datamodule.make_views(batch, augment=augment, views=1)


@torch.inference_mode()
def _split_logits(evaluator, datamodule, split: str, device) -> torch.Tensor:
    """Logits ``(N, K)`` of the encoder + linear layer on the un-augmented images of ``split``,
    in batches (nothing of the size of the split's features is kept)."""
    evaluator.to(device).eval()
    out = []
    for batch in datamodule.eval_dataloader(split):
        x = datamodule.eval_transform(batch["x"].to(device, non_blocking=True))
        out.append(evaluator(x).float())
    return torch.cat(out)


TOP_K = 5


def accuracies(logits: torch.Tensor, y: torch.Tensor, num_classes: int) -> tuple[float, float]:
    """Top-1 and top-5 accuracy of ``logits`` ``(N, K)`` against labels ``y``, as shares of the
    samples (torchmetrics' ``multiclass_accuracy``, micro average); with K ≤ 5 classes the
    top-5 accuracy is 1."""
    from torchmetrics.functional.classification import multiclass_accuracy

    def top(k: int) -> float:
        return float(
            multiclass_accuracy(logits, y, num_classes=num_classes, average="micro", top_k=k)
        )

    return top(1), top(min(TOP_K, num_classes))


def train_linear_evaluation(
    model, datamodule, cfg: DictConfig, accelerator: str = "auto", progress: bool = True
) -> dict:
    """Train one :class:`~ncib.models.LinearEvaluator` per member on its frozen encoder.

    ``cfg.views``: ``none`` trains on cached features of the plain training images (fast);
    ``crop_flip`` / ``train`` on views made each step and passed through the frozen encoder (the
    reference protocol; nothing of the size of the split's features is kept, so it scales to
    ImageNet32). ``cfg.standardize``: standardise the features with their training mean and std.

    Returns ``{"test_acc/m0", "test_acc/m1", "train_acc/m0", …, "test_top5/m0", …,
    "both_correct", "num_test", "seeds", "protocol"}`` (top-1 and top-5 accuracies as fractions,
    from torchmetrics; train accuracy on the plain images).
    """
    check_linear_eval(cfg)
    views = str(cfg.get("views", "none"))
    standardize = bool(cfg.get("standardize", True))
    datamodule.setup("fit")
    model.eval()
    device = next(model.parameters()).device
    y_train = datamodule.splits["train"][1].to(device)
    y_test = datamodule.splits["test"][1].to(device)
    cached = views == "none" or standardize
    if cached:
        train_feats = member_features(model, datamodule, "train", None, device, progress)
        test_feats = member_features(model, datamodule, "test", None, device, progress)
    results: dict = {}
    correct = []
    for m, (name, member) in enumerate(zip(MEMBERS, model.members, strict=True)):
        seed = member_eval_seed(model.seeds[m], cfg.seed)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)  # before the linear layer is built
            evaluator = instantiate(cfg.module)(
                encoder=copy.deepcopy(member.encoder),
                num_classes=datamodule.num_classes,
                inputs="features" if views == "none" else "images",
                view_fn=None if views == "none" else _view_fn(datamodule, views),
            )
            if standardize:
                evaluator.set_standardization(train_feats[m].cpu())
            if views == "none":
                loader = _feature_batches(
                    train_feats[m].cpu(), y_train.cpu(), int(cfg.batch_size), seed
                )
            else:
                images, labels = datamodule.splits["train"]
                loader = DataLoader(
                    IndexedTensors(images, labels),
                    sampler=EpochBatchSampler(len(labels), int(cfg.batch_size), seed),
                    batch_size=None,
                )
            trainer = pl.Trainer(
                accelerator=accelerator,
                devices=1,
                max_epochs=int(cfg.epochs),
                logger=False,
                enable_checkpointing=False,
                enable_model_summary=False,
                enable_progress_bar=progress and interactive(),  # no cursor codes in files
            )
            trainer.fit(evaluator, train_dataloaders=loader)
        if cached:
            logits = {
                s: evaluator.logits_features(f[m])
                for s, f in (("train", train_feats), ("test", test_feats))
            }
        else:
            logits = {s: _split_logits(evaluator, datamodule, s, device) for s in ("train", "test")}
        for split, y in (("train", y_train), ("test", y_test)):
            top1, top5 = accuracies(logits[split], y, datamodule.num_classes)
            results[key("{split}_acc/{member}", split=split, member=name)] = top1
            results[key("{split}_top5/{member}", split=split, member=name)] = top5
        correct.append(logits["test"].argmax(1) == y_test)
    results[key("both_correct")] = torch.stack(correct).all(0).float().mean().item()
    results["num_test"] = len(y_test)
    results["seeds"] = [int(s) for s in model.seeds]
    results["protocol"] = str(cfg.get("protocol", "cached"))
    return results


def write_linear_eval(run_dir: str | Path, results: dict, name: str = LINEAR_EVAL_FILE) -> Path:
    return atomic_write_bytes(Path(run_dir) / name, (json.dumps(results, indent=2) + "\n").encode())


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ncib.linear_eval", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("run_dir", type=Path)
    parser.add_argument(
        "overrides",
        nargs="*",
        help="key=value settings of the run's config to change, e.g. linear_eval.epochs=50",
    )
    parser.add_argument(
        "--checkpoint", type=Path, default=None, help="default: <run_dir>/checkpoints/last.ckpt"
    )
    parser.add_argument("--epochs", type=int, default=None, help="override linear_eval.epochs")
    parser.add_argument(
        "--output",
        default=LINEAR_EVAL_FILE,
        help=f"file name in run_dir (default {LINEAR_EVAL_FILE})",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing output file")
    args = parser.parse_args(argv)
    from ncib.engine.checkpoints import CheckpointError, load_pair_weights, load_weights
    from ncib.rundir import load_run_config

    cfg = load_run_config(args.run_dir, args.overrides, error=parser.error)
    eval_cfg = cfg.get("linear_eval")
    if eval_cfg is None:
        parser.error(
            f"{args.run_dir} was run without a linear evaluation (~linear_eval); nothing says how to evaluate"
        )
    if args.epochs is not None:
        eval_cfg.epochs = args.epochs
    try:  # before the minutes of loading and training, as python -m ncib.run checks them
        check_linear_eval(eval_cfg)
    except ConfigError as err:
        parser.error(str(err))
    out = args.run_dir / args.output
    if out.exists() and not args.force:
        parser.error(
            f"{out} exists; pass --output NAME to write beside it, or --force to replace it"
        )
    ckpt_path = args.checkpoint or args.run_dir / "checkpoints" / "last.ckpt"
    if not ckpt_path.exists():
        parser.error(f"checkpoint {ckpt_path} not found; pass --checkpoint")
    from ncib.rundir import RunDirError
    from ncib.rundir.lock import holding_run_dir

    try:
        with holding_run_dir(args.run_dir, "python -m ncib.linear_eval"):
            model = instantiate(cfg.model)
            fix = "pass --checkpoint another checkpoint of this run (checkpoints/previous.ckpt, …)"
            load_pair_weights(model, load_weights(ckpt_path, fix), ckpt_path, fix)
            model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
            datamodule = instantiate(cfg.dataset.datamodule)
            results = train_linear_evaluation(model, datamodule, eval_cfg)
            print(json.dumps(results, indent=2))
            print(f"wrote {write_linear_eval(args.run_dir, results, args.output)}")
    except (CheckpointError, RunDirError) as err:
        parser.error(str(err))


if __name__ == "__main__":
    main()
