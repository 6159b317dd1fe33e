"""The key mapping: the values of a :class:`~ncib.analysis.PairAnalysis` under their registered
names, one function per analysis group.

Every key is built with :func:`ncib.metrics.registry.key` (an unregistered name is an error),
and :func:`group_outputs` checks that a group produced exactly the scalar keys the registry
lists for it, so the names logged, documented and tested cannot drift apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ncib.analysis import (
    FEATURES,
    SPACES,
    Interval,
    PairAnalysis,
    dimension_grid,
    ib_dimension_curve,
    k_prime,
)
from ncib.metrics.registry import AXES, MEMBERS, key, keys

__all__ = [
    "ANALYSIS_GROUPS",
    "CLASSIFIER_GROUP",
    "CLASSIFIER_MISSING",
    "DEFAULT_GROUPS",
    "all_outputs",
    "check_outputs",
    "classifier",
    "gib",
    "group_outputs",
    "identifiability",
    "simplex_etf",
    "transfer",
]

Outputs = tuple[dict[str, float], dict[str, Any]]  # (logged scalars, record entries)
_NO_INTERVAL = Interval(math.nan, math.nan, math.nan)  # the ends logged when intervals are off
_GIB_ENDS = (
    "gib/mi_xy_{bound}",
    "gib/beta_crit/k_{bound}",
    "gib/beta_crit/k_next_{bound}",
    "gib/i_ty_frac_tk_{bound}",
)


def identifiability(pa: PairAnalysis) -> Outputs:
    """CCA summaries (held out, with intervals, and in-sample), CKA, and the spectra."""
    scalars: dict[str, float] = {}
    entries: dict[str, Any] = {}
    for f in AXES["features"]:
        res, held = pa.identifiability(f), pa.heldout(f)
        scalars[key("cca/mean_k/{features}", features=f)] = float(held.mean)
        scalars[key("cca/var_k/{features}", features=f)] = float(held.var)
        scalars[key("cca/std_k/{features}", features=f)] = float(held.std)
        interval = (
            pa.intervals(f).values["mean_k"] if pa.intervals_settings is not None else _NO_INTERVAL
        )
        for bound in AXES["bound"]:  # always there: NaN ends when intervals are off
            scalars[key("cca/mean_k_{bound}/{features}", bound=bound, features=f)] = getattr(
                interval, bound
            )
        scalars[key("cca/insample/mean_k/{features}", features=f)] = float(res.mean)
        scalars[key("cca/insample/var_k/{features}", features=f)] = float(res.var)
        scalars[key("cca/insample/std_k/{features}", features=f)] = float(res.std)
        scalars[key("cca/insample/min_k/{features}", features=f)] = float(res.rho_k.min())
        scalars[key("cka/{features}", features=f)] = float(pa.cka(f))
        entries[key("cca/rho_k/{features}", features=f)] = held.rho_k.tolist()
        entries[key("cca/insample/rho/{features}", features=f)] = pa.cca(f).rho.tolist()
    for m, name in enumerate(MEMBERS):
        copula = pa.copula_cca(m)
        scalars[key("copula_cca/mean_k/{member}", member=name)] = float(copula.mean_k)
        scalars[key("copula_cca/mean_all/{member}", member=name)] = float(copula.mean_all)
    return scalars, entries


def _gib_intervals(pa: PairAnalysis) -> tuple[dict, dict[str, Any]]:
    """The interval of each held-out GIB number (:data:`_GIB_ENDS`; NaN ends when intervals
    are off) and the record's ``intervals`` entry saying what they cover."""
    entries: dict[str, Any] = {}
    if pa.intervals_settings is None:
        ends = dict.fromkeys(_GIB_ENDS, _NO_INTERVAL)
        entries[key("intervals")] = {
            "covers": "none: intervals are off (analysis.intervals)",
            "level": None,
            "refits": 0,
            "bootstrap": 0,
            "null_rho": pa.null_rho("normal"),
        }
    else:
        iv = pa.intervals("normal")
        ends = dict(
            zip(
                _GIB_ENDS,
                (
                    iv.values["mi_xy"],
                    iv.values["rho_k"].as_beta(),
                    iv.values["rho_k_next"].as_beta(),
                    iv.values["i_ty_frac_tk"],
                ),
                strict=True,
            )
        )
        settings = pa.intervals_settings
        entries[key("intervals")] = {
            "covers": iv.covers,
            "level": settings.level,
            "refits": iv.refits,
            "bootstrap": iv.bootstrap,
            "null_rho": iv.null_rho,
        }
    return ends, entries


