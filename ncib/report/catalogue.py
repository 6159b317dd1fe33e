"""The figures of each report and the registered keys each cannot go without.

:data:`RUN_FIGURES` (a run's ``report.md``) and :data:`SWEEP_FIGURES` (each recipe of a
sweep's ``sweep_report.md``) list the figures in the order the reports show them;
:data:`COMPARISON_FIGURES` are a sweep's recipes (e.g. the objectives of
``experiment=objectives``) on the same axes, one band per recipe. A figure the
records cannot feed is not drawn, and the report says so with :func:`why_not_drawn`: the
registered keys the records lack.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from ncib.metrics.registry import bound_keys, key, member_keys
from ncib.report.figures import (
    CCA_MEAN,
    CCA_VAR,
    NC1,
    SCALING,
    SCALING_K_PRIME,
    TRANSFER_NC4,
    TRANSFER_PROBE,
    Recipes,
    Runs,
    fig2_over_pairs,
    fig3_over_pairs,
    fig4a_dimension_sweep,
    fig4b_feature_scaling,
    fig4c_feature_scaling_k_prime,
    fig_compression_generalisation,
    fig_identifiability_information,
    fig_information_curve,
)
from ncib.report.recipe_figures import fig2_by_recipe, fig3_by_recipe, fig_nc3_by_recipe
from ncib.report.tables import PROBE, holds

__all__ = [
    "COMPARISON_FIGURES",
    "RUN_FIGURES",
    "SWEEP_FIGURES",
    "Chart",
    "Comparison",
    "Figure",
    "dashboard_charts",
    "why_not_drawn",
]


@dataclass(frozen=True)
class Chart:
    """A figure's panel on the W&B dashboard (:mod:`ncib.tracking.dashboard`), declared with
    the figure: registered keys ``y`` against the registered key ``x`` (None: the analysis
    epoch), in the dashboard section ``section``."""

    section: str
    title: str
    y: tuple[str, ...]
    x: str | None = None
    log_x: bool = False
    log_y: bool = False


@dataclass(frozen=True)
class Figure:
    """A figure of a report: its name (the PNG's), caption, how it is drawn from ``runs`` (one
    list of records per pair), the number of classes and a recipe's label, and the registered
    keys it cannot go without (``last``: in the last record, not in any). ``only_with``: a
    metric group of one kind of run (``transfer``): for the other runs the figure is not
    expected, and its absence is not reported."""

    name: str
    caption: str
    draw: Callable[[Runs, int, Path, str | None], Path | None]
    needs: tuple[str, ...]
    last: bool = False
    only_with: str | None = None
    charts: tuple[Chart, ...] = ()  # its panels on the W&B dashboard

    def expected(self, runs: Runs) -> bool:
        """Whether the report should say why the figure is missing from these runs."""
        return self.only_with is None or any(self.only_with in r for rs in runs for r in rs)


def why_not_drawn(figure: Figure, runs: Runs) -> str:
    """Why ``figure`` was not drawn from ``runs``: the registered keys no record (or no last
    record) holds, or that no epoch holds them together."""
    scope = [rs[-1] for rs in runs if rs] if figure.last else [r for rs in runs for r in rs]
    if not scope:
        return "no analysis record"
    lacking = [k for k in figure.needs if not any(holds(r, k) for r in scope)]
    where = "the last analysis record lacks" if figure.last else "no analysis record holds"
    if lacking:
        return f"{where} {', '.join(f'`{k}`' for k in lacking)}"
    return f"no analysis epoch holds {', '.join(f'`{k}`' for k in figure.needs)} together"


def _records(runs: Runs, k: int, path: Path, label: str | None, draw) -> Path | None:
    return draw(runs[0], path)  # a figure of one run from all its records


def _last(runs: Runs, k: int, path: Path, label: str | None, draw) -> Path | None:
    return draw(runs[0][-1], path)  # a figure of one run from its last record


def _run_figure(name, caption, draw, needs, last=False, only_with=None) -> Figure:
    draw = partial(_last if last else _records, draw=draw)
    return Figure(name, caption, draw, needs, last, only_with)


_FIG2_NEEDS = (
    *member_keys(NC1, space="raw"),
    key(CCA_MEAN, features="raw"),
    key(CCA_VAR, features="raw"),
)
_FIG3_NEEDS = member_keys("etf/equinorm/{space}/{member}", space="tk")
_CURVES_NEEDS = (
    *(key(t, features=f) for t in (CCA_MEAN, "cka/{features}") for f in ("raw", "normal")),
    key("gib/mi_xy"),
    key("gib/insample/mi_xy"),
)
_PROBES = tuple(k for i in ("raw", "tk") for k in member_keys(PROBE, split="test", probe_input=i))
_TRANSFER = (key("transfer/grid"), *member_keys(TRANSFER_PROBE), *member_keys(TRANSFER_NC4))

FIG2 = "Fig. 2 — variability collapse (NC1) against identifiability"
FIG3 = "Fig. 3 — simplex ETF inside T_K (tk) against the raw features (raw)"
IDENT, INFO = "Identifiability between the members", "Information between the members (GIB)"
_NC1 = member_keys(NC1, space="raw")
_FIG2_CHARTS = (
    Chart(
        FIG2,
        "NC1 (raw) along the variance of the K leading CCA coefficients",
        _NC1,
        x=key(CCA_VAR, features="raw"),
        log_x=True,
        log_y=True,
    ),
    Chart(FIG2, "NC1 (raw features)", _NC1, log_y=True),
    Chart(FIG2, "mean of the K leading CCA coefficients (raw)", (key(CCA_MEAN, features="raw"),)),
    Chart(
        FIG2,
        "variance of the K leading CCA coefficients (raw)",
        (key(CCA_VAR, features="raw"),),
        log_y=True,
    ),
)
_TK_RAW = ("tk", "raw")
_FIG3_CHARTS = (
    Chart(
        FIG3,
        "A. analysis probe test accuracy",
        tuple(k for i in _TK_RAW for k in member_keys(PROBE, split="test", probe_input=i)),
    ),
    *(
        Chart(FIG3, title, tuple(k for s in _TK_RAW for k in member_keys(template, space=s)))
        for title, template in (
            ("B. equinorm (std/mean of the class-mean norms)", "etf/equinorm/{space}/{member}"),
            (
                "C. std of the angles between class means (degrees)",
                "etf/angle_std_deg/{space}/{member}",
            ),
            ("D. mean cosine between class means (ETF: −1/(K−1))", "etf/cos_mean/{space}/{member}"),
        )
    ),
)
_FEATS = ("raw", "normal")


def _with_interval(template: str, **axes: str) -> tuple[str, ...]:
    return (key(template, **axes), *(bound_keys(template, **axes) or ()))


_CURVES_CHARTS = (
    Chart(
        IDENT,
        "mean of the K leading CCA coefficients (held out) and its interval",
        tuple(k for f in _FEATS for k in _with_interval(CCA_MEAN, features=f)),
    ),
    Chart(
        IDENT,
        "std of the K leading CCA coefficients (held out)",
        tuple(key("cca/std_k/{features}", features=f) for f in _FEATS),
    ),
    Chart(
        IDENT,
        "in-sample mean of the K leading CCA coefficients (the paper's estimate)",
        tuple(key("cca/insample/mean_k/{features}", features=f) for f in _FEATS),
    ),
    Chart(IDENT, "linear CKA", tuple(key("cka/{features}", features=f) for f in _FEATS)),
    Chart(
        INFO,
        "I(X;Y) between the members: held out with its interval, in-sample (nats)",
        (*_with_interval("gib/mi_xy"), key("gib/insample/mi_xy")),
    ),
    Chart(
        INFO,
        "I(T_K;Y)/I(X;Y): held out with its interval, in-sample",
        (*_with_interval("gib/i_ty_frac_tk"), key("gib/insample/i_ty_frac_tk")),
    ),
    Chart(
        INFO,
        "critical β_K and β_K+1 (held out; β_K+1 absent where no transition is resolved)",
        (key("gib/beta_crit/k"), key("gib/beta_crit/k_next")),
        log_y=True,
    ),
)

RUN_FIGURES: tuple[Figure, ...] = (
    Figure(
        "fig2_nc1_vs_identifiability",
        "Fig. 2 analogue: NC1 against the variance (left) and the mean ± std (right) of the K "
        "leading CCA coefficients; one point per epoch, filled in the terminal phase.",
        lambda runs, k, path, label: fig2_over_pairs(runs, path),
        _FIG2_NEEDS,
        charts=_FIG2_CHARTS,
    ),
    Figure(
        "fig3_etf_in_tk",
        "Fig. 3 analogue: T_K (solid) vs raw features (dashed) over epochs.",
        lambda runs, k, path, label: fig3_over_pairs(runs, k, path, per_member=True),
        _FIG3_NEEDS,
        charts=_FIG3_CHARTS,
    ),
    _run_figure(
        "fig4b_feature_scaling",
        "Fig. 4B analogue: α scaling of the K IB dimensions at the last analysis epoch.",
        fig4b_feature_scaling,
        member_keys(SCALING),
        last=True,
    ),
    _run_figure(
        "information_curve",
        "GIB information curve at the last analysis epoch, in-sample and held-out.",
        fig_information_curve,
        (key("information_curve"),),
        last=True,
    ),
    _run_figure(
        "compression_generalisation",
        "Held-out I(T_K;Y)/I(X;Y) against the analysis probe's test accuracy, per epoch and "
        "member.",
        fig_compression_generalisation,
        (key("gib/i_ty_frac_tk"), *_PROBES),
    ),
    _run_figure(
        "fig4a_dimension_sweep",
        "Fig. 4A analogue: the IB-k representation's probe accuracy and NC4 against k; K′ dotted.",
        fig4a_dimension_sweep,
        _TRANSFER,
        last=True,
        only_with="transfer",
    ),
    _run_figure(
        "fig4c_feature_scaling_k_prime",
        "Fig. 4C analogue: α scaling of T_K′ beside that of T_K.",
        fig4c_feature_scaling_k_prime,
        member_keys(SCALING_K_PRIME),
        last=True,
        only_with="transfer",
    ),
)
"""The figures of a run's report, in its order."""

