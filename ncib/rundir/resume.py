"""Resume in place: re-running the same command in the same run directory continues the run.

A requeued cluster job runs ``python -m ncib.run <same overrides> hydra.run.dir=<same dir>``;
:func:`prepare_run_dir` then finds ``checkpoints/last.ckpt`` and:

* checks that the composed config is the one of the first start (kept in ``.ncib/``), except
  the keys of :data:`MAY_CHANGE_ON_RESUME`; a difference is an error naming the keys;
* puts back the first start's ``.hydra/overrides.yaml`` (Hydra rewrote it);
* drops what was written after the checkpoint and will be written again — records of later
  analysis epochs, CSV rows of later steps — so nothing is duplicated; unreadable record lines
  are set aside in ``analysis.jsonl.corrupt``;
* keeps the W&B run id (``.ncib/wandb_id``) so W&B continues the same run;
* logs the resume in ``.ncib/resumes.jsonl`` (the report mentions it).

``resume=false`` starts fresh and refuses a run directory that already holds a run.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ncib.config import ConfigError
from ncib.engine.plan import ANALYSIS_CALLBACK, ANALYSIS_GROUPS, EARLIER_CALLBACKS
from ncib.rundir.loggers import drop_csv_rows
from ncib.rundir.records import (
    LINEAR_EVAL_FILE,
    RECORDS_FILE,
    RESUMES_FILE,
    STATE_DIR,
    rewrite_records,
)
from ncib.rundir.run_config import fill_added_keys, flat_config

__all__ = ["MAY_CHANGE_ON_RESUME", "ResumePlan", "prepare_run_dir", "restore_hydra_files"]
log = logging.getLogger("ncib.rundir.resume")

STATE = STATE_DIR
MAY_CHANGE_ON_RESUME = (
    "trainer.max_epochs",
    "trainer.max_steps",
    "analysis.progress",
    "resume",
    "ckpt_path",
)
_HYDRA_OWN = {".hydra", "run.log"}  # what Hydra writes before ncib starts


@dataclass(frozen=True)
class ResumePlan:
    """What :func:`prepare_run_dir` decided: the checkpoint to resume from (None: fresh), the
    epochs it had completed, its optimiser step, and the W&B run id to use."""

    ckpt_path: Path | None
    epochs_done: int
    global_step: int
    wandb_id: str


def _in_this_layout(first: dict) -> dict:
    """The first start's config as this version of ncib lays the same run out, so that a run
    started before a change of layout resumes: one analysis callback and ``analysis.groups``
    where earlier runs had one callback per metric group (``ncib/engine/plan.py``)."""
    callbacks = first.get("callbacks") or {}
    earlier = {
        name: EARLIER_CALLBACKS[node["_target_"]]
        for name, node in callbacks.items()
        if isinstance(node, dict) and node.get("_target_") in EARLIER_CALLBACKS
    }
    if not earlier:
        return first
    kept = {name: node for name, node in callbacks.items() if name not in earlier}
    analysis = dict(first.get("analysis") or {})
    analysis["groups"] = [g for g in ANALYSIS_GROUPS if g in earlier.values()]
    return first | {
        "callbacks": kept | {"analysis": {"_target_": ANALYSIS_CALLBACK, "plan": "${analysis}"}},
        "analysis": analysis,
    }


def _config_changes(first: DictConfig, now: DictConfig) -> list[str]:
    # a run started before a key was added ran with its earlier value (ADDED_KEYS)
    first = fill_added_keys(_in_this_layout(OmegaConf.to_container(first, resolve=False)))
    a = flat_config(first, keep_empty=True)
    b = flat_config(OmegaConf.to_container(now, resolve=False), keep_empty=True)
    changed = []
    for key in sorted(set(a) | set(b)):
        if a.get(key, "<absent>") != b.get(key, "<absent>") and not key.startswith(
            MAY_CHANGE_ON_RESUME
        ):
            changed.append(f"{key}: {a.get(key, '<absent>')!r} → {b.get(key, '<absent>')!r}")
    return changed


def _checkpoint_position(path: Path) -> tuple[int, int]:
    """(epochs completed, optimiser steps) of a Lightning checkpoint saved at an epoch's end;
    an unusable file fails naming itself and what to do (ncib/engine/checkpoints.py)."""
    from ncib.engine.checkpoints import check_training_checkpoint

    ckpt = check_training_checkpoint(path)
    return int(ckpt["epoch"]) + 1, int(ckpt["global_step"])


def restore_hydra_files(run_dir: str | Path) -> None:
    """Put back the run's own ``.hydra/config.yaml`` and ``overrides.yaml`` (kept under
    ``.ncib/`` at its first start), which Hydra overwrote for a start that was then refused."""
    run_dir = Path(run_dir)
    for name in ("config.yaml", "overrides.yaml"):
        kept = run_dir / STATE / name
        if kept.is_file():
            shutil.copyfile(kept, run_dir / ".hydra" / name)


def _remove_leftover_temporaries(run_dir: Path) -> list[Path]:
    """Remove the temporary files of atomic writes a kill cut short (``.<name>.<random>.tmp``
    from :func:`ncib.rundir.records.atomic_write_bytes`, ``.previous.ckpt.tmp``): a checkpoint's can
    be as large as the checkpoint. Only the starting process of a run directory calls this."""
    found = [
        p
        for folder in (run_dir, run_dir / "checkpoints", run_dir / "checkpoints" / "analysis")
        if folder.is_dir()
        for p in folder.glob(".*.tmp")
        if p.is_file()
    ]
    for path in found:
        size = path.stat().st_size
        path.unlink(missing_ok=True)
        log.info("removed %s (%.1f MB), left by a write a kill cut short", path, size / 2**20)
    return found


def _only_the_lock(path: Path) -> bool:
    """Whether ``path`` is the state folder holding nothing but this process's lock
    (``ncib/rundir/lock.py``, taken before the run directory is prepared)."""
    return path.name == STATE and path.is_dir() and {p.name for p in path.iterdir()} <= {"lock"}


def _has_trained(run_dir: Path) -> bool:
    """Whether a start in ``run_dir`` left anything of a run: a training or analysis checkpoint,
    an analysis record, Table 1."""
    checkpoints = run_dir / "checkpoints"
    if checkpoints.is_dir() and any(checkpoints.rglob("*.ckpt")):
        return True
    records = run_dir / RECORDS_FILE
    return (records.is_file() and records.stat().st_size > 0) or (
        run_dir / LINEAR_EVAL_FILE
    ).exists()


@dataclass(frozen=True)
class _Files:
    """The run directory's own copies of its config and overrides (``.ncib/``) and Hydra's."""

    run_dir: Path

    @property
    def state(self) -> Path:
        return self.run_dir / STATE

    @property
    def first_cfg(self) -> Path:
        return self.state / "config.yaml"

    @property
    def first_overrides(self) -> Path:
        return self.state / "overrides.yaml"

    @property
    def hydra_cfg(self) -> Path:
        return self.run_dir / ".hydra" / "config.yaml"

    @property
    def hydra_overrides(self) -> Path:
        return self.run_dir / ".hydra" / "overrides.yaml"


def prepare_run_dir(cfg: DictConfig, run_dir: str | Path, rank_zero: bool = True) -> ResumePlan:
    """Decide whether this start resumes, and make the run directory consistent with it.

    The other processes of a multi-process job (``rank_zero=False``) only read the decision:
    the checkpoint to resume from.
    """
    run_dir = Path(run_dir)
    ckpt = _checkpoint_to_resume(cfg, run_dir)
    if not rank_zero:
        return ResumePlan(ckpt, *(_checkpoint_position(ckpt) if ckpt else (0, 0)), "")
    files = _Files(run_dir)
    resume = bool(cfg.get("resume", True))
    started_before = files.first_cfg.exists()
    if started_before and resume and not _has_trained(run_dir):
        # an earlier start failed before anything of a run was written (a bad setting, a
        # missing data set): the corrected command is a first start, not a changed resume
        log.info(
            "the earlier start in %s never trained (no checkpoint, no records): starting afresh "
            "with this config",
            run_dir,
        )
        started_before = False
    if not resume:
        _refuse_a_fresh_start_over_a_run(files)
    if started_before and resume:
        _check_the_config_of_a_resume(cfg, files)
    elif files.hydra_cfg.exists():
        files.state.mkdir(exist_ok=True)
        shutil.copyfile(files.hydra_cfg, files.first_cfg)
        if files.hydra_overrides.exists():
            shutil.copyfile(files.hydra_overrides, files.first_overrides)

    _remove_leftover_temporaries(run_dir)
    epochs_done, step = _checkpoint_position(ckpt) if ckpt is not None else (0, 0)
    kept = _rewind_to(run_dir, ckpt, epochs_done, step)
    files.state.mkdir(parents=True, exist_ok=True)
    _note_this_process(files.state)
    id_file = files.state / "wandb_id"
    if not id_file.exists():
        id_file.write_text(secrets.token_hex(4) + "\n")
    if ckpt is not None:
        _log_the_resume(run_dir, ckpt, epochs_done, step, kept)
    return ResumePlan(ckpt, epochs_done, step, id_file.read_text().strip())


def _checkpoint_to_resume(cfg: DictConfig, run_dir: Path) -> Path | None:
    """``ckpt_path`` when given; else the run's last checkpoint when resuming and it exists."""
    if cfg.get("ckpt_path"):
        return Path(cfg.ckpt_path)
    last = run_dir / "checkpoints" / "last.ckpt"
    return last if cfg.get("resume", True) and last.exists() else None


