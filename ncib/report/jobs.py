"""The jobs of a Hydra sweep: which were planned, where each one's run directory is, and how far
each got (``finished``, ``failed``, ``unfinished``, ``not started``), read from the files alone.

* ``finished``: records of every planned analysis epoch, ``linear_eval.json`` and the report;
* ``failed``: the job raised: its recorded outcome says so, with the error
  (:mod:`ncib.rundir.outcome`);
* ``unfinished``: no error recorded, but records, ``linear_eval.json`` or the report missing
  (killed, timed out or still running);
* ``not started``: no run directory.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from ncib.rundir import SWEEP_FILE
from ncib.rundir.outcome import FAILED as OUTCOME_FAILED
from ncib.rundir.outcome import read_outcome
from ncib.rundir.records import (
    LINEAR_EVAL_FILE,
    RECORDS_FILE,
    read_linear_eval,
    read_records,
    report_names,
)

__all__ = [
    "FAILED",
    "FINISHED",
    "NOT_STARTED",
    "SWEEP_FILE",
    "UNFINISHED",
    "Job",
    "collect_jobs",
    "is_sweep_dir",
    "planned_epochs",
    "planned_overrides",
]
log = logging.getLogger("ncib.report")

FINISHED, FAILED, UNFINISHED, NOT_STARTED = "finished", "failed", "unfinished", "not started"


def is_sweep_dir(path: str | Path) -> bool:
    """Whether ``path`` is a Hydra sweep directory (it holds ``multirun.yaml``)."""
    return (Path(path) / SWEEP_FILE).is_file()


@dataclass
class Job:
    """One job of the sweep. ``status``: finished, failed, unfinished or not started."""

    num: int
    overrides: list[str]
    run_dir: Path | None = None
    status: str = NOT_STARTED
    detail: str = ""
    config: object = None  # the composed config (OmegaConf), when the job got that far
    records: list[dict] = field(default_factory=list)
    evaluation: dict | None = None

    @property
    def seed_pair(self) -> tuple[int, int] | None:
        if self.config is None:
            return None
        return tuple(int(s) for s in self.config.seed_pair)


def planned_overrides(sweep_dir: Path) -> list[list[str]] | None:
    """The overrides of every job, in job order, as Hydra's basic sweeper expands the sweep
    (None: another sweeper, or overrides that need Hydra's config loader, e.g. ``glob``)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    try:
        mr = OmegaConf.load(sweep_dir / SWEEP_FILE)
        sweeper = mr.hydra.get("sweeper") or {}
        if not str(sweeper.get("_target_", "")).endswith("BasicSweeper"):
            return None
        params = [f"{k}={v}" for k, v in (sweeper.get("params") or {}).items()]
        parsed = OverridesParser.create().parse_overrides([*params, *mr.hydra.overrides.task])
        return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    except Exception as err:  # an unusual sweep: fall back to the directories found
        log.warning(
            "could not expand the sweep of %s (%s); listing the run directories found",
            sweep_dir,
            err,
        )
        return None


def _run_dirs(sweep_dir: Path) -> dict[int, Path]:
    """Job number → run directory, from each directory's ``.hydra/hydra.yaml``."""
    from omegaconf import OmegaConf

    found: dict[int, Path] = {}
    for hydra_yaml in sorted(sweep_dir.glob("**/.hydra/hydra.yaml")):
        run_dir = hydra_yaml.parent.parent
        try:
            num = int(OmegaConf.load(hydra_yaml).hydra.job.num)
        except Exception:
            m = re.match(r"(\d+)_", run_dir.name)
            if m is None:
                continue
            num = int(m.group(1))
        found[num] = run_dir
    return found


def _recorded_outcomes(run_dirs: dict[int, Path]) -> dict[int, tuple[bool, str]]:
    """Job number → (failed, what) from the outcome each job recorded in its run directory
    (:mod:`ncib.rundir.outcome`; Hydra catches a job's exception, so the files alone cannot
    tell). submitit's pickles in ``.submitit/`` are never read: unpickling runs code."""

    out: dict[int, tuple[bool, str]] = {}
    for num, run_dir in run_dirs.items():
        outcome = read_outcome(run_dir)
        if outcome is not None and outcome["status"] == OUTCOME_FAILED:
            out[num] = (True, outcome["error"])
    return out


def planned_epochs(cfg) -> list[int]:
    """Every analysis epoch the run's analysis plan reaches (``ncib/engine/plan.py``)."""
    from ncib.engine.plan import plan_of_run  # the plan brings torch; the report needs none

    plan = plan_of_run(cfg)
    return [] if plan is None else plan.planned(int(cfg.trainer.max_epochs))


def _examine(job: Job, failure: tuple[bool, str] | None) -> None:
    """Fill in the job's config, records, evaluation and status from its run directory."""
    from omegaconf import OmegaConf

    if job.run_dir is None:
        job.status, job.detail = (
            (FAILED, failure[1])
            if failure and failure[0]
            else (NOT_STARTED, "no run directory (if it was launched: .submitit/*/*_log.err)")
        )
        return
    cfg_path = job.run_dir / ".hydra" / "config.yaml"
    if cfg_path.is_file():
        job.config = OmegaConf.load(cfg_path)
        if not job.overrides and (job.run_dir / ".hydra" / "overrides.yaml").is_file():
            job.overrides = [
                str(o) for o in OmegaConf.load(job.run_dir / ".hydra" / "overrides.yaml")
            ]
    if failure and failure[0]:
        job.status, job.detail = FAILED, failure[1]
        return
    if job.config is None:
        job.status, job.detail = UNFINISHED, "no composed config (.hydra/config.yaml)"
        return
    records_path = job.run_dir / RECORDS_FILE
    job.records = read_records(records_path) if records_path.is_file() else []
    evaluation = job.run_dir / LINEAR_EVAL_FILE
    job.evaluation = read_linear_eval(evaluation) if evaluation.is_file() else None
    missing = []
    planned = planned_epochs(job.config)
    done = {int(r["epoch"]) for r in job.records}
    if not set(planned) <= done:
        missing.append(
            f"{len(done & set(planned))} of {len(planned)} analysis records "
            f"(epochs {sorted(set(planned) - done)} missing)"
        )
    if job.config.get("linear_eval") is not None and job.evaluation is None:
        missing.append(f"no {LINEAR_EVAL_FILE}")
    if job.config.get("report", True) and not (job.run_dir / report_names()[0]).is_file():
        missing.append(f"no {report_names()[0]}")
    if missing:
        job.status, job.detail = UNFINISHED, "; ".join(missing)
    else:
        job.status, job.detail = FINISHED, f"{len(job.records)} analysis records"


def collect_jobs(sweep_dir: Path) -> list[Job]:
    """Every job of the sweep, planned or found, with its status."""
    planned = planned_overrides(sweep_dir)
    dirs = _run_dirs(sweep_dir)
    failures = _recorded_outcomes(dirs)
    nums = sorted(set(range(len(planned or []))) | set(dirs) | set(failures))
    jobs = []
    for num in nums:
        job = Job(num, list(planned[num]) if planned and num < len(planned) else [], dirs.get(num))
        try:
            _examine(job, failures.get(num))
        except Exception as err:  # a damaged or foreign file: this job is not averaged
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            job.status, job.detail = UNFINISHED, f"unreadable files ({type(err).__name__}: {first})"
            log.warning("job %d (%s): %s", num, job.run_dir, err)
        jobs.append(job)
    return jobs