def gib(pa: PairAnalysis) -> Outputs:
    """I(X;Y), the critical β around T_K and the information of T_K, held out (with intervals)
    and in-sample; T_K's feature scaling; the spectra and information curves."""
    k = pa.k
    held = pa.heldout_gib_summary()
    scalars = {
        key("gib/mi_xy"): held.mi_xy,
        key("gib/beta_crit/k"): held.beta_k,
        key("gib/beta_crit/k_next"): held.beta_k_next,
        key("gib/beta_tk"): held.beta_tk,
        key("gib/i_tx_tk"): held.i_tx_tk,
        key("gib/i_ty_tk"): held.i_ty_tk,
        key("gib/i_ty_frac_tk"): held.i_ty_frac_tk,
        key("gib/null_rho"): pa.null_rho("normal"),
    }
    ends, entries = _gib_intervals(pa)
    for template, interval in ends.items():
        for bound in AXES["bound"]:
            scalars[key(template, bound=bound)] = getattr(interval, bound)
    g = pa.gib(0)  # the in-sample GIB, at its own T_K
    beta_in, _ = g.beta_for_k(k)
    at_tk = g.information_curve(beta_in)
    i_xy = float(at_tk.i_xy)
    scalars |= {
        key("gib/insample/mi_xy"): i_xy,
        key("gib/insample/beta_crit/k"): float(g.beta_crit[k - 1]),
        key("gib/insample/beta_crit/k_next"): float(g.beta_crit[k])
        if k < g.beta_crit.shape[0]
        else math.inf,
        key("gib/insample/beta_tk"): float(beta_in),
        key("gib/insample/i_tx_tk"): float(at_tk.i_tx[0]),
        key("gib/insample/i_ty_tk"): float(at_tk.i_ty[0]),
        key("gib/insample/i_ty_frac_tk"): float(at_tk.i_ty[0]) / i_xy if i_xy > 0 else 0.0,
    }
    curve = pa.information_curve()
    heldout = pa.heldout_gib(0)
    entries |= {
        key("lambda"): heldout.lam.tolist(),
        key("beta_crit"): heldout.beta_crit.tolist(),
        key("information_curve"): _curve(heldout.gib.information_curve(curve.beta)),
        key("insample/lambda"): g.lam.tolist(),
        key("insample/beta_crit"): g.beta_crit.tolist(),
        key("insample/information_curve"): _curve(curve),
    }
    for m, name in enumerate(MEMBERS):
        scaling = pa.tk(m).feature_scaling
        scalars[key("gib/feature_scaling/min/{member}", member=name)] = float(scaling.min())
        scalars[key("gib/feature_scaling/max/{member}", member=name)] = float(scaling.max())
        entries[key("feature_scaling/{member}", member=name)] = scaling.tolist()
    return scalars, entries


def simplex_etf(pa: PairAnalysis) -> Outputs:
    """Class-mean geometry, NC1, NCC and NC4 in raw Z and in T_K; the analysis probe."""
    out: dict[str, float] = {}
    splits = {"train": pa.y_train, "test": pa.y_test}
    for space in SPACES:
        for m, name in enumerate(MEMBERS):
            ax = {"space": space, "member": name}
            st = pa.etf(space, m)
            out[key("etf/equinorm/{space}/{member}", **ax)] = float(st.equinorm)
            out[key("etf/cos_mean/{space}/{member}", **ax)] = float(st.cos_mean)
            out[key("etf/cos_dev/{space}/{member}", **ax)] = float(st.cos_dev)
            out[key("etf/cos_std/{space}/{member}", **ax)] = float(st.cos_std)
            out[key("etf/angle_std_deg/{space}/{member}", **ax)] = float(st.angle_std_deg)
            out[key("nc1/{space}/{member}", **ax)] = float(pa.nc1(space, m).value)
            out[key("ncc/loo_acc/{space}/{member}", **ax)] = float(pa.ncc_loo_accuracy(space, m))
            probe = pa.probe(space, m)  # NC4 compares NCC with the probe on the same features
            for split, y in splits.items():
                ncc = pa.ncc(space, m, split)
                pred = probe.train_pred if split == "train" else probe.test_pred
                # fractions over the split's rows (all ranks' in a sharded analysis)
                out[key("ncc/{split}_acc/{space}/{member}", split=split, **ax)] = pa.fraction(
                    ncc == y, split
                )
                out[key("nc4/{split}/{space}/{member}", split=split, **ax)] = pa.fraction(
                    ncc == pred, split
                )
    for kind in FEATURES:
        probes = [pa.probe(kind, m) for m in range(len(MEMBERS))]
        for name, p in zip(MEMBERS, probes, strict=True):
            ax = {"probe_input": kind, "member": name}
            out[key("probe/{split}_acc/{probe_input}/{member}", split="train", **ax)] = float(
                p.train_acc
            )
            out[key("probe/{split}_acc/{probe_input}/{member}", split="test", **ax)] = float(
                p.test_acc
            )
        both = (probes[0].test_pred == pa.y_test) & (probes[1].test_pred == pa.y_test)
        out[key("probe/test_both_correct/{probe_input}", probe_input=kind)] = pa.fraction(
            both, "test"
        )
    return out, {}


