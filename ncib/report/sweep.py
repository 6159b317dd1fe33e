"""One report per sweep: ``python -m ncib.report <multirun_dir>``.

A sweep directory (Hydra's ``multirun.yaml`` and one run directory per job, by default
``<n>_<dataset>_seeds<a>-<b>/``) gets ``sweep_report.md`` and ``sweep_figures/``:

* every planned job (the sweep's overrides expanded as Hydra's basic sweeper does) with its
  status: ``finished``; ``failed`` (the job raised: its recorded outcome says so, with the
  error; ncib/job_outcome.py);
  ``unfinished`` (no error recorded, but records, ``linear_eval.json`` or the report missing:
  killed, timed out or still running); ``not started`` (no run directory). Nothing is dropped
  silently: aggregates say over how many finished runs they are;
* the runs grouped by recipe — their composed config minus the seed pair — and, per recipe,
  Tables 1 and 2 as mean ± std over the seed pairs of its finished runs (sample std, n − 1);
* per recipe, the curves of Figs. 2 and 3 and of identifiability / information with bands:
  at each analysis epoch the mean ± std over pairs of the pair's value (per-member values are
  first averaged over the two members).

When the runs were logged to W&B, the same tables go to W&B as ``wandb.Table`` s in a summary
run of each recipe's W&B group (offline unless logged in; ``--no-wandb`` skips it).
"""

from __future__ import annotations

import json
import logging
import math
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ncib.metrics import MEMBERS
from ncib.records import LINEAR_EVAL_FILE, RECORDS_FILE, read_linear_eval, read_records
from ncib.report.tables import Table, scalar

__all__ = [
    "SWEEP_FIGURES",
    "SWEEP_REPORT",
    "Job",
    "MeanStd",
    "Recipe",
    "SweepReport",
    "build_sweep_report",
    "is_sweep_dir",
    "log_sweep_to_wandb",
    "mean_std",
    "write_sweep_report",
]
log = logging.getLogger("ncib.report")

SWEEP_FILE = "multirun.yaml"
SWEEP_REPORT = "sweep_report.md"
SWEEP_FIGURES = "sweep_figures"
FINISHED, FAILED, UNFINISHED, NOT_STARTED = "finished", "failed", "unfinished", "not started"


def is_sweep_dir(path: str | Path) -> bool:
    """Whether ``path`` is a Hydra sweep directory (it holds ``multirun.yaml``)."""
    return (Path(path) / SWEEP_FILE).is_file()


# -- numbers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class MeanStd:
    """Mean and sample standard deviation (n − 1; None for one value) of ``n`` values."""

    mean: float
    std: float | None
    n: int

    def __str__(self) -> str:
        return f"{self.mean:.4g}" + (f" ± {self.std:.2g}" if self.std is not None else " (n=1)")


