"""The paper's figures from the analysis records (matplotlib, Agg backend, PNG).

Figs. 2 and 3 and the identifiability / information curves are drawn from
:class:`~ncib.report.series.Series` over ``runs``, one list of records per seed pair: a run's
report passes its own records (one pair, no spread), a sweep's report the records of a
recipe's finished runs (mean ± std over pairs, with bands). Which figures each report draws,
and the registered keys each cannot go without: :mod:`ncib.report.catalogue`. Every metric is
named through the registry.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ncib.metrics.registry import MEMBERS, key
from ncib.report.draw import (
    Curve,
    Panel,
    draw_curves,
    draw_fig2,
    epoch_colorbar,
    plt,
    save,
)
from ncib.report.series import series
from ncib.report.tables import PROBE, entry, is_terminal, scalar

__all__ = [
    "Recipes",
    "fig2_nc1_vs_identifiability",
    "fig2_over_pairs",
    "fig3_etf_in_tk",
    "fig3_over_pairs",
    "fig4a_dimension_sweep",
    "fig4b_feature_scaling",
    "fig4c_feature_scaling_k_prime",
    "fig_compression_generalisation",
    "fig_identifiability_information",
    "fig_information_curve",
]

Runs = Sequence[Sequence[dict]]  # one list of records per seed pair
Recipes = Sequence[tuple[str, Runs]]  # (legend, runs) per recipe of a sweep: one band each
NC1 = "nc1/{space}/{member}"
CCA_MEAN, CCA_VAR, CCA_STD = (f"cca/{s}_k/{{features}}" for s in ("mean", "var", "std"))
SCALING = "feature_scaling/{member}"
SCALING_K_PRIME = "transfer/feature_scaling_k_prime/{member}"
TRANSFER_PROBE, TRANSFER_NC4 = "transfer/probe_test_acc/{member}", "transfer/nc4_test/{member}"


def _title(base: str, runs: Runs, label: str | None) -> str:
    """``base``, and under it for a sweep's recipe its label and over how many pairs."""
    if label is None:
        return base
    pairs = f"mean ± std over {len(runs)} seed pairs" if len(runs) > 1 else "one seed pair"
    return f"{base}\n{label}: {pairs}"


def _terminal_epochs(runs: Runs) -> set[int]:
    """The epochs at which every pair that has a record is in the terminal phase."""
    flags: dict[int, list] = {}
    for records in runs:
        for r in records:
            flags.setdefault(int(r["epoch"]), []).append(is_terminal(r))
    return {e for e, f in flags.items() if all(f)}


# -- over epochs, from series (one pair or several) ------------------------------------------


def fig2_over_pairs(runs: Runs, path: Path, label: str | None = None) -> Path | None:
    """NC1 (mean of members, raw features; y, log) against the K leading CCA coefficients
    between the members (held out: fitted on the training split, measured on the test split),
    one point per epoch coloured by epoch, the terminal phase (:func:`is_terminal`) shaded and
    its points filled. Left: against their variance (the paper's x-axis); right: against their
    mean with error bars = their std (the paper's dots) and, in grey, the mean's interval; over
    several pairs the bars are the std over pairs."""
    mean, var, std = (series(runs, t, features="raw") for t in (CCA_MEAN, CCA_VAR, CCA_STD))
    lo, hi = (
        series(runs, "cca/mean_k_{bound}/{features}", bound=b, features="raw") for b in ("lo", "hi")
    )
    return draw_fig2(
        series(runs, NC1, space="raw"),
        var,
        mean,
        path,
        _title(
            "Fig. 2 — variability collapse (NC1) vs linear identifiability (raw features, held out)",
            runs,
            label,
        ),
        coefficient_std=std,
        interval=(lo, hi),
        terminal=_terminal_epochs(runs),
    )


FIG3 = (  # title, template, fixed axes, the axis that tells T_K from raw, scale
    ("A. probe test accuracy (%)", PROBE, {"split": "test"}, "probe_input", 100.0),
    ("B. equinorm (std/mean of norms)", "etf/equinorm/{space}/{member}", {}, "space", 1.0),
    ("C. std of angles (degrees)", "etf/angle_std_deg/{space}/{member}", {}, "space", 1.0),
    ("D. mean cosine of class means", "etf/cos_mean/{space}/{member}", {}, "space", 1.0),
)


