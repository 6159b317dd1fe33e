"""The paper's tables from a run's records (``analysis.jsonl``, ``linear_eval.json``).

Every metric is named through the registry (:func:`ncib.metrics.registry.key` and
:func:`~ncib.metrics.registry.member_keys`): a name it does not hold is an error."""

from __future__ import annotations

from dataclasses import dataclass, field

from ncib.metrics.registry import MEMBERS, bound_keys, key, member_keys, metric_of

__all__ = [
    "PROBE",
    "TERMINAL_ACC",
    "interval",
    "is_terminal",
    "scalar",
    "Table",
    "compression_generalisation_table",
    "entry",
    "holds",
    "classifier_table",
    "identifiability_table",
    "information_table",
    "table1",
    "table2",
    "table2_per_epoch",
    "table3",
]

PROBE = "probe/{split}_acc/{probe_input}/{member}"
"""The analysis probe's accuracy (Table 2), per split, input and member."""
LOO = "ncc/loo_acc/{space}/{member}"
"""Leave-one-out nearest-class-centre accuracy: the terminal-phase marker's quantity."""

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


def scalar(record: dict, name: str):
    """A scalar of a record, from whichever callback logged it (None if none did)."""
    for part in record.values():
        if isinstance(part, dict) and name in part.get("scalars", {}):
            return part["scalars"][name]
    return None


def entry(record: dict, name: str):
    """A record entry (not a logged scalar: a spectrum, a curve, a grid) of the registered key
    ``name``, from the part of the record its group wrote (None if absent). Raises ``KeyError``
    for a name the registry does not hold."""
    metric = metric_of(name)
    if metric is None:
        raise KeyError(f"{name!r} is not a registered metric (ncib/metrics/catalogue.py)")
    part = record.get(metric.group)
    return part.get(name) if isinstance(part, dict) else None


def holds(record: dict, name: str) -> bool:
    """Whether the record has a value of the registered key ``name`` (a scalar or an entry)."""
    metric = metric_of(name)
    if metric is None:
        raise KeyError(f"{name!r} is not a registered metric (ncib/metrics/catalogue.py)")
    if metric.shape == "scalar":
        return scalar(record, name) is not None
    return entry(record, name) not in (None, [], {})


def interval(record: dict, template: str, **axes: str) -> str | None:
    """``estimate [lo, hi]`` of a registered value and its interval (the registry's
    :func:`~ncib.metrics.registry.bound_keys`: ``cca/mean_k/raw`` → ``cca/mean_k_lo/raw``); the
    estimate alone when the run computed no interval; None when the record lacks the value."""
    value = scalar(record, key(template, **axes))
    if value is None:
        return None
    ends = bound_keys(template, **axes)
    lo, hi = (None, None) if ends is None else (scalar(record, k) for k in ends)
    if lo is None or hi is None or lo != lo or hi != hi:  # absent or NaN: no interval
        return f"{value:.4g}"
    return f"{value:.4g} [{lo:.4g}, {hi:.4g}]"


def is_terminal(record: dict) -> bool | None:
    """Whether both members are in the terminal phase (:data:`TERMINAL_ACC`); None when the
    record has no leave-one-out NCC accuracy (runs written before it existed: no marker)."""
    accs = [scalar(record, k) for k in member_keys(LOO, space="raw")]
    if any(a is None for a in accs):
        return None
    return min(accs) >= TERMINAL_ACC


