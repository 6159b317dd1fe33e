"""``<run_dir>/report.md`` and its figures, from the run's records alone (no retraining)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ncib.records import (
    LINEAR_EVAL_FILE,
    RECORDS_FILE,
    read_linear_eval,
    read_records,
    read_resumes,
    report_names,
)
from ncib.report import figures
from ncib.report.tables import (
    Table,
    compression_generalisation_table,
    identifiability_table,
    information_table,
    table1,
    table2,
    table2_per_epoch,
    table3,
)

__all__ = ["NothingToReport", "Report", "build_report", "write_report"]


@dataclass
class Report:
    run_dir: Path
    markdown: str
    tables: dict[str, Table] = field(default_factory=dict)
    figures: dict[str, Path] = field(default_factory=dict)
    records_name: str = RECORDS_FILE
    epochs: list[int] = field(default_factory=list)  # the analysed epochs it reports

    @property
    def path(self) -> Path:
        """Where :func:`write_report` puts the markdown."""
        return self.run_dir / report_names(self.records_name)[0]


def _run_info(run_dir: Path) -> dict:
    from ncib.rundir import RunDirError, load_run_config

    try:
        cfg = load_run_config(run_dir, to_instantiate=False)  # values only
    except RunDirError as err:
        if (run_dir / ".hydra").is_dir():  # a run's config that cannot be read: say so
            warnings.warn(f"the report goes without the run's config: {err}", stacklevel=2)
        return {}
    return {
        "dataset": cfg.dataset.name,
        "num_classes": int(cfg.dataset.num_classes),
        "seed_pair": list(cfg.seed_pair),
    }


def build_report(run_dir: str | Path, records_name: str = RECORDS_FILE) -> Report:
    """Tables and figures of a run directory from one records file (default: the training run's
    ``analysis.jsonl``; a re-analysis ``analysis-<name>.jsonl`` gets ``report-<name>.md`` and
    ``figures-<name>/``). Writes the PNGs."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    records_path = run_dir / records_name
    records = read_records(records_path) if records_path.exists() else []
    evaluation_path = run_dir / LINEAR_EVAL_FILE
    evaluation = read_linear_eval(evaluation_path) if evaluation_path.exists() else None
    if not records and evaluation is None:
        raise FileNotFoundError(
            f"{run_dir} has neither {records_name} nor {LINEAR_EVAL_FILE}: nothing to report (were the "
            "analysis callbacks and the linear evaluation turned off?)"
        )
    lacking = [k for k in ("num_classes", "k", "feature_dim") if records and k not in records[-1]]
    if lacking:
        raise ValueError(
            f"{records_path} is not an ncib records file: its last record has no "
            f"{', '.join(lacking)} (written by python -m ncib.run or ncib.analyse)"
        )
    info = _run_info(run_dir)
    k_classes = info.get("num_classes") or (records[-1]["num_classes"] if records else None)
    dataset = info.get("dataset", "?")
    last = records[-1] if records else None

    tables: dict[str, Table] = {}
    for name, table in (
        ("table1", table1(evaluation, dataset)),
        ("table2", table2(last, last["feature_dim"], last["k"]) if last else None),
        ("table2_per_epoch", table2_per_epoch(records)),
        ("identifiability", identifiability_table(records)),
        ("information", information_table(records)),
        ("compression_generalisation", compression_generalisation_table(records)),
        ("table3", table3(last) if last else None),
    ):
        if table is not None:
            tables[name] = table

    figdir = run_dir / report_names(records_name)[1]
    figdir.mkdir(exist_ok=True)
    made = {
        "fig2_nc1_vs_identifiability": figures.fig2_nc1_vs_identifiability(
            records, figdir / "fig2_nc1_vs_identifiability.png"
        ),
        "fig3_etf_in_tk": figures.fig3_etf_in_tk(
            records, k_classes or 2, figdir / "fig3_etf_in_tk.png"
        ),
        "fig4b_feature_scaling": figures.fig4b_feature_scaling(
            last, figdir / "fig4b_feature_scaling.png"
        )
        if last
        else None,
        "information_curve": figures.fig_information_curve(last, figdir / "information_curve.png")
        if last
        else None,
        "compression_generalisation": figures.fig_compression_generalisation(
            records, figdir / "compression_generalisation.png"
        ),
        "fig4a_dimension_sweep": figures.fig4a_dimension_sweep(
            last, figdir / "fig4a_dimension_sweep.png"
        )
        if last
        else None,
        "fig4c_feature_scaling_k_prime": figures.fig4c_feature_scaling_k_prime(
            last, figdir / "fig4c_feature_scaling_k_prime.png"
        )
        if last
        else None,
    }
    figs = {k: v for k, v in made.items() if v is not None}

    seeds = info.get("seed_pair")
    lines = [
        f"# ncib report — {dataset}" + (f", seed pair {seeds[0]} / {seeds[1]}" if seeds else ""),
        "",
        f"Run directory: `{run_dir}`. "
        + (
            "Analysed epochs: " + ", ".join(str(r["epoch"]) for r in records)
            if records
            else NO_EPOCHS
        )
        + (f"; K = {k_classes}." if k_classes else "."),
        "Regenerate with `python -m ncib.report <run_dir>`"
        + ("." if records_name == RECORDS_FILE else f" --records {records_name}."),
        "",
    ]
    resumes = read_resumes(run_dir)
    if resumes:
        lines += [
            f"The run was resumed {len(resumes)} time(s): "
            + "; ".join(f"{r['time']} after epoch {r['epochs_done']}" for r in resumes)
            + " (each from `checkpoints/last.ckpt`; what was written after it was written again).",
            "",
        ]
    missing = run_dir / (records_path.stem + ".missing")
    if records_name != RECORDS_FILE and missing.is_file():
        lacking = [line.split(maxsplit=1) for line in missing.read_text().splitlines() if line]
        lines += [
            "**Not re-analysed** (their saved weights were missing): "
            + "; ".join(
                f"epoch {e[0]} (`{e[1]}`)" if len(e) > 1 else f"epoch {e[0]}" for e in lacking
            )
            + ".",
            "",
        ]
    overrides = run_dir / (records_path.stem + ".overrides")
    if records_name != RECORDS_FILE:
        told = overrides.read_text().split() if overrides.exists() else []
        lines += [
            f"Re-analysis of the saved checkpoints (`{records_name}`, by `python -m ncib.analyse`)"
            + (
                f" with {', '.join(f'`{o}`' for o in told)}."
                if told
                else " with the run's own config."
            ),
            "",
        ]
    if evaluation is None:
        lines += [
            f"Table 1 (the offline linear evaluation) is not in this report: the run has no "
            f"`{LINEAR_EVAL_FILE}` (the linear evaluation was off, or has not run yet); "
            "`python -m ncib.linear_eval <run_dir>` computes it.",
            "",
        ]
    lines += [t.markdown() for t in tables.values()]
    captions = {
        "fig2_nc1_vs_identifiability": "Fig. 2 analogue: NC1 against the variance (left) and the mean ± std (right) of the K leading CCA coefficients; one point per epoch, filled in the terminal phase.",
        "fig3_etf_in_tk": "Fig. 3 analogue: T_K (solid) vs raw features (dashed) over epochs.",
        "fig4b_feature_scaling": "Fig. 4B analogue: α scaling of the K IB dimensions at the last analysis epoch.",
        "information_curve": "GIB information curve at the last analysis epoch, in-sample and held-out.",
        "compression_generalisation": "Held-out I(T_K;Y)/I(X;Y) against the analysis probe's test accuracy, per epoch and member.",
        "fig4a_dimension_sweep": "Fig. 4A analogue: the IB-k representation's probe accuracy and NC4 against k; K′ dotted.",
        "fig4c_feature_scaling_k_prime": "Fig. 4C analogue: α scaling of T_K′ beside that of T_K.",
    }
    if figs:
        lines += ["## Figures", ""]
        for name, path in figs.items():
            lines += [
                f"**{captions[name]}**",
                "",
                f"![{name}]({path.relative_to(run_dir).as_posix()})",
                "",
            ]
    warnings = sorted({w for r in records for w in r.get("warnings", [])})
    if warnings:
        lines += ["## Warnings recorded by the analysis", ""] + [f"- {w}" for w in warnings] + [""]
    epochs = [int(r["epoch"]) for r in records]
    return Report(run_dir, "\n".join(lines), tables, figs, records_name, epochs)


