"""``python -m ncib.run`` (or ``ncib``): compose → instantiate → fit → report.

    python -m ncib.run                                   # digits on the CPU, a few minutes
    python -m ncib.run dataset=cifar100 'seed_pair=[0,1]'  # the paper's setup
    python -m ncib.run -m 'seed_pair=[0,1],[2,3]' dataset=cifar10,cifar100

Configuration lives in ``conf/`` (shipped as ``ncib.conf``; docs/configuration.md); the run
directory Hydra creates holds the composed config (``.hydra/``), logs, checkpoints, analysis
records and the report.

The rooms are imported inside the functions that use them, not at the top: a refused config or a
wrong path fails in seconds, before Lightning, the models and W&B load.
"""

from __future__ import annotations

import logging
import os
from contextlib import ExitStack
from pathlib import Path

import hydra
from omegaconf import DictConfig

from ncib.config import objective, register, validate
from ncib.console import quiet_libraries

log = logging.getLogger("ncib")
CONFIG_PATH = "pkg://ncib.conf"  # conf/ of the repository, packaged as ncib.conf
SIGTERM_EXIT = 128 + 15  # a process ended by SIGTERM, as shells report it

register()
quiet_libraries()  # Lightning's tips and small-data warnings (ncib/console.py)


def instantiate_group(group: DictConfig | None, **extra_for: dict) -> list:
    """Instantiate every entry of a ``{name: {_target_: ...}}`` group; ``null`` entries are off.
    ``extra_for[name]`` holds extra keyword arguments for entry ``name``."""
    from hydra.utils import instantiate

    return [
        instantiate(node, **extra_for.get(name, {}))
        for name, node in (group or {}).items()
        if node is not None
    ]


def launched_as_rank_zero() -> bool:
    """Whether this process is rank 0 of its job, judged before any process group exists
    (submitit and SLURM tasks, torchrun, and Lightning's own DDP launcher each set one of these)."""
    names = ("SUBMITIT_LOCAL_GLOBALID", "SLURM_PROCID", "RANK", "LOCAL_RANK", "NODE_RANK")
    return all(os.environ.get(v, "0") == "0" for v in names)


def train(cfg: DictConfig) -> dict:
    """Fit the seed pair described by ``cfg``; returns the final logged metrics."""
    import pytorch_lightning as pl
    import torch
    from hydra.utils import instantiate

    from ncib.callbacks import AnalysisMemoryCheck, AtomicCheckpointIO
    from ncib.cluster import cluster_environment
    from ncib.rundir.resume import prepare_run_dir
    from ncib.tracking.wandb_run import init_kwargs as wandb_init_kwargs

    plan = prepare_run_dir(cfg, cfg.paths.output_dir, rank_zero=launched_as_rank_zero())
    torch.set_float32_matmul_precision(cfg.float32_matmul_precision)
    pl.seed_everything(cfg.seed_pair[0], workers=True, verbose=False)  # unseeded bits only
    datamodule = instantiate(cfg.dataset.datamodule)
    model = instantiate(cfg.model)
    # the analysis's memory per rank, checked at setup before the first step (docs/design.md §3b)
    callbacks = [*instantiate_group(cfg.callbacks), AnalysisMemoryCheck()]
    # a W&B service inherited from the process that started this one (a notebook, a test) would
    # be shared with every run it starts, and still hold the run id of a killed attempt that
    # this one resumes ("run ID ... is in use"): each run talks to a service of its own
    os.environ.pop("WANDB_SERVICE", None)
    loggers = instantiate_group(cfg.logger, wandb=wandb_init_kwargs(cfg, plan.wandb_id))
    trainer = instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=loggers or False,
        plugins=[AtomicCheckpointIO(), *cluster_environment()],
    )
    log.info("run directory: %s", cfg.paths.output_dir)
    trainer.fit(model, datamodule=datamodule, ckpt_path=plan.ckpt_path)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    if trainer.is_global_zero:
        metrics |= after_fit(cfg, model, datamodule, trainer, loggers)
    finish(cfg, loggers)
    return metrics


def transfer(cfg: DictConfig) -> dict:
    """The zero-shot transfer experiment: analyse a pretrained pair on this dataset, no training."""
    from ncib.transfer import resolve_source, run_transfer

    resolve_source(cfg.transfer.source)  # a wrong source fails before anything is built
    loggers = instantiate_group(cfg.logger)
    log.info("run directory: %s", cfg.paths.output_dir)
    record = run_transfer(cfg, loggers)
    write_run_report(cfg, loggers)
    finish(cfg, loggers)
    return record["transfer"]["scalars"]


def finish(cfg: DictConfig, loggers) -> None:
    for lg in loggers:
        lg.finalize("success")
    if "wandb" in (cfg.logger or {}) and cfg.logger.wandb is not None:
        import wandb

        wandb.finish()


