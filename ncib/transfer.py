"""The zero-shot transfer experiment (the paper's Table 3 and Fig. 4; docs/math.md §11):

    python -m ncib.run experiment=zero_shot_transfer transfer.source=<run_dir or checkpoint> dataset=cifar10
    python -m ncib.run experiment=zero_shot_transfer transfer.source=<run_dir> transfer.epoch=100

No training. The frozen encoders of a pretrained seed pair — the source run's backbone, weights
from its ``last.ckpt`` or the given checkpoint — extract features of the target dataset's train
and test splits; the full analysis runs once (:class:`ncib.engine.PairEpochAnalysis`), and for
each k of a grid the IB-k representation is evaluated (probe, NCC, NC4, α scaling) and K′ is
chosen (:mod:`ncib.analysis.ib_dimension`). One record goes to the run's ``analysis.jsonl``.

The engine is imported inside the functions: ``ncib.run`` imports this module for every run.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from ncib.config import ConfigError
from ncib.rundir import CONFIG_FILE, RunDirError, load_run_config

__all__ = ["resolve_source", "run_transfer"]
log = logging.getLogger("ncib.transfer")


def resolve_source(source: str | Path, epoch: int | None = None) -> tuple[Path, Path]:
    """``(run_dir, checkpoint)`` of a transfer source: a run directory (its
    ``checkpoints/last.ckpt``, or with ``epoch`` its analysis checkpoint of that epoch,
    ``checkpoints/analysis/epoch=NNNN.ckpt``) or a checkpoint file inside one. Fails naming the
    path and what was expected."""
    path = Path(str(source)).expanduser()
    if epoch is not None:
        from ncib.engine.checkpoints import analysis_checkpoint_path, list_analysis_checkpoints

        if not _is_epoch(epoch):
            raise ConfigError(
                f"transfer.epoch={epoch!r}: an analysis epoch (an integer >= 0) or null"
            )
        if not path.is_dir():
            raise RunDirError(
                f"transfer.epoch={epoch} picks an analysis checkpoint of a run directory, but "
                f"transfer.source={source} is not a directory; give the run directory"
            )
        ckpt = analysis_checkpoint_path(path, epoch)
        if not ckpt.is_file():
            saved = [e for e, _ in list_analysis_checkpoints(path)]
            raise RunDirError(
                f"transfer.source={path} has no weights of epoch {epoch} ({ckpt} is missing); "
                + (
                    f"its analysis checkpoints are of epochs {', '.join(map(str, saved))}"
                    if saved
                    else "it kept no analysis checkpoints (analysis.checkpoints=false?)"
                )
            )
        if not (path / CONFIG_FILE).is_file():
            raise RunDirError(
                f"transfer.source={path} is not an ncib run directory: it has no {CONFIG_FILE}"
            )
        return path, ckpt
    if not path.exists():
        raise RunDirError(
            f"transfer.source={source} does not exist; give the run directory of a pretrained pair "
            "(python -m ncib.run ...) or a checkpoint in its checkpoints/ folder"
        )
    if path.is_dir():
        ckpt = path / "checkpoints" / "last.ckpt"
        if not (path / CONFIG_FILE).is_file():
            raise RunDirError(
                f"transfer.source={path} is not an ncib run directory: it has no {CONFIG_FILE}"
            )
        if not ckpt.is_file():
            raise RunDirError(
                f"transfer.source={path} has no checkpoints/last.ckpt: did its training finish an epoch?"
            )
        return path, ckpt
    for parent in path.parents:  # checkpoints/last.ckpt or checkpoints/analysis/epoch=NNNN.ckpt
        if (parent / CONFIG_FILE).is_file():
            return parent, path
    raise RunDirError(
        f"transfer.source={path} is a file outside any ncib run directory (no {CONFIG_FILE} above it); "
        "the source's config says which backbone to build"
    )


def _is_epoch(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _architecture(backbone: DictConfig) -> dict:
    node = OmegaConf.to_container(backbone, resolve=True)
    return {k: v for k, v in node.items() if k != "_partial_"}


def run_transfer(cfg: DictConfig, loggers=()) -> dict:
    """Run the transfer described by ``cfg.transfer`` on ``cfg.dataset``; returns the record."""
    from hydra.utils import instantiate

    from ncib.engine import PairEpochAnalysis
    from ncib.engine.checkpoints import load_weights
    from ncib.engine.plan import analysis_plan
    from ncib.metrics.outputs import DEFAULT_GROUPS, transfer

    source_dir, ckpt_path = resolve_source(cfg.transfer.source, cfg.transfer.get("epoch"))
    source = load_run_config(source_dir)
    theirs, ours = _architecture(source.backbone), _architecture(cfg.backbone)
    if theirs != ours:
        raise ConfigError(
            f"transfer.source={source_dir} was trained with the backbone {theirs}, but this run's "
            f"config asks for {ours}; choose the same backbone (e.g. backbone=... on the command line)"
        )
    ckpt = load_weights(
        ckpt_path, "give transfer.source another run directory or checkpoint of the source run"
    )
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = instantiate(source.model)
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        raise RunDirError(
            f"{ckpt_path} does not hold the weights of the pair its run describes: {err}"
        ) from err
    model.to(device).eval()
    datamodule = instantiate(cfg.dataset.datamodule)
    settings = analysis_plan(cfg.analysis).settings  # the plan's when and which do not apply
    grid = None if cfg.transfer.grid is None else list(cfg.transfer.grid)
    epoch = int(ckpt.get("epoch", -1)) + 1 if "loops" in ckpt else int(ckpt.get("epoch", 0))
    log.info("zero-shot transfer of %s (%s) to %s", source_dir, ckpt_path.name, cfg.dataset.name)
    engine = PairEpochAnalysis(cfg.paths.output_dir, settings, loggers=loggers)
    return engine.run(
        model,
        datamodule,
        epoch,
        int(ckpt.get("global_step", 0)),
        list(DEFAULT_GROUPS),  # not classifier: the source's classes are not the target's
        device,
        extra={"transfer": lambda pa: transfer(pa, grid, float(cfg.transfer.tolerance))},
        meta={
            "source": {
                "run_dir": str(source_dir),
                "checkpoint": str(ckpt_path),
                "dataset": source.dataset.name,
                "seed_pair": list(source.seed_pair),
            }
        },
    )
