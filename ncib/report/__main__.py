"""``python -m ncib.report <run_dir>``: (re)write ``<run_dir>/report.md`` and its figures."""

from __future__ import annotations

import argparse
from pathlib import Path

from ncib.report import write_report


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ncib.report", description=__doc__)
    parser.add_argument("run_dir", type=Path, help="a run directory written by python -m ncib.run")
    args = parser.parse_args(argv)
    try:
        report = write_report(args.run_dir)
    except FileNotFoundError as err:
        parser.exit(2, f"error: {err}\n")
    print(f"wrote {report.run_dir / 'report.md'} ({len(report.tables)} tables, {len(report.figures)} figures)")


if __name__ == "__main__":
    main()
