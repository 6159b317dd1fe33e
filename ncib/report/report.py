"""``<run_dir>/report.md`` and its figures, from the run's records alone (no retraining)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ncib.recipe import objective_of
from ncib.report.catalogue import RUN_FIGURES, why_not_drawn
from ncib.report.tables import (
    Table,
    classifier_table,
    compression_generalisation_table,
    identifiability_table,
    information_table,
    table1,
    table2,
    table2_per_epoch,
    table3,
)
from ncib.rundir import RunDirError, load_run_config
from ncib.rundir.records import (
    LINEAR_EVAL_FILE,
    RECORDS_FILE,
    atomic_write_bytes,
    read_linear_eval,
    read_records,
    read_resumes,
    report_names,
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
    not_drawn: dict[str, str] = field(default_factory=dict)  # figure → the keys it lacked

    @property
    def path(self) -> Path:
        """Where :func:`write_report` puts the markdown."""
        return self.run_dir / report_names(self.records_name)[0]


def _run_info(run_dir: Path) -> dict:

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
        "objective": objective_of(cfg),  # a run made before the key: SupCon
    }


def _tables(records: list[dict], evaluation: dict | None, dataset: str) -> dict[str, Table]:
    last = records[-1] if records else None
    made = (
        ("table1", table1(evaluation, dataset)),
        ("table2", table2(last, last["feature_dim"], last["k"]) if last else None),
        ("table2_per_epoch", table2_per_epoch(records)),
        ("identifiability", identifiability_table(records)),
        ("information", information_table(records)),
        ("compression_generalisation", compression_generalisation_table(records)),
        ("classifier", classifier_table(records)),
        ("table3", table3(last) if last else None),
    )
    return {name: table for name, table in made if table is not None}


def _figures(
    records: list[dict], num_classes: int, figdir: Path
) -> tuple[dict[str, Path], dict[str, str]]:
    """The figures drawn (name → PNG) and those not drawn (name → why: the keys missing)."""
    drawn, not_drawn = {}, {}
    for figure in RUN_FIGURES:
        path = (
            figure.draw([records], num_classes, figdir / f"{figure.name}.png", None)
            if records
            else None
        )
        if path is None and figure.expected([records]):
            not_drawn[figure.name] = why_not_drawn(figure, [records])
        elif path is not None:
            drawn[figure.name] = path
    return drawn, not_drawn


def _context(run_dir: Path, records_name: str, evaluation: dict | None) -> list[str]:
    """What the reader needs before the tables: resumes, epochs not re-analysed, the
    re-analysis's overrides, and why Table 1 is absent."""
    lines = []
    resumes = read_resumes(run_dir)
    if resumes:
        lines += [
            f"The run was resumed {len(resumes)} time(s): "
            + "; ".join(f"{r['time']} after epoch {r['epochs_done']}" for r in resumes)
            + " (each from `checkpoints/last.ckpt`; what was written after it was written again).",
            "",
        ]
    stem = Path(records_name).stem
    missing = run_dir / (stem + ".missing")
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
    overrides = run_dir / (stem + ".overrides")
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
    return lines


def figure_lines(
    figs: dict[str, Path], not_drawn: dict[str, str], captions: dict[str, str], root: Path
) -> list[str]:
    """The markdown of a report's figures section: each figure drawn with its caption, then
    each figure not drawn with why (the registered keys the records lack)."""
    if not figs and not not_drawn:
        return []
    lines = ["## Figures", ""]
    for name, path in figs.items():
        lines += [
            f"**{captions[name]}**",
            "",
            f"![{name}]({path.relative_to(root).as_posix()})",
            "",
        ]
    if not_drawn:
        lines += [f"Not drawn ({len(not_drawn)}):", ""]
        lines += [f"- `{name}`: {why}." for name, why in not_drawn.items()] + [""]
    return lines


def _read(run_dir: Path, records_name: str) -> tuple[list[dict], dict | None]:
    """The records and Table 1 of a run directory, checked to be ncib's."""
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
    return records, evaluation


def build_report(run_dir: str | Path, records_name: str = RECORDS_FILE) -> Report:
    """Tables and figures of a run directory from one records file (default: the training run's
    ``analysis.jsonl``; a re-analysis ``analysis-<name>.jsonl`` gets ``report-<name>.md`` and
    ``figures-<name>/``). Writes the PNGs; figures the records cannot feed are listed with the
    registered keys they lack."""
    run_dir = Path(run_dir)
    records, evaluation = _read(run_dir, records_name)
    info = _run_info(run_dir)
    k_classes = info.get("num_classes") or (records[-1]["num_classes"] if records else None)
    dataset = info.get("dataset", "?")
    tables = _tables(records, evaluation, dataset)
    figdir = run_dir / report_names(records_name)[1]
    figdir.mkdir(exist_ok=True)
    figs, not_drawn = _figures(records, k_classes or 2, figdir)

    seeds = info.get("seed_pair")
    lines = [
        f"# ncib report — {dataset}"
        + (f", {info['objective']}" if "objective" in info else "")
        + (f", seed pair {seeds[0]} / {seeds[1]}" if seeds else ""),
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
    lines += _context(run_dir, records_name, evaluation)
    lines += [t.markdown() for t in tables.values()]
    captions = {f.name: f.caption for f in RUN_FIGURES}
    lines += figure_lines(figs, not_drawn, captions, run_dir)
    warnings = sorted({w for r in records for w in r.get("warnings", [])})
    if warnings:
        lines += ["## Warnings recorded by the analysis", ""] + [f"- {w}" for w in warnings] + [""]
    epochs = [int(r["epoch"]) for r in records]
    return Report(run_dir, "\n".join(lines), tables, figs, records_name, epochs, not_drawn)


class NothingToReport(ValueError):
    """The records hold no analysed epoch while the report already written has some."""


NO_EPOCHS = "Analysed epochs: none"


def write_report(run_dir: str | Path, records_name: str = RECORDS_FILE) -> Report:
    """Build the report and write it (``<run_dir>/report.md`` for ``analysis.jsonl``).

    A report with no analysed epoch never replaces one that has some (an emptied or truncated
    records file would otherwise wipe a good report): :class:`NothingToReport` names both files
    and the existing report is kept."""

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
