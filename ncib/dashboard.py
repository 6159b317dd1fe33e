"""``python -m ncib.dashboard --entity E --project P [--group G] [--dry-run]``: the saved W&B
report (dashboard) over a project's runs; its panels and how it is built:
:mod:`ncib.tracking.dashboard`."""

from ncib.tracking.dashboard import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