SWEEP_FIGURES: tuple[Figure, ...] = (
    Figure(
        "fig2",
        "Fig. 2: NC1 against the variance and the mean of the K leading CCA coefficients, "
        "mean ± std over pairs per epoch.",
        lambda runs, k, path, label: fig2_over_pairs(runs, path, label),
        _FIG2_NEEDS,
    ),
    Figure(
        "fig3",
        "Fig. 3: T_K (solid) vs raw (dashed), mean of the members, band: std over pairs.",
        lambda runs, k, path, label: fig3_over_pairs(runs, k, path, label=label),
        _FIG3_NEEDS,
    ),
    Figure(
        "identifiability_information",
        "Identifiability and information over epochs, band: std over pairs.",
        lambda runs, k, path, label: fig_identifiability_information(runs, path, label),
        _CURVES_NEEDS,
        charts=_CURVES_CHARTS,
    ),
)
"""The figures of each recipe of a sweep's report."""


@dataclass(frozen=True)
class Comparison:
    """A figure of a sweep's recipes on the same axes: its name (the PNG's), caption, how it is
    drawn from the recipes (legend, runs) and the number of classes, and the registered keys
    it cannot go without. ``only_with``: as :attr:`Figure.only_with`."""

    name: str
    caption: str
    draw: Callable[[Recipes, int, Path], Path | None]
    needs: tuple[str, ...]
    only_with: str | None = None
    last: bool = False  # as Figure.last: for why_not_drawn

    def expected(self, runs: Runs) -> bool:
        return self.only_with is None or any(self.only_with in r for rs in runs for r in rs)