def fig3_over_pairs(
    runs: Runs, num_classes: int, path: Path, per_member: bool = False, label: str | None = None
) -> Path | None:
    """Four panels over epochs, T_K (solid) against the raw features (dashed): probe
    accuracy, equinorm, angle std, cosine mean (with −1/(K−1)). Panel D is the mean of the
    pairwise cosines (docs/math.md §6 relates it to the paper's "cosine of the mean angle").
    ``per_member``: a line per member; otherwise the mean of the members."""
    if not series(runs, "etf/equinorm/{space}/{member}", space="tk"):
        return None
    # per member: its colour, T_K filled and raw hollow; the mean of members: the axes' colours
    lines = [({"member": m}, f" {m}", c, "white") for m, c in zip(MEMBERS, ("C0", "C1"))]
    panels = []
    for i, (title, template, fixed, axis, scale) in enumerate(FIG3):
        curves = tuple(
            Curve(
                name + suffix,
                series(runs, template, **fixed, **{axis: space}, **member).scaled(scale),
                style,
                color,
                color if space == "tk" else hollow,
            )
            for member, suffix, color, hollow in (lines if per_member else [({}, "", None, None)])
            for space, name, style in (("tk", "T_K", "-o"), ("raw", "raw", "--s"))
        )
        target = -1.0 / (num_classes - 1) if num_classes > 1 and "cosine" in title else None
        panels.append(
            Panel(title, curves, None if target is None else (target, "−1/(K−1)"), i in (0, 3))
        )
    base = (
        "Fig. 3 — simplex ETF inside the K-dimensional IB representation (solid) vs raw "
        "features (dashed)"
    )
    return draw_curves(panels, path, _title(base, runs, label))


def fig_identifiability_information(
    runs: Runs, path: Path, label: str | None = None
) -> Path | None:
    """The mean of the K leading CCA coefficients (held out), linear CKA and I(X;Y) between the
    members over epochs, each for raw features and normal scores (I(X;Y): held out and
    in-sample)."""
    features = (("raw", "raw"), ("normal", "normal scores"))
    made = [
        Panel(title, tuple(Curve(name, series(runs, template, features=f)) for f, name in features))
        for title, template in (
            ("mean of the K leading CCA coefficients (held out)", CCA_MEAN),
            ("linear CKA", "cka/{features}"),
        )
    ]
    made.append(
        Panel(
            "I(X;Y) between the members (nats)",
            (
                Curve("held out", series(runs, "gib/mi_xy")),
                Curve("in-sample", series(runs, "gib/insample/mi_xy")),
            ),
        )
    )
    if not any(c.series for p in made for c in p.curves):
        return None
    return draw_curves(made, path, _title("Identifiability and information", runs, label), 4.3)


# -- the recipes of a sweep on the same axes (one colour and band per recipe) -----------------


def fig2_nc1_vs_identifiability(records: list[dict], path: Path) -> Path | None:
    """Fig. 2 of one run (:func:`fig2_over_pairs` of its one pair)."""
    return fig2_over_pairs([records], path)


def fig3_etf_in_tk(records: list[dict], num_classes: int, path: Path) -> Path | None:
    """Fig. 3 of one run, a line per member (:func:`fig3_over_pairs` of its one pair)."""
    return fig3_over_pairs([records], num_classes, path, per_member=True)


# -- one run, one record ----------------------------------------------------------------------


def fig4b_feature_scaling(record: dict, path: Path) -> Path | None:
    """α_i / mean α of the K IB dimensions at one epoch (paper Fig. 4B)."""
    scaling = {m: entry(record, key(SCALING, member=m)) for m in MEMBERS}
    scaling = {m: v for m, v in scaling.items() if v is not None}
    if not scaling:
        return None
    values = list(scaling.values())
    if len(values) > 1 and all(
        len(v) == len(values[0])
        and all(abs(a - b) <= 1e-9 * max(1.0, abs(b)) for a, b in zip(v, values[0]))
        for v in values[1:]
    ):
        # α_i / mean α depends on the CCA spectrum the members share: equal by construction,
        # so one set of bars says it (two identical sets would suggest two measurements)
        scaling = {"both members (equal: the spectrum is shared)": values[0]}
    fig, ax = plt.subplots(figsize=(6, 3.6))
    k = len(next(iter(scaling.values())))
    width = 0.8 / len(scaling)
    for j, (m, vals) in enumerate(sorted(scaling.items())):
        ax.bar(
            [i + 1 + (j - (len(scaling) - 1) / 2) * width for i in range(k)], vals, width, label=m
        )
    ax.axhline(1.0, color="k", lw=0.8)
    for y in (0.9, 1.1):
        ax.axhline(y, color="0.5", lw=0.6, ls=":")
    ax.set_xlabel("IB dimension i (order of the phase transitions)")
    ax.set_ylabel("α_i / mean α")
    ax.set_title(f"Fig. 4B — feature scaling of T_K at epoch {record['epoch']}")
    ax.legend(fontsize=8)
    return save(fig, path)


