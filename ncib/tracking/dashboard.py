"""``python -m ncib.dashboard --entity E --project P [--group G] [--objective O] [--dry-run]``:
a saved W&B report that reads like the paper, over the runs of a project.

Sections: Fig. 2 (NC1 against the identifiability of the pair), Fig. 3 A–D (probe accuracy,
equinorm, angle std, cosine mean; T_K against the raw features), identifiability (CCA mean and
std, CKA), information (in-sample against held-out I(X;Y)), Tables 1 and 2 (linear evaluation
and analysis probe accuracies) and the training losses. Curves are drawn against
``analysis/epoch`` (``epoch`` for training); the finished training runs (no crashed, running
or sweep-summary run) are grouped by their W&B group — one recipe, whatever sweep or command
ran it (``ncib.recipe.recipe_name``) — so each line is the mean over the recipe's seed pairs
with a ±1 std band. Objectives never share a group (the objective is part of the recipe; the
groups of ce, mse and simclr name it: ``digits/ce/convnet-1a2b3c4d``); ``--objective``
restricts the report to one objective's runs (``supcon``: also the runs made before the
objectives existed, which have no ``objective`` in their config).

Every key comes from the metric registry (``ncib/metrics/registry.py``, docs/metrics.md):
:func:`metric` refuses a template the registry does not hold. Building
(:func:`build_dashboard`) needs no network; ``--dry-run`` prints the panels; saving needs a W&B
login. Needs ``wandb-workspaces``: ``pip install 'ncib[dashboard]'``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from ncib.metrics import GROUPS, MEMBERS, key, keys, logged_name
from ncib.metrics.registry import METRICS, metric_of
from ncib.objectives import OBJECTIVES
from ncib.recipe import DEFAULT_OBJECTIVE
from ncib.report.catalogue import dashboard_charts
from ncib.tracking.wandb_run import SUMMARY_JOB_TYPE

__all__ = [
    "PANELS",
    "objective_filter",
    "Panel",
    "build_dashboard",
    "chart_keys",
    "describe",
    "logged_names",
    "main",
    "metric",
    "panel_keys",
]

ANALYSIS_STEP = "analysis/epoch"
EPOCH_STEP = "epoch"


def metric(template: str, **axes: str) -> str:
    """The logged name of a registered key: ``metric("nc1/{space}/{member}", space="raw",
    member="m0")`` → ``analysis/nc1/raw/m0``. Raises ``KeyError`` for a template the registry
    does not hold, ``ValueError`` for an axis value outside it."""

    owner = next((m.group for m in METRICS if m.template == template), None)
    if owner is None:
        raise KeyError(f"{template!r} is not a registered metric (ncib/metrics/catalogue.py)")
    return logged_name(owner, key(template, **axes))


def _members(template: str, **axes: str) -> tuple[str, ...]:
    return tuple(metric(template, member=m, **axes) for m in MEMBERS)


def logged_names() -> set[str]:
    """Every name a run logs: each registry scalar with its prefix, and the two step keys."""
    return {logged_name(g, k) for g in GROUPS for k in keys(g)} | {ANALYSIS_STEP, EPOCH_STEP}


@dataclass(frozen=True)
class Panel:
    """One chart: ``kind`` ``"line"`` (``y`` against ``x`` over the history) or ``"bar"``
    (the last value of each of ``y``, per group)."""

    section: str
    title: str
    y: tuple[str, ...]
    x: str | None = ANALYSIS_STEP
    kind: str = "line"
    log_x: bool = False
    log_y: bool = False

    def keys(self) -> tuple[str, ...]:
        return (*self.y, *((self.x,) if self.x else ()))


TABLES, TRAIN = "Tables 1 and 2 — accuracies at the end of training", "Training"


def logged(name: str) -> str:
    """The logged name of a registered key (its group's prefix added)."""
    metric = metric_of(name)
    if metric is None:
        raise KeyError(f"{name!r} is not a registered metric (ncib/metrics/catalogue.py)")
    return logged_name(metric.group, name)


def _figure_panels() -> list[Panel]:
    """The panels the report's figure specs declare (``ncib/report/catalogue.py``): a metric
    shown in a figure is shown on the dashboard by the same declaration."""
    return [
        Panel(
            c.section,
            c.title,
            tuple(logged(k) for k in c.y),
            x=ANALYSIS_STEP if c.x is None else logged(c.x),
            log_x=c.log_x,
            log_y=c.log_y,
        )
        for c in dashboard_charts()
    ]


def _table_and_training_panels() -> list[Panel]:
    return [
        Panel(
            TABLES,
            "Table 1 — offline linear evaluation, test accuracy",
            (*_members("{split}_acc/{member}", split="test"), metric("both_correct")),
            x=None,
            kind="bar",
        ),
        Panel(
            TABLES,
            "Table 2 — analysis probe test accuracy (raw, normal scores, T_K) at the last analysis",
            tuple(
                metric(
                    "probe/{split}_acc/{probe_input}/{member}",
                    split="test",
                    probe_input=s,
                    member=m,
                )
                for s in ("raw", "normal", "tk")
                for m in MEMBERS
            ),
            x=None,
            kind="bar",
        ),
        Panel(
            TRAIN,
            "training loss per member (the run's objective: SupCon, CE, MSE or SimCLR)",
            _members("train/loss/{member}"),
            x=EPOCH_STEP,
        ),
    ]


def _panels() -> list[Panel]:
    return [*_figure_panels(), *_table_and_training_panels()]


PANELS: tuple[Panel, ...] = tuple(_panels())


def _workspaces():
    try:
        import wandb_workspaces.reports.v2 as wr
        from wandb_workspaces import expr
    except ImportError as err:
        raise SystemExit(
            f"the dashboard needs wandb-workspaces ({err}); install it with pip install 'ncib[dashboard]'"
        ) from err
    return wr, expr


def objective_filter(expr, objective: str):
    """The W&B filter of the runs trained with ``objective`` (their config's ``objective``);
    for the default objective, every run whose ``objective`` is no other one, so that runs
    made before the key existed count as SupCon. Raises ``ValueError`` for an unknown name."""
    if objective not in OBJECTIVES:
        raise ValueError(
            f"--objective {objective!r} is not an objective: one of {', '.join(OBJECTIVES)}"
        )
    if objective == DEFAULT_OBJECTIVE:
        return expr.Config("objective").notin([o for o in OBJECTIVES if o != objective])
    return expr.Config("objective") == objective


def build_dashboard(
    entity: str,
    project: str,
    group: str | None = None,
    title: str | None = None,
    panels: tuple[Panel, ...] = PANELS,
    objective: str | None = None,
):
    """The W&B report object (``wandb_workspaces.reports.v2.Report``), built without network:
    one section per paper figure or table, the runs of ``project`` (of W&B group ``group``
    if given, of ``objective`` if given: :func:`objective_filter`) grouped by their W&B group,
    mean ± std over each group's seed pairs; objectives never share a group."""
    wr, expr = _workspaces()
    # finished training runs only: no crashed or running run, no sweep-summary run in a curve
    conditions = [
        expr.Metric("State") == "finished",
        expr.Metric("JobType") != SUMMARY_JOB_TYPE,
    ]
    if group:
        conditions.append(expr.Metric("Group") == group)
    if objective:
        conditions.append(objective_filter(expr, objective))
    filters = expr.And(*conditions)
    scope = " · ".join(x for x in (group, objective and f"objective={objective}") if x)

    def runset():
        return wr.Runset(
            entity=entity,
            project=project,
            name=scope or "all runs",
            filters=filters,
            groupby=["group"],
        )

    def chart(p: Panel):
        common = dict(
            title=p.title, groupby="Group", groupby_aggfunc="mean", groupby_rangefunc="stddev"
        )
        if p.kind == "bar":
            return wr.BarPlot(metrics=list(p.y), orientation="v", **common)
        return wr.LinePlot(
            x=p.x, y=list(p.y), log_x=p.log_x or None, log_y=p.log_y or None, title_x=p.x, **common
        )

    blocks: list = [
        wr.P(
            "Finished training runs grouped by W&B group (one recipe: runs that differ only in "
            "their seed pair, from any sweep or command; another objective is another group, "
            "named after it: <experiment>/<objective>/<backbone>-<id>, SupCon's without it); "
            "each curve is the mean over the group's seed pairs, the band ±1 std. "
            "Keys: docs/metrics.md."
        )
    ]
    for section in dict.fromkeys(p.section for p in panels):
        blocks += [
            wr.H2(section),
            wr.PanelGrid(
                runsets=[runset()], panels=[chart(p) for p in panels if p.section == section]
            ),
        ]
    return wr.Report(
        entity=entity,
        project=project,
        title=title or ("ncib — " + (scope or project))[:128],
        description="Wang & Palmer's figures and tables from ncib runs (python -m ncib.dashboard).",
        blocks=blocks,
    )


def chart_keys(chart) -> list[str]:
    """Every key a chart refers to: its y metrics (bar: its metrics), then its x-axis."""
    names = list(getattr(chart, "metrics", None) or []) + list(getattr(chart, "y", None) or [])
    x = getattr(chart, "x", None)
    names += [x] if isinstance(x, str) and x else []
    return [str(getattr(n, "name", n)) for n in names]


def panel_keys(report) -> list[tuple[str, list[str]]]:
    """(title, :func:`chart_keys`) for each chart of a built report."""
    return [
        (chart.title, chart_keys(chart))
        for block in report.blocks
        for chart in (getattr(block, "panels", None) or ())
    ]


def describe(report) -> str:
    """The report as text: its sections and, per chart, its kind, x-axis and keys."""
    lines = [f"# {report.title} ({report.entity}/{report.project})"]
    for block in report.blocks:
        if type(block).__name__ == "H2":
            lines += ["", f"## {block.text}"]
        for chart in getattr(block, "panels", None) or ():
            if hasattr(chart, "metrics"):
                lines.append(f"- [bars, last value] {chart.title}: " + ", ".join(chart_keys(chart)))
            else:
                lines.append(
                    f"- [line, x = {chart.x}] {chart.title}: " + ", ".join(chart_keys(chart)[:-1])
                )
        if hasattr(block, "runsets"):
            rs = block.runsets[0]
            lines.append(
                f"  runs: {rs.filters or 'all'}; grouped by {', '.join(rs.groupby)} (mean ± std)"
            )
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m ncib.dashboard", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--entity", required=True, help="W&B entity (user or team)")
    parser.add_argument(
        "--project", required=True, help="W&B project of the runs (logger.wandb.project)"
    )
    parser.add_argument(
        "--group",
        default=None,
        help="only this recipe: its W&B group, e.g. cifar10/resnet50-1a2b3c4d (python -m ncib.recipe <run_dir> prints a run's)",
    )
    parser.add_argument(
        "--objective",
        default=None,
        choices=list(OBJECTIVES),
        help="only the runs of this objective (supcon: also runs made before the objectives)",
    )
    parser.add_argument("--title", default=None, help="title of the report")
    parser.add_argument("--dry-run", action="store_true", help="print the panels; save nothing")
    args = parser.parse_args(argv)
    report = build_dashboard(
        args.entity, args.project, args.group, args.title, objective=args.objective
    )
    if args.dry_run:
        print(describe(report))
        return
    try:
        report.save()
    except Exception as err:  # not logged in, no network, no such project
        parser.exit(
            2,
            f"error: could not save the report to W&B ({err}); saving needs a login "
            "(wandb login, or WANDB_API_KEY); --dry-run shows the panels without one\n",
        )
    print(f"saved {report.url}")


if __name__ == "__main__":
    main()