def _refuse_a_fresh_start_over_a_run(files: _Files) -> None:
    """``resume=false`` in a directory that holds a run: put back the run's own Hydra files
    (Hydra overwrote them for this start) and refuse."""
    run_dir = files.run_dir
    leftovers = (
        sorted(
            p.name for p in run_dir.iterdir() if p.name not in _HYDRA_OWN and not _only_the_lock(p)
        )
        if run_dir.exists()
        else []
    )
    if not leftovers:
        return
    for kept, hydras in (
        (files.first_cfg, files.hydra_cfg),
        (files.first_overrides, files.hydra_overrides),
    ):
        if kept.exists():
            shutil.copyfile(kept, hydras)
    raise ConfigError(
        f"resume=false starts a fresh run, but {run_dir} already holds one "
        f"({', '.join(leftovers[:5])}); choose an empty hydra.run.dir, or resume=true to continue it"
    )


def _check_the_config_of_a_resume(cfg: DictConfig, files: _Files) -> None:
    """A resume keeps the first start's overrides file; its config may differ from the first
    start's only in :data:`MAY_CHANGE_ON_RESUME` (an error naming the keys otherwise)."""
    if files.first_overrides.exists() and files.hydra_overrides.exists():
        shutil.copyfile(files.first_overrides, files.hydra_overrides)  # Hydra rewrote it
    first = OmegaConf.load(files.first_cfg)
    changes = _config_changes(first, cfg)
    before, now = first.trainer.get("max_epochs"), cfg.trainer.get("max_epochs")
    if not changes and before != now:
        log.warning(
            "trainer.max_epochs is %s now, %s at the first start: the learning-rate schedule "
            "is derived again for %s epochs and the resumed steps follow it from where it "
            "stands at the checkpoint's step (a cosine that had decayed for %s epochs rises "
            "to the longer schedule's value there); the records and Table 1 then describe a "
            "run of %s epochs",
            now, before, now, before, now,
        )  # fmt: skip
    if changes:
        shutil.copyfile(files.first_cfg, files.hydra_cfg)  # the run's config stays the one that ran
        raise ConfigError(
            f"resuming the run in {files.run_dir} with a config that differs from its first start "
            f"in {len(changes)} key(s): "
            + "; ".join(changes[:10])
            + f". Only {', '.join(MAY_CHANGE_ON_RESUME)} may change on resume; start a new run "
            "(another hydra.run.dir) to change anything else"
        )


