"""``python -m ncib.report <run_dir> [--records NAME]``: (re)write a run's report and figures
from its records alone (``analysis.jsonl`` → ``report.md``; ``analysis-<name>.jsonl`` from
``python -m ncib.analyse`` → ``report-<name>.md``).

``python -m ncib.report <multirun_dir> [--no-wandb]``: one report over every run of a Hydra
sweep (``multirun.yaml`` beside ``<n>_<dataset>_seeds<a>-<b>/``; ``experiment=objectives``:
``<n>_<dataset>_<objective>_seeds<a>-<b>/``) → ``sweep_report.md`` and ``sweep_figures/``:
Tables 1 and 2 (and NC3 for ce, mse) as mean ± std over seed pairs per recipe (each objective a
recipe of its own), the figures with bands, the recipes on the same axes, failed and unfinished
jobs listed; the tables also go to W&B when the runs went there."""

from __future__ import annotations

import argparse
from pathlib import Path

from ncib.report import is_sweep_dir, write_report, write_sweep_report
from ncib.rundir.records import RECORDS_FILE


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ncib.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "run_dir",
        type=Path,
        help="a run directory or a sweep (multirun) directory of python -m ncib.run",
    )
    parser.add_argument(
        "--records",
        default=RECORDS_FILE,
        help=f"records file in run_dir (default {RECORDS_FILE}; not for a sweep)",
    )
    parser.add_argument(
        "--no-wandb", action="store_true", help="sweep: do not send the tables to W&B"
    )
    args = parser.parse_args(argv)
    if is_sweep_dir(args.run_dir):
        if args.records != RECORDS_FILE:
            parser.error("--records applies to a run directory, not to a sweep")
        sweep = write_sweep_report(args.run_dir)
        if not args.no_wandb:  # imported here: W&B and Lightning load only to send the tables
            from ncib.tracking.uploads import log_sweep_to_wandb

            log_sweep_to_wandb(sweep)
        counts = ", ".join(
            f"{sweep.count(s)} {s}" for s in ("finished", "failed", "unfinished", "not started")
        )
        print(
            f"wrote {sweep.path} ({len(sweep.jobs)} jobs: {counts}; {len(sweep.recipes)} recipe(s))"
        )
        return
    try:
        report = write_report(args.run_dir, args.records)
    except (FileNotFoundError, ValueError) as err:  # missing, damaged or foreign files, named
        parser.exit(2, f"error: {err}\n")
    print(f"wrote {report.path} ({len(report.tables)} tables, {len(report.figures)} figures)")


if __name__ == "__main__":
    main()
