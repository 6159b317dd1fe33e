"""What ncib sends to W&B besides the training run's own logging: the run report's tables and
figures (into the run), and each sweep recipe's summary run (Tables 1 and 2 over its pairs).

Both are offline unless the user is logged in (:func:`ncib.tracking.mode.wandb_mode`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from ncib.report.aggregate import MeanStd
from ncib.report.tables import Table
from ncib.tracking.mode import wandb_mode
from ncib.tracking.wandb_run import SUMMARY_JOB_TYPE, group_name

if TYPE_CHECKING:  # the reports import this module to send themselves
    from ncib.report.report import Report
    from ncib.report.sweep import SweepReport

__all__ = ["log_sweep_to_wandb", "log_to_wandb"]


def log_to_wandb(report: Report, logger) -> None:
    """Send the report's tables (``wandb.Table``) and figures (images) to a ``WandbLogger``."""
    for name, table in report.tables.items():
        rows = [[v if v is not None else float("nan") for v in row] for row in table.rows]
        logger.log_table(key=f"report/{name}", columns=table.columns, data=rows)
    for name, path in report.figures.items():
        logger.log_image(key=f"report/{name}", images=[str(path)])


def _wandb_table(table: Table, keep: Callable[[list], bool]):
    """A ``wandb.Table`` of ``table``'s rows that ``keep`` selects; a :class:`MeanStd` cell
    becomes two numeric columns (``<column> mean``, ``<column> std``)."""
    import wandb  # here, not at the top: importing wandb takes seconds

    rows = [row for row in table.rows if keep(row)]
    columns = []
    for i, name in enumerate(table.columns):
        if any(isinstance(row[i], MeanStd) for row in table.rows):
            columns += [f"{name} mean", f"{name} std"]
        else:
            columns.append(name)
    data = []
    for row in rows:
        cells = []
        for i, v in enumerate(row):
            if any(isinstance(r[i], MeanStd) for r in table.rows):
                cells += [v.mean, v.std] if isinstance(v, MeanStd) else [None, None]
            else:
                cells.append(v)
        data.append(cells)
    return wandb.Table(columns=columns, data=data)


def log_sweep_to_wandb(report: SweepReport) -> list[str]:
    """One W&B summary run per recipe whose runs were logged to W&B (``logger.wandb`` on and a
    ``wandb/`` folder in the run directory): the recipe's rows of Tables 1 and 2 as
    ``sweep/table1``, ``sweep/table2`` (and ``sweep/nc3`` when an objective of the sweep trains
    a classifier), in the runs' W&B group (one per objective), ``job_type`` ``sweep-summary``.
    Offline unless logged in (``${ncib.wandb_mode:}``); the summary run's files are under
    ``<sweep_dir>/wandb/``. Returns the groups logged."""
    logged = []
    for recipe in report.recipes:
        runs = [
            j
            for j in recipe.jobs
            if j.config is not None
            and j.run_dir is not None
            and (j.config.get("logger") or {}).get("wandb") is not None
            and (j.run_dir / "wandb").is_dir()
        ]
        if not runs:
            continue
        import wandb  # here, not at the top: importing wandb takes seconds

        first = runs[0]
        settings = first.config.logger.wandb
        group = group_name(first.config, first.run_dir)
        run_id = hashlib.sha1(f"{report.sweep_dir.resolve()}|{group}".encode()).hexdigest()[:16]
        run = wandb.init(
            project=str(settings.get("project") or "ncib"),
            entity=settings.get("entity") or None,
            group=group,
            job_type=SUMMARY_JOB_TYPE,
            name=f"summary_{report.sweep_dir.name}",
            id=run_id,
            resume="allow",
            dir=str(report.sweep_dir),
            mode=wandb_mode(),
            config={
                "sweep_dir": str(report.sweep_dir),
                "recipe": recipe.label,
                "runs": [str(j.run_dir) for j in recipe.jobs if j.run_dir],
                "status": {str(j.num): j.status for j in recipe.jobs},
            },
            reinit="create_new",
        )
        try:
            run.log(
                {
                    f"sweep/{name}": _wandb_table(
                        t, lambda row, label=recipe.label: row[0] == label
                    )
                    for name, t in report.tables.items()
                }
            )
            run.summary.update(
                {"sweep/finished": len(recipe.finished), "sweep/runs": len(recipe.jobs)}
            )
        finally:
            run.finish()
        logged.append(group)
    return logged
