"""The paper's tables from a run's records (``analysis.jsonl``, ``linear_eval.json``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ncib.metrics import MEMBERS

__all__ = [
    "TERMINAL_ACC",
    "interval",
    "is_terminal",
    "Table",
    "compression_generalisation_table",
    "identifiability_table",
    "information_table",
    "table1",
    "table2",
    "table2_per_epoch",
    "table3",
]

TERMINAL_ACC = 0.98
"""The terminal-phase marker: both members' leave-one-out nearest-class-centre accuracy on the
analysis subset's raw training features reaches 98 % (docs/math.md §8). A probe's training
accuracy cannot mark it: with few samples per class against d any encoder, even an untrained
one, separates its training split."""


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list] = field(default_factory=list)
    note: str = ""

    def markdown(self) -> str:
        def cell(v):
            if v is None:
                return "—"
            return f"{v:.4g}" if isinstance(v, float) else str(v)

        lines = [f"### {self.title}", ""]
        if self.note:
            lines += [self.note, ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "---|" * len(self.columns))
        lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in self.rows]
        return "\n".join(lines) + "\n"


INTERVAL_NOTE = (
    "[lo, hi]: a 95 % interval for the population value on this pair of encoders — "
    "test rows resampled and the fit repeated on resampled training folds, widened by the "
    "estimated bias (docs/math.md §5.5); it covers estimation noise under the Gaussian-copula "
    "model, not the spread over seed pairs or the gap between training and test distributions."
)


def pct(x):
    return None if x is None else 100.0 * x


def scalar(record: dict, key: str):
    """A scalar of a record, from whichever callback logged it (None if none did)."""
    for part in record.values():
        if isinstance(part, dict) and key in part.get("scalars", {}):
            return part["scalars"][key]
    return None


def interval(record: dict, key: str) -> str | None:
    """``estimate [lo, hi]`` of a headline key and its interval (``key`` with ``_lo``/``_hi``
    appended to its statistic: ``cca/mean_k/raw`` → ``cca/mean_k_lo/raw``); the estimate alone
    when the run computed no interval; None when the record lacks the key."""
    value = scalar(record, key)
    if value is None:
        return None
    if key.startswith("cca/"):  # cca/<stat>/<features> → cca/<stat>_lo/<features>
        head, features = key.rsplit("/", 1)
        lo, hi = (scalar(record, f"{head}_{b}/{features}") for b in ("lo", "hi"))
    else:  # gib/<name> → gib/<name>_lo
        lo, hi = scalar(record, f"{key}_lo"), scalar(record, f"{key}_hi")
    if lo is None or hi is None or lo != lo or hi != hi:  # absent or NaN: no interval
        return f"{value:.4g}"
    return f"{value:.4g} [{lo:.4g}, {hi:.4g}]"


def is_terminal(record: dict) -> bool | None:
    """Whether both members are in the terminal phase (:data:`TERMINAL_ACC`); None when the
    record has no leave-one-out NCC accuracy (runs written before it existed: no marker)."""
    accs = [scalar(record, f"ncc/loo_acc/raw/{m}") for m in MEMBERS]
    if any(a is None for a in accs):
        return None
    return min(accs) >= TERMINAL_ACC


def table1(evaluation: dict | None, dataset: str) -> Table | None:
    """Offline linear evaluation: accuracy of m0, of m1, and of both (paper Table 1)."""
    if not evaluation:
        return None
    e = evaluation
    return Table(
        "Table 1 — offline linear evaluation of the frozen encoders (test accuracy, %)",
        ["dataset", "m0", "m1", "both correct"],
        [[dataset, pct(e["test_acc/m0"]), pct(e["test_acc/m1"]), pct(e["both_correct"])]],
        f"Protocol: {e.get('protocol', 'cached')}; {e.get('num_test', '?')} test samples; train accuracy "
        f"m0 {pct(e['train_acc/m0']):.1f}, m1 {pct(e['train_acc/m1']):.1f}.",
    )


def table2(record: dict, feature_dim: int, k: int) -> Table | None:
    """Probe accuracy on raw, ranked and ranked K-IB features at one epoch (paper Table 2)."""
    names = {
        "raw": f"raw ({feature_dim}D)",
        "normal": f"normal scores, 'ranked' ({feature_dim}D)",
        "tk": f"T_K of the normal scores, 'ranked K-IB' ({k}D)",
    }
    rows = []
    for kind, label in names.items():
        accs = [scalar(record, f"probe/test_acc/{kind}/{m}") for m in MEMBERS]
        if any(a is None for a in accs):
            return None
        rows.append([label, pct(accs[0]), pct(accs[1]), pct(sum(accs) / 2)])
    return Table(
        f"Table 2 — analysis probe test accuracy (%) at epoch {record['epoch']}",
        ["representation", "m0", "m1", "mean"],
        rows,
        "The analysis probe: full-batch logistic regression on standardised features; normal "
        "scores = the Gaussian copula of the features (the paper's 'ranked'); T_K = the "
        "K-dimensional GIB representation.",
    )


def table2_per_epoch(records: list[dict]) -> Table | None:
    rows = []
    for r in records:
        vals = [
            scalar(r, f"probe/test_acc/{kind}/{m}")
            for kind in ("raw", "normal", "tk")
            for m in MEMBERS
        ]
        if any(v is None for v in vals):
            continue
        loo = [scalar(r, f"ncc/loo_acc/raw/{m}") for m in MEMBERS]
        terminal = is_terminal(r)
        rows.append(
            [
                r["epoch"],
                *[pct(v) for v in vals],
                None if None in loo else pct(min(loo)),
                "no marker" if terminal is None else ("yes" if terminal else "no"),
            ]
        )
    if not rows:
        return None
    return Table(
        "Table 2 per analysis epoch — analysis probe test accuracy (%)",
        [
            "epoch",
            "raw m0",
            "raw m1",
            "normal m0",
            "normal m1",
            "T_K m0",
            "T_K m1",
            "min LOO-NCC acc (raw)",
            "terminal phase",
        ],
        rows,
        f"Terminal phase: both members' leave-one-out nearest-class-centre accuracy on the raw "
        f"training features of the analysis subset ≥ {100 * TERMINAL_ACC:.0f}% (docs/math.md §8); "
        "'no marker': a run written before the marker existed.",
    )


def identifiability_table(records: list[dict]) -> Table | None:
    """Per epoch: the K leading canonical correlations held out (with their interval) beside the
    in-sample ones, CKA and the collapse of each member (docs/math.md §3, §5.4, §5.5)."""
    rows = []
    for r in records:
        vals = [
            interval(r, "cca/mean_k/raw"),
            scalar(r, "cca/std_k/raw"),
            interval(r, "cca/mean_k/normal"),
            scalar(r, "cca/insample/mean_k/raw"),
            *(
                scalar(r, key)
                for key in (
                    "cka/raw",
                    "nc1/raw/m0",
                    "nc1/raw/m1",
                    "etf/cos_mean/tk/m0",
                    "etf/cos_mean/tk/m1",
                )
            ),
        ]
        if all(v is None for v in vals):
            continue
        rows.append([r["epoch"], *vals])
    if not rows:
        return None
    return Table(
        "Identifiability and collapse per analysis epoch",
        [
            "epoch",
            "mean ρ_K raw [interval]",
            "std ρ_K raw",
            "mean ρ_K normal [interval]",
            "mean ρ_K raw in-sample",
            "CKA raw",
            "NC1 m0",
            "NC1 m1",
            "cos mean T_K m0",
            "cos mean T_K m1",
        ],
        rows,
        "ρ_K: the K leading canonical correlations between the members, directions fitted on the "
        "training split and correlations measured on the test split (held out); in-sample: "
        "measured on the training split, as in the paper, biased upwards by about d/N. "
        + INTERVAL_NOTE
        + " Target cosine: −1/(K−1).",
    )


def information_table(records: list[dict]) -> Table | None:
    """The GIB's information per epoch: held out with intervals, in-sample beside (docs/math.md
    §5.4, §5.5)."""
    rows = [
        [
            r["epoch"],
            interval(r, "gib/mi_xy"),
            scalar(r, "gib/insample/mi_xy"),
            interval(r, "gib/i_ty_frac_tk"),
            scalar(r, "gib/insample/i_ty_frac_tk"),
            interval(r, "gib/beta_crit/k"),
            interval(r, "gib/beta_crit/k_next"),
            scalar(r, "gib/insample/beta_crit/k_next"),
            scalar(r, "gib/null_rho"),
        ]
        for r in records
        if scalar(r, "gib/mi_xy") is not None
    ]
    if not rows:
        return None
    return Table(
        "Information between the members — held out [interval], in-sample beside",
        [
            "epoch",
            "I(X;Y) [interval]",
            "I(X;Y) in-sample",
            "I(T_K;Y)/I(X;Y) [interval]",
            "in-sample",
            "β_K [interval]",
            "β_K+1 [interval]",
            "β_K+1 in-sample",
            "null ρ",
        ],
        rows,
        "Held out: directions fitted on the training split, correlations measured on the test "
        "split; correlations below the null threshold 'null ρ' (what independent features reach "
        "at this N and d) count as none, so β_K+1 = inf means no (K+1)-th transition is "
        "resolved. In-sample: the paper's estimate, biased upwards by about d²/(2N) nats. "
        + INTERVAL_NOTE
        + " Nats; — where undefined.",
    )


def compression_generalisation_table(records: list[dict]) -> Table | None:
    """Per epoch: how much of I(X;Y) T_K keeps (held out) against the probes' test accuracy."""
    rows = []
    for r in records:
        frac = scalar(r, "gib/i_ty_frac_tk")
        accs = [scalar(r, f"probe/test_acc/{kind}/{m}") for kind in ("raw", "tk") for m in MEMBERS]
        if frac is None or any(a is None for a in accs):
            continue
        rows.append(
            [r["epoch"], interval(r, "gib/i_ty_frac_tk"), scalar(r, "gib/insample/i_ty_frac_tk")]
            + [pct(a) for a in accs]
        )
    if not rows:
        return None
    return Table(
        "Compression and generalisation per analysis epoch",
        [
            "epoch",
            "I(T_K;Y)/I(X;Y) held out [interval]",
            "in-sample",
            "probe raw m0",
            "probe raw m1",
            "probe T_K m0",
            "probe T_K m1",
        ],
        rows,
        "Probe: the analysis probe's test accuracy (%).",
    )


def table3(record: dict) -> Table | None:
    """Zero-shot transfer: the analysis probe on raw, normal-score and IB(K′) features of each
    member of a pretrained pair on the target dataset (the paper's Table 3)."""
    t = record.get("transfer")
    if not t:
        return None
    rows = []
    for m in MEMBERS:
        k_prime = scalar(record, f"transfer/k_prime/{m}")
        rows.append(
            [
                m,
                pct(scalar(record, f"probe/test_acc/raw/{m}")),
                pct(scalar(record, f"probe/test_acc/normal/{m}")),
                pct(scalar(record, f"transfer/probe_test_acc_k_prime/{m}")),
                None if k_prime is None else int(k_prime),
            ]
        )
    source = record.get("source") or {}
    return Table(
        "Table 3 — zero-shot transfer: analysis probe test accuracy (%)",
        ["member", "raw", "normal scores ('ranked')", "IB(K′)", "K′"],
        rows,
        f"Encoders pretrained on {source.get('dataset', '?')} (seed pair {source.get('seed_pair', '?')}), frozen; "
        f"K′ = the smallest k of the grid whose T_k probe is within {t.get('transfer/tolerance', '?')} points "
        "of the raw-feature probe (— if none).",
    )
