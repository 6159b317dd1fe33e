"""Offline linear probes of both members (the paper's Table 1), at the end of fit or
standalone from a run directory:

    python -m ncib.probe <run_dir> [--checkpoint PATH] [--epochs N]

Writes ``<run_dir>/linear_probe.json``: test accuracy of m0, of m1, and the fraction of test
samples that both classify correctly.
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
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader, TensorDataset

from ncib.callbacks.features import member_features
from ncib.data.base import EpochBatchSampler, IndexedTensors
from ncib.records import PROBE_FILE

__all__ = ["train_linear_probes"]
log = logging.getLogger("ncib.probe")


def _collate_xy(samples) -> dict:
    x, y = zip(*samples)
    return {"x": torch.stack(x), "y": torch.stack(y)}


def _dict_batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True, generator=g, collate_fn=_collate_xy)


def train_linear_probes(model, datamodule, probe_cfg: DictConfig, accelerator: str = "auto", progress: bool = True) -> dict:
    """Train one :class:`~ncib.models.LinearProbe` per member on its frozen encoder.

    Returns ``{"test_acc/m0", "test_acc/m1", "train_acc/m0", …, "both_correct", "per_member"}``
    (accuracies as fractions).
    """
    datamodule.setup("fit")
    model.eval()
    device = model.device
    y_train, y_test = datamodule.splits["train"][1].to(device), datamodule.splits["test"][1].to(device)
    train_feats = member_features(model, datamodule, "train", None, device, progress)
    test_feats = member_features(model, datamodule, "test", None, device, progress)
    results: dict = {}
    correct = []
    for m, member in enumerate(model.members):
        name = f"m{m}"
        augment = bool(probe_cfg.get("augment", False))
        probe = instantiate(probe_cfg.module)(
            encoder=copy.deepcopy(member.encoder),
            num_classes=datamodule.num_classes,
            inputs="images" if augment else "features",
            view_fn=datamodule.make_views if augment else None,
        )
        probe.set_standardization(train_feats[m].cpu())
        if augment:
            images, labels = datamodule.splits["train"]
            loader = DataLoader(
                IndexedTensors(images, labels),
                sampler=EpochBatchSampler(len(labels), int(probe_cfg.batch_size), int(probe_cfg.seed) + m),
                batch_size=None,
            )
        else:
            loader = _dict_batches(train_feats[m].cpu(), y_train.cpu(), int(probe_cfg.batch_size), int(probe_cfg.seed) + m)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(probe_cfg.seed) + m)
            trainer = pl.Trainer(
                accelerator=accelerator, devices=1, max_epochs=int(probe_cfg.epochs), logger=False,
                enable_checkpointing=False, enable_model_summary=False, enable_progress_bar=progress,
            )
            trainer.fit(probe, train_dataloaders=loader)
        pred_train = probe.predict_features(train_feats[m])
        pred_test = probe.predict_features(test_feats[m])
        results[f"train_acc/{name}"] = (pred_train == y_train).float().mean().item()
        results[f"test_acc/{name}"] = (pred_test == y_test).float().mean().item()
        correct.append(pred_test == y_test)
    results["both_correct"] = torch.stack(correct).all(0).float().mean().item()
    results["num_test"] = len(y_test)
    return results


def write_probe_results(run_dir: str | Path, results: dict) -> Path:
    path = Path(run_dir) / PROBE_FILE
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ncib.probe", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--checkpoint", type=Path, default=None, help="default: <run_dir>/checkpoints/last.ckpt")
    parser.add_argument("--epochs", type=int, default=None, help="override probe.epochs")
    args = parser.parse_args(argv)
    from ncib.config import register

    register()
    cfg_path = args.run_dir / ".hydra" / "config.yaml"
    if not cfg_path.exists():
        parser.error(f"{cfg_path} not found: run_dir must be a run directory written by ncib.run")
    cfg = OmegaConf.load(cfg_path)
    cfg.paths.output_dir = str(args.run_dir)
    ckpt = args.checkpoint or args.run_dir / "checkpoints" / "last.ckpt"
    if not ckpt.exists():
        parser.error(f"checkpoint {ckpt} not found; pass --checkpoint")
    probe_cfg = cfg.get("probe") or OmegaConf.load(Path(__file__).resolve().parent.parent / "conf" / "probe" / "linear.yaml")
    if args.epochs is not None:
        probe_cfg.epochs = args.epochs
    model = instantiate(cfg.model)
    model.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"])
    model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
    results = train_linear_probes(model, instantiate(cfg.dataset.datamodule), probe_cfg)
    print(json.dumps(results, indent=2))
    print(f"wrote {write_probe_results(args.run_dir, results)}")


if __name__ == "__main__":
    main()