def after_fit(cfg: DictConfig, model, datamodule, trainer, loggers) -> dict:
    """The offline linear evaluation (Table 1), then the report; rank zero only."""
    from ncib.linear_eval import train_linear_evaluation, write_linear_eval
    from ncib.metrics import keys, logged_name
    from ncib.tracking.wandb_run import log_run_artifact

    out: dict = {}
    if cfg.linear_eval is not None:
        log.info("offline linear evaluation of the frozen members (Table 1)")
        device = trainer.strategy.root_device  # Lightning moved the model to the CPU after fit
        model.to(device)
        results = train_linear_evaluation(
            model, datamodule, cfg.linear_eval, accelerator=device.type
        )
        write_linear_eval(cfg.paths.output_dir, results)
        scalars = {logged_name("linear_eval", k): results[k] for k in keys("linear_eval")}
        for lg in loggers:
            lg.log_metrics(scalars, step=trainer.global_step)
        out |= scalars
    write_run_report(cfg, loggers)
    log_run_artifact(cfg.paths.output_dir, loggers)  # records, Table 1, report, figures
    return out


def write_run_report(cfg: DictConfig, loggers) -> None:
    """``report.md`` and its figures (``cfg.report``), also sent to W&B."""
    from pytorch_lightning.loggers import WandbLogger

    from ncib.report import write_report
    from ncib.report.report import NothingToReport
    from ncib.tracking.uploads import log_to_wandb

    if not cfg.report:
        return
    try:
        report = write_report(cfg.paths.output_dir)
    except (FileNotFoundError, NothingToReport) as err:
        log.warning("no report: %s", err)
        return
    log.info("report: %s", report.path)
    for lg in loggers:
        if isinstance(lg, WandbLogger):
            log_to_wandb(report, lg)


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="config")
def main(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig

    from ncib.rundir.lock import RunDirBusyError, holding_run_dir

    # the checks first, before Lightning is imported: a bad command line fails in seconds (the
    # error is raised, and recorded, inside _job, holding the run directory)
    try:
        validate(cfg)
        invalid = None
    except Exception as err:  # a ConfigError, or whatever a check met: recorded in _job
        invalid = err
    else:
        # Lightning is imported before the run directory is locked: a second start refused
        # while this one holds it puts back this start's Hydra files from .ncib/, which
        # prepare_run_dir writes, and that must follow the lock closely
        from ncib.rundir.resume import prepare_run_dir  # noqa: F401

    run_dir, rank_zero = Path(HydraConfig.get().runtime.output_dir), launched_as_rank_zero()
    with ExitStack() as held:
        if rank_zero:  # one process per run directory (ncib/rundir/lock.py)
            command = " ".join(["python -m ncib.run", *HydraConfig.get().overrides.task])
            try:
                held.enter_context(holding_run_dir(run_dir, f"{command} (training)"))
            except RunDirBusyError:
                from ncib.rundir.resume import restore_hydra_files

                restore_hydra_files(run_dir)  # Hydra wrote this start's config over the run's
                raise
        return _job(cfg, run_dir, rank_zero, invalid)


def _job(
    cfg: DictConfig, run_dir: Path, rank_zero: bool, invalid: Exception | None = None
) -> float | None:
    """Train (or transfer) a validated config, or raise ``invalid``, the error of its checks,
    recording how the job ends either way."""
    from ncib.rundir.outcome import recording_outcome

    # how this job ends, for the sweep report (ncib/rundir/outcome.py)
    with recording_outcome(run_dir, rank_zero):
        if invalid is not None:
            raise invalid
        from pytorch_lightning.utilities.exceptions import SIGTERMException

        if cfg.get("transfer") is not None:
            transfer(cfg)
            return None
        try:
            metrics = train(cfg)
        except SIGTERMException:
            # Lightning stops at the next batch; its SystemExit carries no code, so a scheduler
            # or an `&&` chain would read the killed job as a finished one
            log.warning(
                "stopped by SIGTERM: the run is not finished (no Table 1, no report); the same "
                "command resumes it from %s/checkpoints/last.ckpt; exit status %d",
                cfg.paths.output_dir,
                SIGTERM_EXIT,
            )
            raise SystemExit(SIGTERM_EXIT) from None
        # the optimised metric for a sweeper (hparams_search=...), from rank zero; else None
        return objective(cfg, metrics) if rank_zero else None


def quoting_hint(argv: list[str]) -> str | None:
    """A hint for an override whose value holds ``=`` unquoted (a path like
    ``…/epoch=0004.ckpt``), which Hydra's parser rejects without saying why; None otherwise."""
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or arg.startswith("-") or "=" not in value or value[:1] in "'\"[{":
            continue
        return (
            f"the override {arg!r} has '=' in its value, which Hydra's parser reads as a second "
            f"assignment: quote the value for Hydra (and the whole for the shell): "
            f"'{key}=\"{value}\"'"
            + (
                "; or give the run directory and the epoch: transfer.source=<run_dir> transfer.epoch=N"
                if key.lstrip("+~") == "transfer.source" and "epoch=" in value
                else ""
            )
        )
    return None


def cli() -> None:
    """The ``ncib`` command and ``python -m ncib.run``: :func:`main` behind a check of the
    command line that Hydra's parser would reject without a useful message."""
    import sys

    hint = quoting_hint(sys.argv[1:])
    if hint:
        print(f"ncib: {hint}", file=sys.stderr)
        raise SystemExit(2)
    main()


if __name__ == "__main__":
    cli()