def table1(evaluation: dict | None, dataset: str) -> Table | None:
    """Offline linear evaluation: accuracy of m0, of m1, and of both (paper Table 1)."""
    if not evaluation:
        return None
    e, acc = evaluation, "{split}_acc/{member}"
    test, train = member_keys(acc, split="test"), member_keys(acc, split="train")
    return Table(
        "Table 1 — offline linear evaluation of the frozen encoders (test accuracy, %)",
        ["dataset", "m0", "m1", "both correct"],
        [[dataset, *(pct(e[k]) for k in test), pct(e[key("both_correct")])]],
        f"Protocol: {e.get('protocol', 'cached')}; {e.get('num_test', '?')} test samples; train "
        f"accuracy m0 {pct(e[train[0]]):.1f}, m1 {pct(e[train[1]]):.1f}.",
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
        accs = [scalar(record, k) for k in member_keys(PROBE, split="test", probe_input=kind)]
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
            scalar(r, k)
            for kind in ("raw", "normal", "tk")
            for k in member_keys(PROBE, split="test", probe_input=kind)
        ]
        if any(v is None for v in vals):
            continue
        loo = [scalar(r, k) for k in member_keys(LOO, space="raw")]
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
            interval(r, "cca/mean_k/{features}", features="raw"),
            scalar(r, key("cca/std_k/{features}", features="raw")),
            interval(r, "cca/mean_k/{features}", features="normal"),
            scalar(r, key("cca/insample/mean_k/{features}", features="raw")),
            *(
                scalar(r, k)
                for k in (
                    key("cka/{features}", features="raw"),
                    *member_keys("nc1/{space}/{member}", space="raw"),
                    *member_keys("etf/cos_mean/{space}/{member}", space="tk"),
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
            scalar(r, key("gib/insample/mi_xy")),
            interval(r, "gib/i_ty_frac_tk"),
            scalar(r, key("gib/insample/i_ty_frac_tk")),
            interval(r, "gib/beta_crit/k"),
            interval(r, "gib/beta_crit/k_next"),
            scalar(r, key("gib/insample/beta_crit/k_next")),
            scalar(r, key("gib/null_rho")),
        ]
        for r in records
        if scalar(r, key("gib/mi_xy")) is not None
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
        frac = scalar(r, key("gib/i_ty_frac_tk"))
        accs = [
            scalar(r, k)
            for kind in ("raw", "tk")
            for k in member_keys(PROBE, split="test", probe_input=kind)
        ]
        if frac is None or any(a is None for a in accs):
            continue
        rows.append(
            [
                r["epoch"],
                interval(r, "gib/i_ty_frac_tk"),
                scalar(r, key("gib/insample/i_ty_frac_tk")),
            ]
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


def classifier_table(records: list[dict]) -> Table | None:
    """Per epoch: the classifier side of neural collapse (objectives that train a classifier,
    docs/math.md §6a): NC3 self-duality and NC2 of the classifier rows, per member."""
    columns = (
        ("NC3", "nc3/{member}"),
        ("cos(w_k, μ_k − μ_G)", "nc3/cos_mean/{member}"),
        ("equinorm W", "classifier/equinorm/{member}"),
        ("cos dev. W", "classifier/cos_dev/{member}"),
    )
    rows = [
        [r["epoch"]] + [scalar(r, k) for _, template in columns for k in member_keys(template)]
        for r in records
        if scalar(r, key("nc3/{member}", member=MEMBERS[0])) is not None
    ]
    if not rows:
        return None
    return Table(
        "Classifier collapse per analysis epoch — NC3 and NC2 of the classifier",
        ["epoch"] + [f"{name} {m}" for name, _ in columns for m in MEMBERS],
        rows,
        "NC3: ‖W/‖W‖_F − M/‖M‖_F‖²_F between each member's classifier rows W and its centred "
        "class means M (0: self-dual; 2: orthogonal); equinorm: std/mean of the rows' norms; "
        "cos dev.: the mean distance of the rows' pairwise cosines from the simplex ETF's "
        "−1/(K−1) (docs/math.md §6a).",
    )


def table3(record: dict) -> Table | None:
    """Zero-shot transfer: the analysis probe on raw, normal-score and IB(K′) features of each
    member of a pretrained pair on the target dataset (the paper's Table 3)."""
    if not holds(record, key("transfer/grid")):
        return None
    rows = []
    for m in MEMBERS:
        k_prime = scalar(record, key("transfer/k_prime/{member}", member=m))
        rows.append(
            [
                m,
                *(
                    pct(scalar(record, key(PROBE, split="test", probe_input=kind, member=m)))
                    for kind in ("raw", "normal")
                ),
                pct(scalar(record, key("transfer/probe_test_acc_k_prime/{member}", member=m))),
                None if k_prime is None else int(k_prime),
            ]
        )
    source = record.get("source") or {}
    tolerance = entry(record, key("transfer/tolerance"))
    return Table(
        "Table 3 — zero-shot transfer: analysis probe test accuracy (%)",
        ["member", "raw", "normal scores ('ranked')", "IB(K′)", "K′"],
        rows,
        f"Encoders pretrained on {source.get('dataset', '?')} (seed pair {source.get('seed_pair', '?')}), frozen; "
        f"K′ = the smallest k of the grid whose T_k probe is within {'?' if tolerance is None else tolerance} points "
        "of the raw-feature probe (— if none).",
    )
