"""``python -m ncib.report <run_dir> [--records NAME]``: (re)write a run's report and figures
from its records alone (``analysis.jsonl`` → ``report.md``; ``analysis-<name>.jsonl`` from
``python -m ncib.analyse`` → ``report-<name>.md``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ncib.records import RECORDS_FILE
from ncib.report import write_report


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ncib.report", description=__doc__)
    parser.add_argument("run_dir", type=Path, help="a run directory written by python -m ncib.run")
    parser.add_argument("--records", default=RECORDS_FILE, help=f"records file in run_dir (default {RECORDS_FILE})")
    args = parser.parse_args(argv)
    try:
        report = write_report(args.run_dir, args.records)
    except FileNotFoundError as err:
        parser.exit(2, f"error: {err}\n")
    print(f"wrote {report.path} ({len(report.tables)} tables, {len(report.figures)} figures)")


if __name__ == "__main__":
    main()
