"""A run directory and everything that reads or writes it, apart from the science.

* :mod:`~ncib.rundir.run_config` — the run's composed config as the commands after training
  see it (``RunDirError``, ``check_run_dir``, ``load_run_config``, re-exported here);
* :mod:`~ncib.rundir.records` — the records file, atomic writes, file names;
* :mod:`~ncib.rundir.resume` — resume in place, the config check of a restart;
* :mod:`~ncib.rundir.lock` — one command at a time per run directory;
* :mod:`~ncib.rundir.loggers` — the CSV log, torn rows and rows a resume rewinds;
* :mod:`~ncib.rundir.outcome` — a job's recorded outcome (finished or failed, and why);
* :mod:`~ncib.rundir.trusted` — which ``_target_`` s a config read from disk may name;
* :mod:`~ncib.rundir.faults` — the crash-test hook the kill tests set.
"""

from ncib.rundir.run_config import (
    CONFIG_FILE,
    SWEEP_FILE,
    RunDirError,
    check_run_dir,
    flat_config,
    load_run_config,
)

__all__ = [
    "CONFIG_FILE",
    "SWEEP_FILE",
    "RunDirError",
    "check_run_dir",
    "flat_config",
    "load_run_config",
]
