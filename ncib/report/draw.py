"""Renderers of :class:`~ncib.report.series.Series` (matplotlib, Agg backend, PNG): curves over
epochs (:func:`draw_curves`) and Fig. 2's NC1 against identifiability (:func:`draw_fig2`).

A series of one run (``n = 1``) is drawn as points and lines; a series over ``n > 1`` seed
pairs gets its spread: a band around a curve, error bars on a point. One :func:`save` writes
every figure of the run report and of the sweep report (one resolution, :data:`DPI`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

from ncib.report.series import Series  # noqa: E402

__all__ = [
    "DPI",
    "Curve",
    "Panel",
    "draw_curves",
    "draw_fig2",
    "draw_trajectories",
    "epoch_colorbar",
    "integer_ticks",
    "log_limits",
    "save",
]

DPI = 120
"""The resolution of every figure ncib writes."""


def save(fig, path: Path, tight: bool = True) -> Path:
    """Write ``fig`` to ``path`` (PNG, :data:`DPI`) and close it; ``tight``: lay it out first
    (not for a figure whose colour bar spans several axes)."""
    if tight:
        fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def integer_ticks(axis, epochs=()) -> None:
    """Epochs are whole numbers: no 0.5 ticks on an epoch axis or colour bar (with one or two
    epochs, exactly those)."""
    epochs = sorted(set(epochs))
    if epochs and epochs[-1] - epochs[0] < 2:
        axis.set_major_locator(matplotlib.ticker.FixedLocator(epochs))
    else:
        axis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))


def epoch_colorbar(fig, mappable, **kwargs):
    bar = fig.colorbar(mappable, label="epoch", **kwargs)
    integer_ticks(bar.ax.yaxis)
    return bar


def log_limits(values) -> tuple[float, float]:
    """Limits of a log axis that show every positive value with a margin (matplotlib's own
    limits can leave a single point on the frame, where it is not drawn)."""
    positive = [v for v in values if v > 0]
    return min(positive) / 1.6, max(positive) * 1.6


def _spread(s: Series) -> bool:
    return any(x is not None for x in s.std)


# -- curves over epochs ----------------------------------------------------------------------


@dataclass(frozen=True)
class Curve:
    """One line of a panel: ``series`` against the epoch, with a band where it has a spread."""

    label: str
    series: Series
    style: str = "-o"
    color: str | None = None  # None: the next of the axes' colours
    face: str | None = None  # the markers' face colour (None: the line's)


@dataclass(frozen=True)
class Panel:
    title: str
    curves: tuple[Curve, ...]
    reference: tuple[float, str] | None = None  # a horizontal line (value, label)
    legend: bool = True
    log_y: bool = False  # a log y-axis (where every value is positive)


def _plot(ax, c: Curve) -> None:
    s = c.series
    style = {"color": c.color} | ({"mfc": c.face} if c.face else {})
    (line,) = ax.plot(s.epochs, s.mean, c.style, ms=4, label=c.label, **style)
    if _spread(s):
        sd = [x or 0.0 for x in s.std]
        lo, hi = [m - d for m, d in zip(s.mean, sd)], [m + d for m, d in zip(s.mean, sd)]
        ax.fill_between(s.epochs, lo, hi, color=line.get_color(), alpha=0.2, lw=0)


def draw_curves(panels: Sequence[Panel], path: Path, title: str, width: float = 4.0) -> Path:
    """One row of panels of curves over epochs, whole epochs on every axis."""
    fig, axes = plt.subplots(1, len(panels), figsize=(width * len(panels), 3.6), squeeze=False)
    epochs = {e for p in panels for c in p.curves for e in c.series.epochs}
    for ax, panel in zip(axes[0], panels):
        for curve in panel.curves:
            if curve.series:
                _plot(ax, curve)
        _finish_panel(ax, panel, epochs)
    fig.suptitle(title, fontsize=10)
    return save(fig, path)


def _finish_panel(ax, panel: Panel, epochs) -> None:
    if panel.reference is not None:
        ax.axhline(panel.reference[0], color="k", lw=0.8, ls=":", label=panel.reference[1])
    if panel.log_y and all(m > 0 for c in panel.curves for m in c.series.mean):
        ax.set_yscale("log")
    ax.set_title(panel.title, fontsize=10)
    ax.set_xlabel("epoch")
    integer_ticks(ax.xaxis, epochs)
    if panel.legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


@dataclass(frozen=True)
class Trajectory:
    """One recipe's path through the plane of two series, in epoch order (epochs both have)."""

    label: str
    x: Series
    y: Series
    color: str | None = None