def classifier(pa: PairAnalysis) -> Outputs:
    """NC2 of each member's classifier rows and NC3 against its class means in raw Z (the
    members' own classifiers: ``PairAnalysis(classifier=...)``)."""
    if not pa.has_classifier:
        raise ValueError(CLASSIFIER_MISSING.format(what="the PairAnalysis was given no rows"))
    out: dict[str, float] = {}
    for m, name in enumerate(MEMBERS):
        st = pa.classifier(m)
        out[key("classifier/equinorm/{member}", member=name)] = float(st.equinorm)
        out[key("classifier/cos_mean/{member}", member=name)] = float(st.cos_mean)
        out[key("classifier/cos_std/{member}", member=name)] = float(st.cos_std)
        out[key("classifier/cos_dev/{member}", member=name)] = float(st.cos_dev)
        out[key("nc3/{member}", member=name)] = float(st.nc3)
        out[key("nc3/cos_mean/{member}", member=name)] = float(st.nc3_cos)
    return out, {}


def transfer(pa: PairAnalysis, grid=None, tolerance: float = 3.0) -> Outputs:
    """T_k on a grid of dimensions for each member, and K′ (docs/math.md §11)."""
    feature_dim = min(pa.raw["train"][m].shape[1] for m in range(len(MEMBERS)))
    ks = dimension_grid(pa.num_classes, feature_dim, grid)
    scalars: dict[str, float] = {}
    entries: dict[str, Any] = {
        key("transfer/grid"): ks,
        key("transfer/tolerance"): float(tolerance),
    }
    for m, name in enumerate(MEMBERS):
        points = ib_dimension_curve(pa, m, ks)
        best = k_prime(points, float(pa.probe("raw", m).test_acc), tolerance)
        at = next((p for p in points if p.k == best), None)
        scalars[key("transfer/k_prime/{member}", member=name)] = (
            math.nan if best is None else float(best)
        )
        scalars[key("transfer/probe_test_acc_k_prime/{member}", member=name)] = (
            math.nan if at is None else at.probe_test_acc
        )
        entries[key("transfer/probe_test_acc/{member}", member=name)] = [
            p.probe_test_acc for p in points
        ]
        entries[key("transfer/ncc_test_acc/{member}", member=name)] = [
            p.ncc_test_acc for p in points
        ]
        entries[key("transfer/nc4_test/{member}", member=name)] = [p.nc4_test for p in points]
        entries[key("transfer/feature_scaling_k_prime/{member}", member=name)] = (
            [] if at is None else at.feature_scaling.tolist()
        )
    return scalars, entries


def _curve(curve) -> dict[str, Any]:
    return {
        "beta": curve.beta.tolist(),
        "i_tx": curve.i_tx.tolist(),
        "i_ty": curve.i_ty.tolist(),
        "i_xy": float(curve.i_xy),
    }


ANALYSIS_GROUPS: dict[str, Callable[[PairAnalysis], Outputs]] = {
    "identifiability": identifiability,
    "gib": gib,
    "simplex_etf": simplex_etf,
    "classifier": classifier,
}
DEFAULT_GROUPS: tuple[str, ...] = ("identifiability", "gib", "simplex_etf")
"""The groups every pair can compute: the plan's default (``classifier`` needs a classifier)."""
CLASSIFIER_GROUP = "classifier"
CLASSIFIER_MISSING = (
    "analysis group 'classifier' (NC2 of the classifier rows, NC3) needs the members' linear "
    "classifiers, but {what}: only objective=ce or objective=mse trains one (supcon and simclr "
    "do not); choose objective=ce or mse, or drop 'classifier' from analysis.groups"
)


def group_outputs(pa: PairAnalysis, group: str) -> Outputs:
    """The scalars and record entries of one analysis group, checked against the registry."""
    if group not in ANALYSIS_GROUPS:
        raise ValueError(f"unknown analysis group {group!r}; known: {sorted(ANALYSIS_GROUPS)}")
    return check_outputs(group, *ANALYSIS_GROUPS[group](pa))


def check_outputs(group: str, scalars: dict[str, float], entries: dict[str, Any]) -> Outputs:
    """``(scalars, entries)`` unchanged if their keys are exactly the registry's for ``group``."""
    for made, expected, what in (
        (scalars, keys(group), "scalars"),
        (entries, keys(group, scalars=False), "record entries"),
    ):
        if set(made) != set(expected):
            raise RuntimeError(
                f"analysis group {group!r} made {what} {sorted(set(made) ^ set(expected))} that "
                "differ from ncib/metrics/catalogue.py; register them or stop making them"
            )
    return scalars, entries


def all_outputs(pa: PairAnalysis) -> Outputs:
    """Every scalar and record entry of the training-time analysis groups ``pa`` can compute
    (``classifier`` only when it holds classifier rows), merged."""
    scalars: dict[str, float] = {}
    entries: dict[str, Any] = {}
    for group in ANALYSIS_GROUPS:
        if group == CLASSIFIER_GROUP and not pa.has_classifier:
            continue
        values, extra = group_outputs(pa, group)
        scalars |= values
        entries |= extra
    return scalars, entries