def mean_std(values: Sequence[float | None], scale: float = 1.0) -> MeanStd | None:
    """:class:`MeanStd` of the finite ``values`` times ``scale`` (None when there are none)."""
    vals = [scale * float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return None
    return MeanStd(
        statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else None, len(vals)
    )


# -- jobs ------------------------------------------------------------------------------------


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
    (:mod:`ncib.job_outcome`; Hydra catches a job's exception, so the files alone cannot
    tell). submitit's pickles in ``.submitit/`` are never read: unpickling runs code."""
    from ncib.job_outcome import FAILED as OUTCOME_FAILED
    from ncib.job_outcome import read_outcome

    out: dict[int, tuple[bool, str]] = {}
    for num, run_dir in run_dirs.items():
        outcome = read_outcome(run_dir)
        if outcome is not None and outcome["status"] == OUTCOME_FAILED:
            out[num] = (True, outcome["error"])
    return out


def planned_epochs(cfg) -> list[int]:
    """Every analysis epoch the run's analysis plan reaches (``ncib/engine/plan.py``)."""
    from ncib.engine.plan import plan_of_run

    plan = plan_of_run(cfg)
    return [] if plan is None else plan.planned(int(cfg.trainer.max_epochs))


def _examine(job: Job, failure: tuple[bool, str] | None) -> None:
    """Fill in the job's config, records, evaluation and status from its run directory."""
    from omegaconf import OmegaConf

    from ncib.records import report_names

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


# -- recipes ---------------------------------------------------------------------------------


@dataclass
class Recipe:
    """Runs of one recipe (:mod:`ncib.recipe`: composed configs that differ only in the seed
    pair and in run-only settings)."""

    label: str
    dataset: str
    backbone: str
    differs: list[str]  # key=value where this recipe differs from the sweep's other recipes
    jobs: list[Job]

    @property
    def finished(self) -> list[Job]:
        return [j for j in self.jobs if j.status == FINISHED]

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", self.label).strip("_")[:80] or "recipe"


def group_recipes(jobs: Sequence[Job]) -> list[Recipe]:
    """Group the jobs that have a composed config by :func:`ncib.recipe.recipe_of`."""
    from ncib.recipe import recipe_of
    from ncib.wandb_run import backbone_name

    by_key: dict[str, list[Job]] = {}
    flats: dict[str, dict] = {}
    for job in jobs:
        if job.config is None:
            continue
        flat = recipe_of(job.config)
        key = json.dumps(flat, sort_keys=True, default=str)
        by_key.setdefault(key, []).append(job)
        flats[key] = flat
    all_keys = set().union(*(f.keys() for f in flats.values())) if flats else set()
    varying = sorted(
        k for k in all_keys if len({json.dumps(f.get(k), default=str) for f in flats.values()}) > 1
    )
    recipes = []
    for i, (key, members) in enumerate(by_key.items()):
        cfg = members[0].config
        differs = [f"{k}={flats[key].get(k)}" for k in varying]
        dataset, backbone = str(cfg.dataset.name), backbone_name(cfg)
        label = (
            " · ".join([dataset, backbone, *differs])
            if differs or len(by_key) == 1
            else f"{dataset} · {backbone} · #{i}"
        )
        recipes.append(Recipe(label, dataset, backbone, differs, members))
    return recipes


# -- tables ----------------------------------------------------------------------------------


def sweep_table1(recipes: Sequence[Recipe]) -> Table | None:
    """Table 1 per recipe: offline linear evaluation test accuracy (%), mean ± std over pairs."""
    rows = []
    for r in recipes:
        evals = [j.evaluation for j in r.finished if j.evaluation]
        if not evals:
            continue
        rows.append(
            [
                r.label,
                len(evals),
                *(
                    mean_std([e[k] for e in evals], 100.0)
                    for k in ("test_acc/m0", "test_acc/m1", "both_correct")
                ),
            ]
        )
    if not rows:
        return None
    return Table(
        "Table 1 — offline linear evaluation (test accuracy, %), mean ± std over seed pairs",
        ["recipe", "pairs", "m0", "m1", "both correct"],
        rows,
        "Over the finished runs of each recipe; std: sample standard deviation (n − 1).",
    )


def _last_common_epoch(jobs: Sequence[Job]) -> int | None:
    common = (
        set.intersection(*({int(r["epoch"]) for r in j.records} for j in jobs)) if jobs else set()
    )
    return max(common) if common else None


def sweep_table2(recipes: Sequence[Recipe]) -> Table | None:
    """Table 2 per recipe: the analysis probe's test accuracy (%) on raw, normal-score and T_K
    features at the last analysis epoch all finished runs share, mean ± std over pairs."""
    rows = []
    for r in recipes:
        jobs = [j for j in r.finished if j.records]
        epoch = _last_common_epoch(jobs)
        if epoch is None:
            continue
        recs = [next(x for x in j.records if int(x["epoch"]) == epoch) for j in jobs]
        for kind in ("raw", "normal", "tk"):
            per_member = [
                [scalar(rec, f"probe/test_acc/{kind}/{m}") for rec in recs] for m in MEMBERS
            ]
            if any(v is None for vals in per_member for v in vals):
                continue
            means = [sum(vals) / len(vals) for vals in zip(*per_member)]  # per pair, over members
            rows.append(
                [
                    r.label,
                    epoch,
                    kind,
                    len(recs),
                    *(mean_std(v, 100.0) for v in per_member),
                    mean_std(means, 100.0),
                ]
            )
    if not rows:
        return None
    return Table(
        "Table 2 — analysis probe test accuracy (%), mean ± std over seed pairs",
        ["recipe", "epoch", "features", "pairs", "m0", "m1", "mean of members"],
        rows,
        "At the last analysis epoch every finished run of the recipe has; raw, normal scores "
        "('ranked'), T_K ('ranked K-IB'). Std: sample standard deviation (n − 1).",
    )


# -- figures ---------------------------------------------------------------------------------


def pair_value(record: dict, template: str) -> float | None:
    """A pair's value of ``template`` at a record: the key itself, or with ``{m}`` the mean over
    the members (None if any is missing)."""
    if "{m}" not in template:
        return scalar(record, template)
    vals = [scalar(record, template.format(m=m)) for m in MEMBERS]
    return None if any(v is None for v in vals) else sum(vals) / len(vals)


def band(jobs: Sequence[Job], template: str) -> tuple[list[int], list[MeanStd]]:
    """Per analysis epoch, :class:`MeanStd` over the jobs of :func:`pair_value`."""
    epochs = sorted({int(r["epoch"]) for j in jobs for r in j.records})
    xs, ys = [], []
    for e in epochs:
        ms = mean_std(
            [pair_value(r, template) for j in jobs for r in j.records if int(r["epoch"]) == e]
        )
        if ms is not None:
            xs.append(e)
            ys.append(ms)
    return xs, ys


def _plot_band(ax, xs, ys: Sequence[MeanStd], label, style="-o", color=None, scale=1.0):
    mean = [scale * y.mean for y in ys]
    std = [scale * (y.std or 0.0) for y in ys]
    (line,) = ax.plot(xs, mean, style, ms=3, label=label, color=color)
    ax.fill_between(
        xs,
        [m - s for m, s in zip(mean, std)],
        [m + s for m, s in zip(mean, std)],
        color=line.get_color(),
        alpha=0.2,
    )


def sweep_figures(recipe: Recipe, figdir: Path) -> dict[str, Path]:
    """Figs. 2 and 3 and the identifiability / information curves of one recipe, mean ± std
    over its finished runs' pairs per epoch."""
    import matplotlib.pyplot as plt  # the Agg backend: ncib.report.figures set it
    import matplotlib.ticker

    jobs = [j for j in recipe.finished if j.records]
    if not jobs:
        return {}
    out: dict[str, Path] = {}
    n = len(jobs)
    # Fig. 2: NC1 (mean of members, raw) against the variance / mean of the K leading CCA
    # coefficients, one point per epoch, error bars = std over pairs in both directions
    e_nc1, nc1 = band(jobs, "nc1/raw/{m}")
    e_var, var = band(jobs, "cca/var_k/raw")
    e_mean, mean = band(jobs, "cca/mean_k/raw")
    if nc1 and var and e_nc1 == e_var == e_mean:
        fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.2), sharey=True)
        for ax, xs, label in (
            (axes[0], var, "variance of the K leading CCA coefficients"),
            (axes[1], mean, "mean of the K leading CCA coefficients"),
        ):
            ax.errorbar(
                [x.mean for x in xs],
                [y.mean for y in nc1],
                xerr=[x.std or 0 for x in xs],
                yerr=[y.std or 0 for y in nc1],
                fmt="-o",
                capsize=3,
                ms=4,
            )
            for e, x, y in zip(e_nc1, xs, nc1):
                ax.annotate(
                    str(e), (x.mean, y.mean), fontsize=7, xytext=(3, 3), textcoords="offset points"
                )
            ax.set_xlabel(label)
            ax.set_yscale("log")
        if all(x.mean > 0 for x in var):
            axes[0].set_xscale("log")
            axes[0].xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        axes[0].set_ylabel("NC1 (raw, mean of members)")
        fig.suptitle(
            f"Fig. 2 — {recipe.label}: mean ± std over {n} seed pairs (labels: epoch)", fontsize=10
        )
        out["fig2"] = _save(fig, figdir / f"{recipe.slug}_fig2.png")
    # Fig. 3 A–D: T_K (solid) against raw (dashed), mean of members, band = std over pairs
    panels = [
        ("A. probe test accuracy (%)", "probe/test_acc/{s}/{{m}}"),
        ("B. equinorm", "etf/equinorm/{s}/{{m}}"),
        ("C. std of angles (degrees)", "etf/angle_std_deg/{s}/{{m}}"),
        ("D. mean cosine of class means", "etf/cos_mean/{s}/{{m}}"),
    ]
    if band(jobs, "etf/equinorm/tk/{m}")[0]:
        fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
        for ax, (title, template) in zip(axes, panels):
            for space, style in (("tk", "-o"), ("raw", "--s")):
                xs, ys = band(jobs, template.format(s=space))
                if xs:
                    label, scale = "T_K" if space == "tk" else "raw", 100.0 if "%" in title else 1.0
                    _plot_band(ax, xs, ys, label, style, scale=scale)
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        k = jobs[0].records[-1].get("num_classes")
        if k and k > 1:
            axes[3].axhline(-1.0 / (k - 1), color="k", lw=0.8, ls=":", label="−1/(K−1)")
        for ax in (axes[0], axes[3]):
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
        fig.suptitle(
            f"Fig. 3 — {recipe.label}: T_K (solid) vs raw (dashed), mean ± std over {n} seed pairs",
            fontsize=10,
        )
        out["fig3"] = _save(fig, figdir / f"{recipe.slug}_fig3.png")
    # identifiability and information
    curves = [
        (
            "mean of the K leading CCA coefficients (held out)",
            [("cca/mean_k/raw", "raw"), ("cca/mean_k/normal", "normal scores")],
        ),
        ("linear CKA", [("cka/raw", "raw"), ("cka/normal", "normal scores")]),
        (
            "I(X;Y) between the members (nats)",
            [("gib/mi_xy", "held out"), ("gib/insample/mi_xy", "in-sample")],
        ),
    ]
    if any(band(jobs, key)[0] for _, pairs in curves for key, _ in pairs):
        fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
        for ax, (title, pairs) in zip(axes, curves):
            for key, label in pairs:
                xs, ys = band(jobs, key)
                if xs:
                    _plot_band(ax, xs, ys, label)
            ax.set_title(title, fontsize=10)
            ax.set_xlabel("epoch")
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
        fig.suptitle(
            f"Identifiability and information — {recipe.label}: mean ± std over {n} seed pairs",
            fontsize=10,
        )
        out["identifiability_information"] = _save(
            fig, figdir / f"{recipe.slug}_identifiability_information.png"
        )
    return out


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# -- the report ------------------------------------------------------------------------------


