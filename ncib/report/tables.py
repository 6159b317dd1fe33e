"""The paper's tables from a run's records (``analysis.jsonl``, ``linear_eval.json``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ncib.metrics import MEMBERS

__all__ = [
    "TERMINAL_TRAIN_ACC",
    "Table",
    "compression_generalisation_table",
    "identifiability_table",
    "information_table",
    "table1",
    "table2",
    "table2_per_epoch",
    "table3",
]

TERMINAL_TRAIN_ACC = 0.98  # terminal phase of training: train error below 2%


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


def pct(x):
    return None if x is None else 100.0 * x


def scalar(record: dict, key: str):
    """A scalar of a record, from whichever callback logged it (None if none did)."""
    for part in record.values():
        if isinstance(part, dict) and key in part.get("scalars", {}):
            return part["scalars"][key]
    return None


def is_terminal(record: dict) -> bool | None:
    accs = [scalar(record, f"probe/train_acc/raw/{m}") for m in MEMBERS]
    if any(a is None for a in accs):
        return None
    return min(accs) >= TERMINAL_TRAIN_ACC


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
        train = [scalar(r, f"probe/train_acc/raw/{m}") for m in MEMBERS]
        rows.append(
            [
                r["epoch"],
                *[pct(v) for v in vals],
                pct(min(train)),
                "yes" if is_terminal(r) else "no",
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
            "min train acc (raw)",
            "terminal phase",
        ],
        rows,
        f"Terminal phase: both members' raw-probe train accuracy ≥ {100 * TERMINAL_TRAIN_ACC:.0f}%.",
    )


def identifiability_table(records: list[dict]) -> Table | None:
    rows = []
    for r in records:
        vals = [
            scalar(r, key)
            for key in (
                "cca/mean_k/raw",
                "cca/std_k/raw",
                "cca/mean_k/normal",
                "cca/heldout/mean_k/raw",
                "cka/raw",
                "nc1/raw/m0",
                "nc1/raw/m1",
                "etf/cos_mean/tk/m0",
                "etf/cos_mean/tk/m1",
            )
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
            "mean ρ_K raw",
            "std ρ_K raw",
            "mean ρ_K normal",
            "held-out mean ρ_K raw",
            "CKA raw",
            "NC1 m0",
            "NC1 m1",
            "cos mean T_K m0",
            "cos mean T_K m1",
        ],
        rows,
        "ρ_K: the K leading canonical correlations between the members. Target cosine: −1/(K−1).",
    )


def information_table(records: list[dict]) -> Table | None:
    """The GIB's information per epoch, in-sample beside held-out (docs/math.md §5)."""
    keys = (
        "gib/mi_xy",
        "gib/heldout/mi_xy",
        "gib/i_ty_frac_tk",
        "gib/heldout/i_ty_frac_tk",
        "gib/beta_crit/k",
        "gib/heldout/beta_crit/k",
        "gib/beta_crit/k_next",
        "gib/heldout/beta_crit/k_next",
    )
    rows = [
        [r["epoch"], *(scalar(r, k) for k in keys)]
        for r in records
        if scalar(r, "gib/mi_xy") is not None
    ]
    if not rows:
        return None
    return Table(
        "Information between the members — in-sample vs held-out",
        [
            "epoch",
            "I(X;Y) in-sample",
            "I(X;Y) held-out",
            "I(T_K;Y)/I(X;Y) in-sample",
            "I(T_K;Y)/I(X;Y) held-out",
            "β_K in-sample",
            "β_K held-out",
            "β_K+1 in-sample",
            "β_K+1 held-out",
        ],
        rows,
        "In-sample: the canonical correlations of the training split, as in the paper; they carry "
        "about d²/(2N) nats of estimation noise. Held-out: directions fitted on the training split, "
        "correlations measured on the test split (docs/math.md §5). Nats; — where undefined.",
    )


def compression_generalisation_table(records: list[dict]) -> Table | None:
    """Per epoch: how much of I(X;Y) T_K keeps (held out) against the probes' test accuracy."""
    rows = []
    for r in records:
        frac = scalar(r, "gib/heldout/i_ty_frac_tk")
        accs = [scalar(r, f"probe/test_acc/{kind}/{m}") for kind in ("raw", "tk") for m in MEMBERS]
        if frac is None or any(a is None for a in accs):
            continue
        rows.append([r["epoch"], frac, scalar(r, "gib/i_ty_frac_tk"), *(pct(a) for a in accs)])
    if not rows:
        return None
    return Table(
        "Compression and generalisation per analysis epoch",
        [
            "epoch",
            "I(T_K;Y)/I(X;Y) held-out",
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
