"""``python -m ncib.analyse <run_dir> [key=value ...]``: analyse a finished run again.

Every analysis epoch of the run kept the pair's weights (``checkpoints/analysis/``); this
command loads each of them and runs the same analysis as training did
(:class:`ncib.engine.PairEpochAnalysis`), with the run's composed config plus the overrides —
another ``analysis.k``, a larger ``analysis.max_samples`` — and writes a new records file beside
the old one (``analysis-<name>.jsonl``, never overwriting anything) and its report
(``report-<name>.md``, ``figures-<name>/``).

    python -m ncib.analyse outputs/digits/2026-11-28_10-00-00                 # the same analysis
    python -m ncib.analyse outputs/digits/2026-11-28_10-00-00 analysis.k=5 --name k5

Under ``torchrun`` the analysis is shared over its processes (docs/design.md §3a): each keeps a
shard of the training split, so a larger ``analysis.max_samples`` (or the whole split) fits
and takes less time; rank 0 writes the files.

    torchrun --nproc_per_node 4 -m ncib.analyse outputs/... analysis.max_samples=null --name all

The rooms are imported inside the functions that use them, not at the top: a wrong path or
setting fails in seconds, before torch, Lightning and the models load.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from pathlib import Path

__all__ = ["analyse_run", "main", "missing_epochs"]
log = logging.getLogger("ncib.analyse")


def _next_name(run_dir: Path) -> str:
    taken = {
        int(m.group(1))
        for p in run_dir.glob("analysis-*.jsonl")
        if (m := re.match(r"analysis-(\d+)\.jsonl$", p.name))
    }
    return str(max(taken, default=0) + 1)


def missing_epochs(run_dir: Path, saved, epochs=None) -> list[int]:
    """The epochs the run analysed in training (its ``analysis.jsonl``), or ``epochs`` when
    given, that have no saved weights among ``saved`` (``(epoch, path)``)."""
    from ncib.rundir.records import RECORDS_FILE, read_records

    if epochs is not None:
        wanted = {int(e) for e in epochs}
    elif (run_dir / RECORDS_FILE).is_file():
        wanted = {int(r["epoch"]) for r in read_records(run_dir / RECORDS_FILE)}
    else:
        wanted = set()
    return sorted(wanted - {e for e, _ in saved})


def _join_process_group():
    """The ``torchrun`` processes (``WORLD_SIZE`` > 1) as a collective for the engine, after
    joining their group (NCCL on GPUs, one per process by ``LOCAL_RANK``; gloo on CPUs); None
    for one process."""
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return None
    import torch
    import torch.distributed as dist

    from ncib.engine.features import TorchCollective

    if not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if cuda else "gloo")
    return TorchCollective()


def analyse_run(
    run_dir: str | Path,
    overrides=(),
    name: str | None = None,
    epochs=None,
    device=None,
    collective=None,
) -> Path:
    """Re-analyse the saved analysis checkpoints of ``run_dir``; returns the new records path.
    With a ``collective`` of several processes (:func:`_join_process_group`) every process calls
    this, the analysis is shared, and rank 0 alone writes."""
    import torch
    from hydra.utils import instantiate

    from ncib.engine import PairEpochAnalysis
    from ncib.engine.checkpoints import (
        ANALYSIS_CHECKPOINTS,
        analysis_checkpoint_path,
        list_analysis_checkpoints,
        load_pair_weights,
        load_weights,
    )
    from ncib.engine.plan import plan_of_run
    from ncib.rundir import RunDirError, load_run_config

    cfg = load_run_config(run_dir, overrides)
    run_dir = Path(run_dir)
    saved = list_analysis_checkpoints(run_dir)
    if epochs is not None:
        saved = [(e, p) for e, p in saved if e in set(epochs)]
    missing = missing_epochs(run_dir, saved, epochs)
    for epoch in missing:
        log.warning(
            "epoch %d is not re-analysed: its weights %s are missing", epoch,
            analysis_checkpoint_path(run_dir, epoch),
        )  # fmt: skip
    if not saved:
        raise RunDirError(
            f"{run_dir / ANALYSIS_CHECKPOINTS} holds no analysis checkpoints"
            + (f" for epochs {sorted(epochs)}" if epochs is not None else "")
            + (f" (missing: epochs {', '.join(map(str, missing))})" if missing else "")
            + " (epoch=NNNN.ckpt, kept at every analysis epoch unless analysis.checkpoints=false)"
        )
    try:
        plan = plan_of_run(cfg)
    except ValueError as err:
        raise RunDirError(
            f"the analysis settings of {run_dir} with {list(overrides)}: {err}"
        ) from None
    if plan is None:
        raise RunDirError(f"the config of {run_dir} has no analysis callback: nothing to analyse")
    rank = 0 if collective is None else collective.rank
    name = _choose_name(run_dir, name, collective)
    records_name = f"analysis-{name}.jsonl"
    cuda = torch.cuda.is_available()
    device = torch.device(device or (f"cuda:{torch.cuda.current_device()}" if cuda else "cpu"))
    model = instantiate(cfg.model).to(device)
    datamodule = instantiate(cfg.dataset.datamodule)
    _check_memory(plan.settings, model, datamodule, device, collective)  # before any file
    engine = PairEpochAnalysis(
        run_dir, plan.settings, records_name=records_name, collective=collective
    )
    if rank == 0:
        (run_dir / f"analysis-{name}.overrides").write_text("".join(f"{o}\n" for o in overrides))
    if missing and rank == 0:  # the report says which epochs it lacks and why
        (run_dir / f"analysis-{name}.missing").write_text(
            "".join(
                f"{e} {analysis_checkpoint_path(run_dir, e).relative_to(run_dir)}\n"
                for e in missing
            )
        )
    for epoch, path in saved:
        fix = f"re-analyse the other epochs with --epochs (found {', '.join(str(e) for e, _ in saved)})"
        ckpt = load_weights(path, fix)
        load_pair_weights(model, ckpt, path, fix)
        groups = list(plan.groups)  # every group, at every saved epoch
        log.info("epoch %d (%s): %s", epoch, path.name, ", ".join(groups))
        engine.run(model, datamodule, epoch, int(ckpt.get("global_step", 0)), groups, device)
    return run_dir / records_name


def _choose_name(run_dir: Path, name: str | None, collective) -> str:
    """The re-analysis's name: ``name``, or the next free one (rank 0's choice, broadcast when
    several processes share the re-analysis); refused when its records file exists."""
    from ncib.rundir import RunDirError
    from ncib.rundir.records import RECORDS_FILE

    rank = 0 if collective is None else collective.rank
    if collective is not None and collective.world > 1 and name is None:  # rank 0's choice
        import torch.distributed as dist

        chosen = [_next_name(run_dir) if rank == 0 else None]
        dist.broadcast_object_list(chosen, src=0)  # a short string between our own processes
        name = chosen[0]
    name = name or _next_name(run_dir)
    if not re.fullmatch(r"[A-Za-z0-9_.=+-]+", name):
        raise RunDirError(f"--name {name!r}: use letters, digits and _.=+- only")
    records_name = f"analysis-{name}.jsonl"
    if (rank == 0 and (run_dir / records_name).exists()) or records_name == RECORDS_FILE:
        raise RunDirError(
            f"{run_dir / records_name} exists; choose another --name (nothing is overwritten)"
        )
    return name


def _check_memory(settings, model, datamodule, device, collective) -> None:
    """Refuse a re-analysis whose analysis would not fit in the memory of each process, before
    any epoch is loaded: the check a training run makes (docs/design.md §3b), with the ranks of
    this job (``torchrun``: its processes; on the CPU, those of this host share its memory)."""
    import os

    from ncib.engine.memory import check_planned_analysis, pair_feature_dim
    from ncib.rundir import RunDirError

    datamodule.setup("fit")
    d = pair_feature_dim(model)
    if d is None:
        return
    world = 1 if collective is None else collective.world
    try:
        check_planned_analysis(
            settings,
            datamodule.splits,
            int(datamodule.num_classes),
            d,
            device,
            world=world,
            ranks_on_host=int(os.environ.get("LOCAL_WORLD_SIZE", world)),
        )
    except MemoryError as err:
        raise RunDirError(
            f"the re-analysis would not fit: {err} (for python -m ncib.analyse: analysis keys "
            "as overrides; more ranks: torchrun --nproc_per_node)"
        ) from None


def _to_wandb(run_dir: Path, records_name: str, overrides) -> None:
    """The re-analysis into the analysed run's W&B run (``ncib.tracking.wandb_run.log_reanalysis``);
    a failure there is logged, never loses the records and report already written."""
    from ncib.rundir import load_run_config
    from ncib.tracking.wandb_run import log_reanalysis

    try:
        log_reanalysis(
            run_dir, records_name, load_run_config(run_dir, overrides, to_instantiate=False)
        )
    except Exception as err:  # W&B down, a bad login: the files are what counts
        log.warning("the re-analysis was not sent to W&B: %s", err)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ncib.analyse",
        description=__doc__.split("\n\n")[0],
        epilog="overrides are key=value pairs of the run's composed config, e.g. analysis.k=5",
    )
    parser.add_argument("run_dir", type=Path, help="a run directory written by python -m ncib.run")
    parser.add_argument("overrides", nargs="*", help="key=value changes to the run's config")
    parser.add_argument(
        "--name", default=None, help="suffix of the new files (default: the next free number)"
    )
    parser.add_argument(
        "--epochs", type=int, nargs="+", default=None, help="only these analysis epochs"
    )
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s", stream=sys.stderr)

    from ncib.rundir import RunDirError, check_run_dir

    try:  # a missing or foreign directory fails before torch and the report load (seconds)
        check_run_dir(args.run_dir)
    except RunDirError as err:
        parser.exit(2, f"error: {err}\n")
    import contextlib

    from ncib.engine.checkpoints import CheckpointError
    from ncib.report import write_report
    from ncib.rundir.lock import holding_run_dir
    from ncib.rundir.trusted import UntrustedTargetError

    collective = _join_process_group()  # torchrun: the analysis shared over its processes
    rank = 0 if collective is None else collective.rank
    try:  # rank 0 holds the run directory for all (a failure there ends torchrun's job)
        with (
            holding_run_dir(args.run_dir, "python -m ncib.analyse")
            if rank == 0
            else contextlib.nullcontext()
        ):
            records = analyse_run(
                args.run_dir, args.overrides, args.name, args.epochs, args.device, collective
            )
            if rank == 0:
                report = write_report(args.run_dir, records.name)
                _to_wandb(args.run_dir, records.name, args.overrides)
    except (RunDirError, CheckpointError, UntrustedTargetError) as err:
        parser.exit(2, f"error: {err}\n")
    if collective is not None:
        import torch.distributed as dist

        dist.destroy_process_group()
    if rank == 0:
        print(f"wrote {records} and {report.path}")


if __name__ == "__main__":
    main()