def draw_trajectories(
    trajectories: Sequence[Trajectory],
    axes_labels: tuple[str, str],
    panels: Sequence[Panel],
    path: Path,
    title: str,
) -> Path | None:
    """A row: ``y`` against ``x`` per trajectory (log axes where every value is positive), one
    point per epoch joined in epoch order, error bars the std over pairs, the last epoch
    labelled; then ``panels`` of curves over epochs (:func:`draw_curves`' panels). None when no
    trajectory has an epoch with both values."""
    paths = []
    for t in trajectories:
        epochs = sorted(set(t.x.epochs) & set(t.y.epochs))
        if epochs:
            paths.append((t, epochs, t.x.at(epochs), t.y.at(epochs)))
    if not paths:
        return None
    fig, axes = plt.subplots(
        1, 1 + len(panels), figsize=(4.6 * (1 + len(panels)), 4.0), squeeze=False
    )
    ax = axes[0][0]
    for t, epochs, x, y in paths:
        ax.errorbar(
            x.mean, y.mean, xerr=[s or 0.0 for s in x.std], yerr=[s or 0.0 for s in y.std],
            fmt="-o", color=t.color, ms=4, capsize=2, label=t.label,
        )  # fmt: skip
        ax.annotate(f"{epochs[-1]}", (x.mean[-1], y.mean[-1]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")  # fmt: skip
    for axis, values in (("x", [v for _, _, x, _ in paths for v in x.mean]),
                         ("y", [v for _, _, _, y in paths for v in y.mean])):  # fmt: skip
        if min(values) > 0:
            getattr(ax, f"set_{axis}scale")("log")
            if max(values) / min(values) > 10:  # labelled decades: no crowded minor labels
                getattr(ax, f"{axis}axis").set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel(axes_labels[0])
    ax.set_ylabel(axes_labels[1])
    ax.set_title("one point per epoch (the last one labelled)", fontsize=10)
    ax.legend(fontsize=7)
    epochs = {e for p in panels for c in p.curves for e in c.series.epochs}
    for ax, panel in zip(axes[0][1:], panels):
        for curve in panel.curves:
            if curve.series:
                _plot(ax, curve)
        _finish_panel(ax, panel, epochs)
    fig.suptitle(title, fontsize=10)
    return save(fig, path)


# -- Fig. 2 ----------------------------------------------------------------------------------


def _value_at(s: Series | None, epochs) -> list:
    found = dict(zip(s.epochs, s.mean)) if s is not None else {}
    return [found.get(e) for e in epochs]


def _fig2_panel(ax, xs, xerr, ys, yerr, colors, filled, band=None) -> None:
    """Points (x ± xerr, y ± yerr) coloured per epoch, filled in the terminal phase; ``band``:
    a grey interval of x per point."""
    terminal = [x for x, f in zip(xs, filled) if f]
    if terminal:
        ax.axvspan(
            min(terminal), max(terminal), color="0.88", zorder=0,
            label="terminal phase (LOO-NCC ≥ 98%)",
        )  # fmt: skip
    for i, (x, y) in enumerate(zip(xs, ys)):
        if band is not None and band[i] is not None:
            ax.errorbar(
                x, y, xerr=[[band[i][0]], [band[i][1]]], fmt="none", ecolor="0.6", lw=4,
                alpha=0.5, zorder=1,
            )  # fmt: skip
        ax.errorbar(
            x, y, xerr=xerr[i], yerr=yerr[i], fmt="o", color=colors[i],
            mfc=colors[i] if filled[i] else "white", ms=7, capsize=3,
        )  # fmt: skip
    ax.set_yscale("log")
    extent = [y + s * (e or 0.0) for y, e in zip(ys, yerr) for s in (-1, 1)]
    if min(ys) > 0:
        ax.set_ylim(*log_limits(extent))


def draw_fig2(
    nc1: Series,
    var: Series,
    mean: Series,
    path: Path,
    title: str,
    coefficient_std: Series | None = None,
    interval: tuple[Series, Series] | None = None,
    terminal: Collection[int] = (),
) -> Path | None:
    """NC1 (y, log) against the variance (left, log) and the mean (right) of the K leading CCA
    coefficients, one point per epoch coloured by epoch, the ``terminal`` epochs shaded and
    filled. Over several pairs the bars are the std over pairs; for one pair the right panel's
    bars are ``coefficient_std`` (the std of the K coefficients, the paper's dots) and, in grey,
    the ``interval`` of the mean. None when no epoch has all three series."""
    epochs = sorted(set(nc1.epochs) & set(var.epochs) & set(mean.epochs))
    if not epochs:
        return None
    nc1, var, mean = (s.at(epochs) for s in (nc1, var, mean))
    pairs = max(s.pairs for s in (nc1, var, mean)) > 1
    band = None
    if pairs:
        right_err = list(mean.std)
    else:
        right_err = _value_at(coefficient_std, epochs)
        if interval is not None:
            ends = zip(_value_at(interval[0], epochs), _value_at(interval[1], epochs), mean.mean)
            # ncib's intervals span their estimate; one that does not draws no negative bar
            band = [
                None if None in (lo, hi) else (max(m - lo, 0.0), max(hi - m, 0.0))
                for lo, hi, m in ends
            ]
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.2), sharey=True)
    norm = matplotlib.colors.Normalize(min(epochs), max(max(epochs), min(epochs) + 1))
    cmap = plt.get_cmap("viridis")
    colors, filled = [cmap(norm(e)) for e in epochs], [e in terminal for e in epochs]
    right = "mean of the K leading CCA coefficients" + ("" if pairs else " (± std)")
    for ax, x, xerr, label, bars in (
        (axes[0], var.mean, list(var.std), "variance of the K leading CCA coefficients", None),
        (axes[1], mean.mean, right_err, right, band),
    ):
        _fig2_panel(ax, x, xerr, nc1.mean, list(nc1.std), colors, filled, bars)
        ax.set_xlabel(label)
    if min(var.mean) > 0:
        axes[0].set_xscale("log")
        extent = [x + s * (e or 0.0) for x, e in zip(var.mean, var.std) for s in (-1, 1)]
        axes[0].set_xlim(*log_limits(extent))
        if max(var.mean) / min(var.mean) > 10:  # less than a decade: the minor ticks label it
            axes[0].xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes[0].set_ylabel("NC1 = tr(Σ_W Σ_B⁺)/K (mean of members)")
    if any(filled):
        axes[0].legend(loc="best", fontsize=8)
    epoch_colorbar(fig, plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes)
    fig.suptitle(title, fontsize=10)
    return save(fig, path, tight=False)
