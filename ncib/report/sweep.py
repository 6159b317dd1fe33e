"""One report per sweep: ``python -m ncib.report <multirun_dir>``.

A sweep directory (Hydra's ``multirun.yaml`` and one run directory per job, by default
``<n>_<dataset>_seeds<a>-<b>/``, with ``experiment=objectives``
``<n>_<dataset>_<objective>_seeds<a>-<b>/``) gets ``sweep_report.md`` and ``sweep_figures/``:

* every planned job (the sweep's overrides expanded as Hydra's basic sweeper does) with its
  status (:mod:`ncib.report.jobs`: ``finished``, ``failed`` with the error it recorded,
  ``unfinished`` with what is missing, ``not started``). Nothing is dropped silently:
  aggregates say over how many finished runs they are;
* the runs grouped by recipe — their composed config minus the seed pair; the objective is
  part of it and of its label — and, per recipe, Tables 1 and 2 as mean ± std over the seed
  pairs of its finished runs (sample std, n − 1; :mod:`ncib.report.aggregate`), and when an
  objective trains a classifier (ce, mse) the NC3 table (supcon and simclr rows: "—");
* with two or more recipes (the objectives of ``experiment=objectives``), Figs. 2 and 3 and
  the classifier's NC3 with the recipes on the same axes, one colour and band each
  (:data:`ncib.report.catalogue.COMPARISON_FIGURES`);
* per recipe, the curves of Figs. 2 and 3 and of identifiability / information with bands:
  at each analysis epoch the mean ± std over pairs of the pair's value (per-member values are
  first averaged over the two members; :mod:`ncib.report.series`), drawn by the run report's
  own figure functions (:mod:`ncib.report.figures`); a figure the records cannot feed is
  listed with the registered keys they lack.

When the runs were logged to W&B, ``python -m ncib.report`` sends the same tables to W&B as
``wandb.Table`` s in a summary run of each recipe's W&B group (offline unless logged in;
``--no-wandb`` skips it; :mod:`ncib.tracking.uploads`).

This module puts those together; the names it always exported are still importable from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ncib.report import catalogue
from ncib.report.aggregate import (
    MeanStd,
    Recipe,
    group_recipes,
    mean_std,
    sweep_nc3_table,
    sweep_table1,
    sweep_table2,
)
from ncib.report.catalogue import why_not_drawn
from ncib.report.jobs import (
    FAILED,
    FINISHED,
    NOT_STARTED,
    SWEEP_FILE,
    UNFINISHED,
    Job,
    collect_jobs,
    is_sweep_dir,
)
from ncib.report.tables import Table

__all__ = [
    "SWEEP_FIGURES",
    "SWEEP_REPORT",
    "Job",
    "MeanStd",
    "Recipe",
    "SweepReport",
    "build_sweep_report",
    "is_sweep_dir",
    "mean_std",
    "write_sweep_report",
]
SWEEP_REPORT = "sweep_report.md"
SWEEP_FIGURES = "sweep_figures"
COMPARED = "compared"  # the comparisons' PNGs: sweep_figures/compared_<dataset>_<name>.png
STATUSES = (FINISHED, FAILED, UNFINISHED, NOT_STARTED)


def sweep_figures(recipe: Recipe, figdir: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """The figures of one recipe (:data:`ncib.report.catalogue.SWEEP_FIGURES`), mean ± std over
    its finished runs' pairs per epoch: those drawn (name → PNG) and those not drawn (name →
    why). Nothing for a recipe without a finished run."""
    jobs = [j for j in recipe.finished if j.records]
    if not jobs:
        return {}, {}
    runs = [j.records for j in jobs]
    num_classes = int(jobs[0].records[-1].get("num_classes") or 0)
    drawn, not_drawn = {}, {}
    for figure in catalogue.SWEEP_FIGURES:
        path = figdir / f"{recipe.slug}_{figure.name}.png"
        made = figure.draw(runs, num_classes, path, recipe.label)
        if made is None:
            not_drawn[figure.name] = why_not_drawn(figure, runs)
        else:
            drawn[figure.name] = made
    return drawn, not_drawn


def comparison_figures(
    recipes: list[Recipe], figdir: Path
) -> tuple[dict[str, dict[str, Path]], dict[str, dict[str, str]]]:
    """Each dataset's recipes on the same axes (:data:`ncib.report.catalogue.COMPARISON_FIGURES`),
    one band per recipe with finished runs: per dataset, those drawn (name → PNG,
    ``compared_<dataset>_<name>.png``) and those not drawn (name → why). Nothing for a dataset
    with fewer than two recipes with finished runs (datasets are never mixed on one axis: their
    classes, and so their ETF targets, differ)."""
    drawn: dict[str, dict[str, Path]] = {}
    not_drawn: dict[str, dict[str, str]] = {}
    for dataset in dict.fromkeys(r.dataset for r in recipes):
        having = [
            (r.legend or r.label, [j.records for j in r.finished if j.records])
            for r in recipes
            if r.dataset == dataset
        ]
        having = [(name, runs) for name, runs in having if runs]
        if len(having) < 2:
            continue
        everything = [rs for _, runs in having for rs in runs]
        num_classes = max(int(rs[-1].get("num_classes") or 0) for rs in everything)
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", dataset)
        for figure in catalogue.COMPARISON_FIGURES:
            path = figdir / f"{COMPARED}_{slug}_{figure.name}.png"
            made = figure.draw(having, num_classes, path)
            if made is not None:
                drawn.setdefault(dataset, {})[figure.name] = made
            elif figure.expected(everything):
                not_drawn.setdefault(dataset, {})[figure.name] = why_not_drawn(figure, everything)
    return drawn, not_drawn


# -- the report ------------------------------------------------------------------------------


@dataclass
class SweepReport:
    sweep_dir: Path
    jobs: list[Job]
    recipes: list[Recipe]
    tables: dict[str, Table]
    figures: dict[str, dict[str, Path]]
    markdown: str
    not_drawn: dict[str, dict[str, str]] = field(default_factory=dict)  # recipe → figure → why
    # each dataset's recipes on the same axes: dataset → figure → PNG, and → why not drawn
    compared: dict[str, dict[str, Path]] = field(default_factory=dict)
    compared_not_drawn: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.sweep_dir / SWEEP_REPORT

    def count(self, status: str) -> int:
        return sum(j.status == status for j in self.jobs)


def _runs_table(sweep_dir: Path, jobs: list[Job], recipes: list[Recipe]) -> Table:
    def row(job: Job) -> list:
        recipe = next((r.label for r in recipes if job in r.jobs), "—")
        where = job.run_dir.relative_to(sweep_dir).as_posix() if job.run_dir else "—"
        pair = "/".join(map(str, job.seed_pair)) if job.seed_pair else "—"
        return [job.num, where, pair, recipe, job.status, job.detail or "—"]

    return Table(
        "Runs",
        ["job", "run directory", "seed pair", "recipe", "status", "detail"],
        [row(j) for j in jobs],
    )


def _markdown(
    sweep_dir: Path,
    jobs: list[Job],
    recipes: list[Recipe],
    tables: dict[str, Table],
    figs: dict[str, dict[str, Path]],
    not_drawn: dict[str, dict[str, str]],
    compared: tuple[dict, dict] = ({}, {}),
) -> str:
    counts = {s: sum(j.status == s for j in jobs) for s in STATUSES}
    lines = [
        f"# ncib sweep report — {sweep_dir.name}",
        "",
        f"Sweep directory: `{sweep_dir}`. {len(jobs)} jobs: "
        + ", ".join(f"{n} {s}" for s, n in counts.items())
        + ".",
        "Regenerate with `python -m ncib.report <sweep_dir>`.",
        "",
    ]
    if counts[FAILED] + counts[UNFINISHED] + counts[NOT_STARTED]:
        lines += [
            "**Not every job finished**: the tables and figures aggregate the finished runs only; "
            "the others are listed below with what is missing.",
            "",
        ]
    lines += [_runs_table(sweep_dir, jobs, recipes).markdown()]
    for r in recipes:
        lines.append(
            f"- recipe **{r.label}**: {len(r.finished)} finished of {len(r.jobs)} runs "
            f"(seed pairs {', '.join('/'.join(map(str, j.seed_pair)) for j in r.finished) or 'none'})"
        )
    lines.append("")
    lines += [t.markdown() for t in tables.values()]
    drawn, why = compared
    if drawn or why:
        lines += ["## The recipes side by side", ""]
        captions = {f.name: f.caption for f in catalogue.COMPARISON_FIGURES}
    for dataset in dict.fromkeys([*drawn, *why]):
        shown = [r for r in recipes if r.dataset == dataset and r.finished]
        lines += [
            f"**{dataset}**: one colour per recipe: "
            + "; ".join(f"{r.legend or r.label} ({r.label})" for r in shown)
            + ".",
            "",
        ]
        for name, path in drawn.get(dataset, {}).items():
            rel = path.relative_to(sweep_dir).as_posix()
            lines += [f"{captions[name]}", "", f"![{dataset} {name}]({rel})", ""]
        missing = why.get(dataset, {})
        lines += [f"- not drawn: `{name}`: {w}." for name, w in missing.items()]
        lines += [""] if missing else []
    if any(figs.values()) or any(not_drawn.values()):
        lines += ["## Figures", ""]
    for label, made in figs.items():
        for name, path in made.items():
            rel = path.relative_to(sweep_dir).as_posix()
            lines += [f"**{label} — {name}**", "", f"![{name}]({rel})", ""]
    missing = [(label, n, why) for label, d in not_drawn.items() for n, why in d.items()]
    if missing:
        lines += [f"Not drawn ({len(missing)}):", ""]
        lines += [f"- {label} — `{name}`: {why}." for label, name, why in missing] + [""]
    return "\n".join(lines)


def build_sweep_report(sweep_dir: str | Path) -> SweepReport:
    """Collect the sweep's jobs, group them by recipe, aggregate, draw (writes the PNGs)."""
    sweep_dir = Path(sweep_dir)
    if not is_sweep_dir(sweep_dir):
        raise FileNotFoundError(
            f"{sweep_dir} is not a sweep directory: expected {sweep_dir / SWEEP_FILE}"
        )
    jobs = collect_jobs(sweep_dir)
    recipes = group_recipes(jobs)
    tables = {
        name: t
        for name, t in (
            ("table1", sweep_table1(recipes)),
            ("table2", sweep_table2(recipes)),
            ("nc3", sweep_nc3_table(recipes)),
        )
        if t
    }
    figdir = sweep_dir / SWEEP_FIGURES
    figdir.mkdir(exist_ok=True)
    made = {r.label: sweep_figures(r, figdir) for r in recipes}
    figs = {label: drawn for label, (drawn, _) in made.items()}
    not_drawn = {label: why for label, (_, why) in made.items() if why}
    compared = comparison_figures(recipes, figdir)
    markdown = _markdown(sweep_dir, jobs, recipes, tables, figs, not_drawn, compared)
    return SweepReport(sweep_dir, jobs, recipes, tables, figs, markdown, not_drawn, *compared)


def write_sweep_report(sweep_dir: str | Path) -> SweepReport:
    """Build the sweep report and write ``sweep_report.md`` (``python -m ncib.report`` then
    sends its tables to W&B: :func:`ncib.tracking.uploads.log_sweep_to_wandb`)."""
    report = build_sweep_report(sweep_dir)
    report.path.write_text(report.markdown)
    return report
