"""The paper's figures from the analysis records (matplotlib, Agg backend, PNG)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

from ncib.metrics import MEMBERS  # noqa: E402
from ncib.report.tables import is_terminal, scalar  # noqa: E402

__all__ = [
    "fig2_nc1_vs_identifiability",
    "fig3_etf_in_tk",
    "fig4a_dimension_sweep",
    "fig4b_feature_scaling",
    "fig4c_feature_scaling_k_prime",
    "fig_compression_generalisation",
    "fig_information_curve",
]


def _series(records, key):
    pts = [(r["epoch"], scalar(r, key)) for r in records]
    pts = [(e, v) for e, v in pts if v is not None]
    return [e for e, _ in pts], [v for _, v in pts]


def _mean_of_members(records, key_fmt):
    """Per epoch, the mean over members of ``key_fmt.format(m=...)``."""
    out = []
    for r in records:
        vals = [scalar(r, key_fmt.format(m=m)) for m in MEMBERS]
        if all(v is not None for v in vals):
            out.append((r["epoch"], sum(vals) / len(vals)))
    return [e for e, _ in out], [v for _, v in out]


def _integer_ticks(axis, epochs=()) -> None:
    """Epochs are whole numbers: no 0.5 ticks on an epoch axis or colour bar (with one or two
    epochs, exactly those)."""
    epochs = sorted(set(epochs))
    if epochs and epochs[-1] - epochs[0] < 2:
        axis.set_major_locator(matplotlib.ticker.FixedLocator(epochs))
    else:
        axis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))


def _epoch_colorbar(fig, mappable, **kwargs):
    bar = fig.colorbar(mappable, label="epoch", **kwargs)
    _integer_ticks(bar.ax.yaxis)
    return bar


def _log_limits(values) -> tuple[float, float]:
    """Limits of a log axis that show every positive value with a margin (matplotlib's own
    limits can leave a single point on the frame, where it is not drawn)."""
    positive = [v for v in values if v > 0]
    return min(positive) / 1.6, max(positive) * 1.6


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def fig2_nc1_vs_identifiability(records: list[dict], path: Path) -> Path | None:
    """NC1 (mean of members, raw features; y, log) against the K leading CCA coefficients
    between the members (held out: fitted on the training split, measured on the test split),
    one point per epoch coloured by epoch, the terminal phase (:func:`is_terminal`) shaded and
    its points filled. Left: against their variance (the paper's x-axis); right: against their
    mean with error bars = their std (the paper's dots) and, in grey, the mean's interval."""
    pts = []
    for r in records:
        nc1 = [scalar(r, f"nc1/raw/{m}") for m in MEMBERS]
        mean, var, std = (scalar(r, f"cca/{s}_k/raw") for s in ("mean", "var", "std"))
        if None in (*nc1, mean, var, std):
            continue
        lo, hi = scalar(r, "cca/mean_k_lo/raw"), scalar(r, "cca/mean_k_hi/raw")
        band = None if None in (lo, hi) or lo != lo or hi != hi else (mean - lo, hi - mean)
        pts.append((r["epoch"], sum(nc1) / 2, mean, var, std, bool(is_terminal(r)), band))
    if not pts:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.2), sharey=True)
    epochs = [p[0] for p in pts]
    norm = matplotlib.colors.Normalize(min(epochs), max(max(epochs), min(epochs) + 1))
    cmap = plt.get_cmap("viridis")
    for ax, (label, xs, xerr) in zip(
        axes,
        (
            ("variance of the K leading CCA coefficients", [p[3] for p in pts], None),
            (
                "mean of the K leading CCA coefficients (± std)",
                [p[2] for p in pts],
                [p[4] for p in pts],
            ),
        ),
    ):
        terminal = [x for x, p in zip(xs, pts) if p[5]]
        if terminal:
            ax.axvspan(
                min(terminal),
                max(terminal),
                color="0.88",
                zorder=0,
                label="terminal phase (LOO-NCC ≥ 98%)",
            )
        for i, p in enumerate(pts):
            c = cmap(norm(p[0]))
            if xerr is not None and p[6] is not None:
                ax.errorbar(
                    xs[i], p[1], xerr=[[p[6][0]], [p[6][1]]], fmt="none", ecolor="0.6", lw=4,
                    alpha=0.5, zorder=1,
                )  # fmt: skip
            ax.errorbar(
                xs[i],
                p[1],
                xerr=None if xerr is None else xerr[i],
                fmt="o",
                color=c,
                mfc=c if p[5] else "white",
                ms=7,
                capsize=3,
            )
        ax.set_xlabel(label)
        ax.set_yscale("log")
        if min(p[1] for p in pts) > 0:
            ax.set_ylim(*_log_limits([p[1] for p in pts]))
        if xerr is None and min(xs) > 0:
            ax.set_xscale("log")
            ax.set_xlim(*_log_limits(xs))
            if max(xs) / min(xs) > 10:  # less than a decade: the minor ticks are the labels
                ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes[0].set_ylabel("NC1 = tr(Σ_W Σ_B⁺)/K (mean of members)")
    if any(p[5] for p in pts):
        axes[0].legend(loc="best", fontsize=8)
    _epoch_colorbar(fig, plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes)
    fig.suptitle(
        "Fig. 2 — variability collapse (NC1) vs linear identifiability (raw features, held out)",
        fontsize=10,
    )
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def fig3_etf_in_tk(records: list[dict], num_classes: int, path: Path) -> Path | None:
    """Four panels over epochs, T_K (solid) against the raw features (dashed): probe
    accuracy, equinorm, angle std, cosine mean (with −1/(K−1)). Panel D is the mean of the
    pairwise cosines (docs/math.md §6 relates it to the paper's "cosine of the mean angle")."""
    panels = [
        ("A. probe test accuracy (%)", "probe/test_acc/tk/{m}", "probe/test_acc/raw/{m}", None),
        ("B. equinorm (std/mean of norms)", "etf/equinorm/tk/{m}", "etf/equinorm/raw/{m}", None),
        (
            "C. std of angles (degrees)",
            "etf/angle_std_deg/tk/{m}",
            "etf/angle_std_deg/raw/{m}",
            None,
        ),
        (
            "D. mean cosine of class means",
            "etf/cos_mean/tk/{m}",
            "etf/cos_mean/raw/{m}",
            -1.0 / (num_classes - 1),
        ),
    ]
    if not _mean_of_members(records, panels[1][1])[0]:
        return None
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    for ax, (title, tk_key, raw_key, target) in zip(axes, panels):
        scale = 100.0 if "%" in title else 1.0  # accuracies in percent, as everywhere else
        for m, color in zip(MEMBERS, ("C0", "C1")):
            for key, style, face, label in (
                (tk_key, "-o", color, "T_K"),
                (raw_key, "--s", "white", "raw"),
            ):
                epochs, values = _series(records, key.format(m=m))
                ax.plot(
                    epochs, [scale * v for v in values], style, color=color, mfc=face, ms=4,
                    label=f"{label} {m}",
                )  # fmt: skip
        if target is not None:
            ax.axhline(target, color="k", lw=0.8, ls=":", label="−1/(K−1)")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        _integer_ticks(ax.xaxis, [r["epoch"] for r in records])
    axes[0].legend(fontsize=7)
    axes[3].legend(fontsize=7)
    fig.suptitle(
        "Fig. 3 — simplex ETF inside the K-dimensional IB representation (solid) vs raw features (dashed)",
        fontsize=10,
    )
    return _save(fig, path)


def fig4b_feature_scaling(record: dict, path: Path) -> Path | None:
    """α_i / mean α of the K IB dimensions at one epoch (paper Fig. 4B)."""
    gib = record.get("gib") or {}
    scaling = {m: gib[f"feature_scaling/{m}"] for m in MEMBERS if f"feature_scaling/{m}" in gib}
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
    return _save(fig, path)


def fig_information_curve(record: dict, path: Path) -> Path | None:
    """I(T;Y) against I(T;X) along β, with I(X;Y) (the GIB information curve): held out (with
    the interval of I(X;Y) shaded), and in-sample where the record has it."""
    gib = record.get("gib") or {}
    held = gib.get("information_curve")
    if not held:
        return None
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(held["i_tx"], held["i_ty"], "-", color="C2", label="held out")
    ax.axhline(held["i_xy"], color="C2", ls=":", lw=0.8, label="I(X;Y) held out")
    lo, hi = scalar(record, "gib/mi_xy_lo"), scalar(record, "gib/mi_xy_hi")
    if None not in (lo, hi) and lo == lo and hi == hi:
        ax.axhspan(lo, hi, color="C2", alpha=0.15, lw=0, label="interval of I(X;Y)")
    curve = gib.get("insample/information_curve")
    if curve:
        ax.plot(curve["i_tx"], curve["i_ty"], "-", color="C0", label="in-sample")
        ax.axhline(curve["i_xy"], color="C0", ls=":", lw=0.8, label="I(X;Y) in-sample")
    tk_x, tk_y = scalar(record, "gib/i_tx_tk"), scalar(record, "gib/i_ty_tk")
    if tk_x is not None:
        ax.plot([tk_x], [tk_y], "o", color="C3", label="T_K")
    ax.set_xlabel("I(T;X) (nats)")
    ax.set_ylabel("I(T;Y) (nats)")
    ax.set_title(f"GIB information curve, epoch {record['epoch']}")
    ax.legend(fontsize=8)
    return _save(fig, path)


def fig_compression_generalisation(records: list[dict], path: Path) -> Path | None:
    """Held-out I(T_K;Y)/I(X;Y) against the analysis probe's test accuracy, one point per epoch
    and member (raw features: circles, T_K: squares), coloured by epoch."""
    pts = []
    for r in records:
        frac = scalar(r, "gib/i_ty_frac_tk")
        for m in MEMBERS:
            raw, tk = scalar(r, f"probe/test_acc/raw/{m}"), scalar(r, f"probe/test_acc/tk/{m}")
            if None not in (frac, raw, tk):
                pts.append((r["epoch"], frac, raw, tk))
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    epochs = [p[0] for p in pts]
    norm = matplotlib.colors.Normalize(min(epochs), max(max(epochs), min(epochs) + 1))
    ax.scatter(
        [p[1] for p in pts],
        [100 * p[2] for p in pts],
        c=epochs,
        norm=norm,
        marker="o",
        label="raw features",
    )
    sc = ax.scatter(
        [p[1] for p in pts], [100 * p[3] for p in pts], c=epochs, norm=norm, marker="s", label="T_K"
    )
    _epoch_colorbar(fig, sc, ax=ax)
    ax.set_xlabel("held-out I(T_K;Y) / I(X;Y)")
    ax.set_ylabel("analysis probe test accuracy (%)")
    ax.set_title("Compression vs generalisation")
    ax.legend(fontsize=8)
    return _save(fig, path)


def fig4a_dimension_sweep(record: dict, path: Path) -> Path | None:
    """Analysis-probe accuracy and NC4 of T_k against k for each member, K′ marked (Fig. 4A)."""
    t = record.get("transfer")
    if not t or not t.get("transfer/grid"):
        return None
    ks = t["transfer/grid"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharex=True)
    for m, color in zip(MEMBERS, ("C0", "C1")):
        axes[0].plot(
            ks,
            [100 * a for a in t[f"transfer/probe_test_acc/{m}"]],
            "-o",
            color=color,
            ms=3,
            label=f"T_k {m}",
        )
        raw = scalar(record, f"probe/test_acc/raw/{m}")
        if raw is not None:
            axes[0].axhline(100 * raw, color=color, ls="--", lw=0.8, label=f"raw {m}")
        axes[1].plot(ks, t[f"transfer/nc4_test/{m}"], "-o", color=color, ms=3, label=m)
        k_prime = scalar(record, f"transfer/k_prime/{m}")
        for ax in axes:
            if k_prime is not None:
                ax.axvline(k_prime, color=color, ls=":", lw=1.0)
    axes[0].set_ylabel("analysis probe test accuracy (%)")
    axes[1].set_ylabel("NC4 agreement (NCC vs probe)")
    for ax in axes:
        ax.set_xlabel("dimension k of the IB representation")
        ax.legend(fontsize=7)
    fig.suptitle("Fig. 4A — the IB-k representation against k (K′ dotted)", fontsize=10)
    return _save(fig, path)


def fig4c_feature_scaling_k_prime(record: dict, path: Path) -> Path | None:
    """α_i / mean α of T_K′ beside that of T_K, per member (Fig. 4C)."""
    t, gib = record.get("transfer") or {}, record.get("gib") or {}
    pairs = [
        (
            m,
            t.get(f"transfer/feature_scaling_k_prime/{m}") or [],
            gib.get(f"feature_scaling/{m}") or [],
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
    return _save(fig, path)