@dataclass
class SweepReport:
    sweep_dir: Path
    jobs: list[Job]
    recipes: list[Recipe]
    tables: dict[str, Table]
    figures: dict[str, dict[str, Path]]
    markdown: str

    @property
    def path(self) -> Path:
        return self.sweep_dir / SWEEP_REPORT

    def count(self, status: str) -> int:
        return sum(j.status == status for j in self.jobs)


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
        for name, t in (("table1", sweep_table1(recipes)), ("table2", sweep_table2(recipes)))
        if t
    }
    figdir = sweep_dir / SWEEP_FIGURES
    figdir.mkdir(exist_ok=True)
    figs = {r.label: sweep_figures(r, figdir) for r in recipes}

    def status_row(job: Job) -> list:
        recipe = next((r.label for r in recipes if job in r.jobs), "—")
        where = job.run_dir.relative_to(sweep_dir).as_posix() if job.run_dir else "—"
        pair = "/".join(map(str, job.seed_pair)) if job.seed_pair else "—"
        return [job.num, where, pair, recipe, job.status, job.detail or "—"]

    runs = Table(
        "Runs",
        ["job", "run directory", "seed pair", "recipe", "status", "detail"],
        [status_row(j) for j in jobs],
    )
    counts = {
        s: sum(j.status == s for j in jobs) for s in (FINISHED, FAILED, UNFINISHED, NOT_STARTED)
    }
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
    lines += [runs.markdown()]
    for r in recipes:
        lines.append(
            f"- recipe **{r.label}**: {len(r.finished)} finished of {len(r.jobs)} runs "
            f"(seed pairs {', '.join('/'.join(map(str, j.seed_pair)) for j in r.finished) or 'none'})"
        )
    lines.append("")
    lines += [t.markdown() for t in tables.values()]
    if any(figs.values()):
        lines += ["## Figures", ""]
        for label, made in figs.items():
            for name, path in made.items():
                lines += [
                    f"**{label} — {name}**",
                    "",
                    f"![{name}]({path.relative_to(sweep_dir).as_posix()})",
                    "",
                ]
    return SweepReport(sweep_dir, jobs, recipes, tables, figs, "\n".join(lines))


def write_sweep_report(sweep_dir: str | Path, wandb: bool = True) -> SweepReport:
    """Build the sweep report, write ``sweep_report.md``, and (``wandb``) send the tables to
    W&B when the runs were logged there."""
    report = build_sweep_report(sweep_dir)
    report.path.write_text(report.markdown)
    if wandb:
        log_sweep_to_wandb(report)
    return report


# -- W&B -------------------------------------------------------------------------------------


def _wandb_table(table: Table, keep: Callable[[list], bool]):
    """A ``wandb.Table`` of ``table``'s rows that ``keep`` selects; a :class:`MeanStd` cell
    becomes two numeric columns (``<column> mean``, ``<column> std``)."""
    import wandb

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
    ``sweep/table1``, ``sweep/table2``, in the runs' W&B group, ``job_type`` ``sweep-summary``.
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
        import hashlib

        import wandb

        from ncib.config import wandb_mode
        from ncib.wandb_run import SUMMARY_JOB_TYPE, group_name

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