class NothingToReport(ValueError):
    """The records hold no analysed epoch while the report already written has some."""


NO_EPOCHS = "Analysed epochs: none"


def write_report(run_dir: str | Path, records_name: str = RECORDS_FILE) -> Report:
    """Build the report and write it (``<run_dir>/report.md`` for ``analysis.jsonl``).

    A report with no analysed epoch never replaces one that has some (an emptied or truncated
    records file would otherwise wipe a good report): :class:`NothingToReport` names both files
    and the existing report is kept."""
    from ncib.records import atomic_write_bytes

    report = build_report(run_dir, records_name)
    if not report.epochs and report.path.is_file():
        try:
            earlier = report.path.read_text(errors="replace")
        except OSError:
            earlier = NO_EPOCHS
        if NO_EPOCHS not in earlier:
            raise NothingToReport(
                f"{Path(run_dir) / records_name} holds no analysis record, but {report.path} "
                "reports analysed epochs: it is kept as it is (was the records file emptied or "
                "replaced? restore it, or re-analyse the run with python -m ncib.analyse)"
            )
    atomic_write_bytes(report.path, report.markdown.encode())
    return report


def log_to_wandb(report: Report, logger) -> None:
    """Send the report's tables (``wandb.Table``) and figures (images) to a ``WandbLogger``."""
    for name, table in report.tables.items():
        rows = [[v if v is not None else float("nan") for v in row] for row in table.rows]
        logger.log_table(key=f"report/{name}", columns=table.columns, data=rows)
    for name, path in report.figures.items():
        logger.log_image(key=f"report/{name}", images=[str(path)])