def fig_information_curve(record: dict, path: Path) -> Path | None:
    """I(T;Y) against I(T;X) along β, with I(X;Y) (the GIB information curve): held out (with
    the interval of I(X;Y) shaded), and in-sample where the record has it."""
    held = entry(record, key("information_curve"))
    if not held:
        return None
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(held["i_tx"], held["i_ty"], "-", color="C2", label="held out")
    ax.axhline(held["i_xy"], color="C2", ls=":", lw=0.8, label="I(X;Y) held out")
    lo, hi = (scalar(record, key("gib/mi_xy_{bound}", bound=b)) for b in ("lo", "hi"))
    if None not in (lo, hi) and lo == lo and hi == hi:
        ax.axhspan(lo, hi, color="C2", alpha=0.15, lw=0, label="interval of I(X;Y)")
    curve = entry(record, key("insample/information_curve"))
    if curve:
        ax.plot(curve["i_tx"], curve["i_ty"], "-", color="C0", label="in-sample")
        ax.axhline(curve["i_xy"], color="C0", ls=":", lw=0.8, label="I(X;Y) in-sample")
    tk_x, tk_y = scalar(record, key("gib/i_tx_tk")), scalar(record, key("gib/i_ty_tk"))
    if tk_x is not None:
        ax.plot([tk_x], [tk_y], "o", color="C3", label="T_K")
    ax.set_xlabel("I(T;X) (nats)")
    ax.set_ylabel("I(T;Y) (nats)")
    ax.set_title(f"GIB information curve, epoch {record['epoch']}")
    ax.legend(fontsize=8)
    return save(fig, path)


def fig_compression_generalisation(records: list[dict], path: Path) -> Path | None:
    """Held-out I(T_K;Y)/I(X;Y) against the analysis probe's test accuracy, one point per epoch
    and member (raw features: circles, T_K: squares), coloured by epoch."""
    pts = []
    for r in records:
        frac = scalar(r, key("gib/i_ty_frac_tk"))
        for m in MEMBERS:
            raw, tk = (
                scalar(r, key(PROBE, split="test", probe_input=i, member=m)) for i in ("raw", "tk")
            )
            if None not in (frac, raw, tk):
                pts.append((r["epoch"], frac, raw, tk))
    if not pts:
        return None
    import matplotlib.colors

    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    epochs = [p[0] for p in pts]
    norm = matplotlib.colors.Normalize(min(epochs), max(max(epochs), min(epochs) + 1))
    x = [p[1] for p in pts]
    ax.scatter(x, [100 * p[2] for p in pts], c=epochs, norm=norm, marker="o", label="raw features")
    sc = ax.scatter(x, [100 * p[3] for p in pts], c=epochs, norm=norm, marker="s", label="T_K")
    epoch_colorbar(fig, sc, ax=ax)
    ax.set_xlabel("held-out I(T_K;Y) / I(X;Y)")
    ax.set_ylabel("analysis probe test accuracy (%)")
    ax.set_title("Compression vs generalisation")
    ax.legend(fontsize=8)
    return save(fig, path)


def fig4a_dimension_sweep(record: dict, path: Path) -> Path | None:
    """Analysis-probe accuracy and NC4 of T_k against k for each member, K′ marked (Fig. 4A)."""
    ks = entry(record, key("transfer/grid"))
    probe, nc4 = (
        {m: entry(record, key(template, member=m)) for m in MEMBERS}
        for template in (TRANSFER_PROBE, TRANSFER_NC4)
    )
    if not ks or None in (*probe.values(), *nc4.values()):
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharex=True)
    for m, color in zip(MEMBERS, ("C0", "C1")):
        axes[0].plot(ks, [100 * a for a in probe[m]], "-o", color=color, ms=3, label=f"T_k {m}")
        raw = scalar(record, key(PROBE, split="test", probe_input="raw", member=m))
        if raw is not None:
            axes[0].axhline(100 * raw, color=color, ls="--", lw=0.8, label=f"raw {m}")
        axes[1].plot(ks, nc4[m], "-o", color=color, ms=3, label=m)
        k_prime = scalar(record, key("transfer/k_prime/{member}", member=m))
        for ax in axes:
            if k_prime is not None:
                ax.axvline(k_prime, color=color, ls=":", lw=1.0)
    axes[0].set_ylabel("analysis probe test accuracy (%)")
    axes[1].set_ylabel("NC4 agreement (NCC vs probe)")
    for ax in axes:
        ax.set_xlabel("dimension k of the IB representation")
        ax.legend(fontsize=7)
    fig.suptitle("Fig. 4A — the IB-k representation against k (K′ dotted)", fontsize=10)
    return save(fig, path)


def fig4c_feature_scaling_k_prime(record: dict, path: Path) -> Path | None:
    """α_i / mean α of T_K′ beside that of T_K, per member (Fig. 4C)."""
    pairs = [
        (
            m,
            entry(record, key(SCALING_K_PRIME, member=m)) or [],
            entry(record, key(SCALING, member=m)) or [],
        )
        for m in MEMBERS
    ]
    if not any(kp for _, kp, _ in pairs):
        return None
    fig, axes = plt.subplots(1, len(pairs), figsize=(5 * len(pairs), 3.6), squeeze=False)
    for ax, (m, kp, k) in zip(axes[0], pairs):
        if kp:
            ax.plot(range(1, len(kp) + 1), kp, ".-", label=f"T_K′ (K′ = {len(kp)})")
        if k:
            ax.plot(range(1, len(k) + 1), k, "o-", label=f"T_K (K = {len(k)})")
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xlabel("IB dimension i")
        ax.set_ylabel("α_i / mean α")
        ax.set_title(m)
        ax.legend(fontsize=8)
    fig.suptitle("Fig. 4C — feature scaling at K′ beside the K-dimensional one", fontsize=10)
    return save(fig, path)