def _rewind_to(run_dir: Path, ckpt: Path | None, epochs_done: int, step: int) -> int:
    """Drop the records and CSV rows written after the checkpoint (all of them for a fresh
    start: they are written again); returns the number of records kept."""
    records = run_dir / RECORDS_FILE
    if ckpt is None:
        kept, dropped = rewrite_records(records, keep=lambda r: False)
        rows = drop_csv_rows(run_dir / "csv" / "metrics.csv", lambda r: True)
    else:
        kept, dropped = rewrite_records(records, keep=lambda r: int(r["epoch"]) <= epochs_done)
        rows = drop_csv_rows(run_dir / "csv" / "metrics.csv", lambda r: _after(r, step))
    if dropped or rows:
        log.info(
            "dropped %d analysis record(s) and %d CSV row(s) written after the checkpoint",
            dropped,
            rows,
        )
    return kept


def _note_this_process(state: Path) -> None:
    """Which process runs this directory now (to find, signal or kill it; docs/cluster.md)."""
    (state / "process.json").write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                "job_id": os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_LOCAL_JOB_ID"),
            }
        )
        + "\n"
    )


def _log_the_resume(run_dir: Path, ckpt: Path, epochs_done: int, step: int, kept: int) -> None:
    with open(run_dir / RESUMES_FILE, "a") as f:
        f.write(
            json.dumps(
                {
                    "time": time.strftime("%Y-%m-%d %H:%M:%S"),
                    "checkpoint": str(ckpt),
                    "epochs_done": epochs_done,
                    "global_step": step,
                    "records_kept": kept,
                }
            )
            + "\n"
        )
    log.info("resuming from %s (after epoch %d, step %d)", ckpt, epochs_done, step)


def _after(row: dict, step: int) -> bool:
    """Whether a CSV row was logged after the checkpoint taken at optimiser step ``step``:
    a later step, or at that step anything but the analysis of the epoch that ended there
    (the learning-rate monitor logs the next epoch's rate at the same step)."""
    at = int(float(row.get("step") or 0))
    return at > step or (at == step and not row.get("analysis/epoch"))