COMPARISON_FIGURES: tuple[Comparison, ...] = (
    Comparison(
        "fig2",
        "Fig. 2 per recipe on the same axes: NC1 against the variance of the K leading CCA "
        "coefficients, and NC1 and their mean over epochs; one colour and ±1 std band over "
        "pairs per recipe.",
        lambda recipes, k, path: fig2_by_recipe(recipes, path),
        _FIG2_NEEDS,
    ),
    Comparison(
        "fig3",
        "Fig. 3 per recipe on the same axes: T_K (solid) vs raw (dashed), mean of the members, "
        "one colour and ±1 std band over pairs per recipe.",
        fig3_by_recipe,
        _FIG3_NEEDS,
    ),
    Comparison(
        "nc3",
        "The classifier side of neural collapse (NC3, NC2 of the classifier rows) per recipe "
        "that trains a classifier (ce, mse), ±1 std band over pairs.",
        fig_nc3_by_recipe,
        member_keys("nc3/{member}"),
        only_with="classifier",
    ),
)
"""The figures that put a sweep's recipes side by side (drawn when it has two or more)."""


def dashboard_charts() -> tuple[Chart, ...]:
    """Every figure's dashboard charts, in the reports' order (a run's figures, then a sweep's),
    each once."""
    return tuple(dict.fromkeys(c for f in (*RUN_FIGURES, *SWEEP_FIGURES) for c in f.charts))
