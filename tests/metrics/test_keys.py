"""Every logged key and record entry against an independent computation.

Each analysis group's keys (``ncib.metrics.keys(group)``) are produced by
:mod:`ncib.metrics.outputs` from a :class:`~ncib.analysis.PairAnalysis`; here every one of them
is recomputed by the slow numpy/scipy reference of ``tests/helpers/reference.py`` from the raw
features alone, on a pair built so that plausible wrong formulas give different numbers
(``discriminating_pair``: spread leading ρ, raw ≠ normal scores, m0 ≠ m1, train ≠ test
accuracy, in-sample ≠ held out, a finite β_{K+1}). The checkers are keyed by registry template
and a test demands that they cover the registry exactly: a key added to the registry without an
independent check fails here.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from ncib.analysis import IBDimensionPoint, PairAnalysis
from ncib.metrics import AXES, METRICS, keys
from ncib.metrics.outputs import ANALYSIS_GROUPS, check_outputs, group_outputs, transfer
from tests.helpers.reference import (
    MEMBERS,
    ReferencePair,
    beta_interval,
    beta_of_tk,
    crit_of,
    discriminating_pair,
    information_at,
)

K = 4
TRANSFER_GRID = [1, 2, 4, 6, 8]
TOLERANCE = 4.0  # percentage points: the members' K′ differ (6 and 4) on this pair


@pytest.fixture
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def classifier_rows(train, y, seed: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    """Classifier rows of both members, partly aligned with their centred class means (per
    class scales, noise, a common offset), so NC3 is neither 0 nor that of unrelated rows and
    no two classifier statistics coincide."""
    g = np.random.default_rng(seed)
    rows = []
    for z in train:
        z, labels = z.numpy(), y.numpy()
        means = np.stack([z[labels == c].mean(0) for c in range(K)])
        w = (means - means.mean(0)) * g.uniform(0.5, 1.5, (K, 1))
        rows.append(torch.from_numpy(w + 0.4 * g.standard_normal(w.shape) + 0.2))
    return rows[0], rows[1]


@pytest.fixture(scope="module")
def case():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny problems: one thread is fastest on a busy machine
    try:
        train, test, y, y_test = discriminating_pair()
        rows = classifier_rows(train, y)
        pa = PairAnalysis(train, test, y, y_test, num_classes=K, classifier=rows)
        ref = ReferencePair(
            train, test, y, y_test, K, intervals=pa.intervals_settings, classifier=rows
        )
        made = {g: group_outputs(pa, g) for g in ANALYSIS_GROUPS}
        made["transfer"] = check_outputs("transfer", *transfer(pa, TRANSFER_GRID, TOLERANCE))
        yield pa, ref, made
    finally:
        torch.set_num_threads(previous)


# -- the independent checks, keyed by registry template ------------------------------------------
def _m(member: str) -> int:
    return MEMBERS.index(member)


def _stats(values: np.ndarray) -> dict[str, float]:
    return {"mean": values.mean(), "var": values.var(), "std": values.std()}  # population


def _heldout_gib(r: ReferencePair) -> dict:
    rho = r.heldout_rho
    lam = np.clip(1.0 - rho**2, np.finfo(float).eps, 1.0)
    crit = crit_of(rho)
    mi = float(-0.5 * np.log(lam).sum())
    _, i_ty = information_at(lam, beta_of_tk(crit, r.k))
    return {"lam": np.sort(lam), "crit": crit, "mi": mi, "frac": i_ty / mi}


def _insample_lam(r: ReferencePair) -> np.ndarray:
    return np.sort(r.lam)


def _interval(r: ReferencePair, kind: str, name: str, bound: str, beta: bool = False) -> float:
    est_lo_hi = r.intervals(kind)[name]
    if beta:
        est_lo_hi = beta_interval(est_lo_hi)
    return est_lo_hi[("lo", "hi").index(bound) + 1]


def _curve(lam: np.ndarray, i_xy: float, grid: np.ndarray) -> dict:
    points = [information_at(lam, b) for b in grid]
    return {
        "beta": grid,
        "i_tx": [p[0] for p in points],
        "i_ty": [p[1] for p in points],
        "i_xy": i_xy,
    }


def _transfer(r: ReferencePair, member: str) -> dict:
    m = _m(member)
    raw = r.accuracy(r.probe("raw", m)["test"], "test")
    rows = []
    for k in TRANSFER_GRID:
        probe = r.probe("tk", m, k)["test"]
        ncc = r.ncc("tk", m, "test", k)
        rows.append(
            (k, r.accuracy(probe, "test"), r.accuracy(ncc, "test"), float(np.mean(ncc == probe)))
        )
    k_prime = next((k for k, acc, _, _ in rows if 100.0 * (raw - acc) <= TOLERANCE), None)
    at = next((row for row in rows if row[0] == k_prime), None)
    return {
        "k_prime": math.nan if k_prime is None else float(k_prime),
        "acc_k_prime": math.nan if at is None else at[1],
        "probe": [row[1] for row in rows],
        "ncc": [row[2] for row in rows],
        "nc4": [row[3] for row in rows],
        "scaling": [] if k_prime is None else r.tk(m, k_prime)["scaling"],
    }


SCALAR_CHECKS = {
    # identifiability (docs/math.md §3, §4, §5.5): unqualified = held out
    "cca/mean_k/{features}": lambda r, features: _stats(r.heldout_rho_k(features))["mean"],
    "cca/mean_k_{bound}/{features}": lambda r, bound, features: _interval(
        r, features, "mean_k", bound
    ),
    "cca/var_k/{features}": lambda r, features: _stats(r.heldout_rho_k(features))["var"],
    "cca/std_k/{features}": lambda r, features: _stats(r.heldout_rho_k(features))["std"],
    "cca/insample/mean_k/{features}": lambda r, features: _stats(r.cca(features).rho[: r.k])[
        "mean"
    ],
    "cca/insample/var_k/{features}": lambda r, features: _stats(r.cca(features).rho[: r.k])["var"],
    "cca/insample/std_k/{features}": lambda r, features: _stats(r.cca(features).rho[: r.k])["std"],
    "cca/insample/min_k/{features}": lambda r, features: r.cca(features).rho[r.k - 1],
    "cka/{features}": lambda r, features: r.cka(features),
    "copula_cca/mean_k/{member}": lambda r, member: r.copula_rho(_m(member))[: r.k].mean(),
    "copula_cca/mean_all/{member}": lambda r, member: r.copula_rho(_m(member)).mean(),
    # GIB (docs/math.md §5): unqualified = the held-out spectrum
    "gib/mi_xy": lambda r: _heldout_gib(r)["mi"],
    "gib/mi_xy_{bound}": lambda r, bound: _interval(r, "normal", "mi_xy", bound),
    "gib/beta_crit/k": lambda r: _heldout_gib(r)["crit"][r.k - 1],
    "gib/beta_crit/k_{bound}": lambda r, bound: _interval(r, "normal", "rho_k", bound, True),
    "gib/beta_crit/k_next": lambda r: _heldout_gib(r)["crit"][r.k],
    "gib/beta_crit/k_next_{bound}": lambda r, bound: _interval(
        r, "normal", "rho_k_next", bound, True
    ),
    "gib/beta_tk": lambda r: r.tk(0, r.k)["beta"],
    "gib/i_tx_tk": lambda r: r.tk(0, r.k)["i_tx"],
    "gib/i_ty_tk": lambda r: r.tk(0, r.k)["i_ty"],
    "gib/i_ty_frac_tk": lambda r: _heldout_gib(r)["frac"],
    "gib/i_ty_frac_tk_{bound}": lambda r, bound: _interval(r, "normal", "i_ty_frac_tk", bound),
    "gib/null_rho": lambda r: r.null_rho,
    "gib/feature_scaling/min/{member}": lambda r, member: r.tk(_m(member), r.k)["scaling"].min(),
    "gib/feature_scaling/max/{member}": lambda r, member: r.tk(_m(member), r.k)["scaling"].max(),
    "gib/insample/mi_xy": lambda r: r.mi_xy,
    "gib/insample/beta_crit/k": lambda r: r.beta_crit[r.k - 1],
    "gib/insample/beta_crit/k_next": lambda r: r.beta_crit[r.k],
    "gib/insample/beta_tk": lambda r: r.tk_insample(r.k)["beta"],
    "gib/insample/i_tx_tk": lambda r: r.tk_insample(r.k)["i_tx"],
    "gib/insample/i_ty_tk": lambda r: r.tk_insample(r.k)["i_ty"],
    "gib/insample/i_ty_frac_tk": lambda r: r.tk_insample(r.k)["i_ty"] / r.mi_xy,
    # neural collapse and the analysis probe (docs/math.md §6, §7)
    "etf/equinorm/{space}/{member}": lambda r, space, member: r.geometry(space, _m(member)).etf[
        "equinorm"
    ],
    "etf/cos_mean/{space}/{member}": lambda r, space, member: r.geometry(space, _m(member)).etf[
        "cos_mean"
    ],
    "etf/cos_dev/{space}/{member}": lambda r, space, member: r.geometry(space, _m(member)).etf[
        "cos_dev"
    ],
    "etf/cos_std/{space}/{member}": lambda r, space, member: r.geometry(space, _m(member)).etf[
        "cos_std"
    ],
    "etf/angle_std_deg/{space}/{member}": lambda r, space, member: r.geometry(
        space, _m(member)
    ).etf["angle_std_deg"],
    "nc1/{space}/{member}": lambda r, space, member: r.geometry(space, _m(member)).nc1,
    "ncc/loo_acc/{space}/{member}": lambda r, space, member: r.ncc_loo(space, _m(member)),
    "ncc/{split}_acc/{space}/{member}": lambda r, split, space, member: r.accuracy(
        r.ncc(space, _m(member), split), split
    ),
    "nc4/{split}/{space}/{member}": lambda r, split, space, member: float(
        np.mean(r.ncc(space, _m(member), split) == r.probe(space, _m(member))[split])
    ),
    "probe/{split}_acc/{probe_input}/{member}": lambda r, split, probe_input, member: r.accuracy(
        r.probe(probe_input, _m(member))[split], split
    ),
    "probe/test_both_correct/{probe_input}": lambda r, probe_input: float(
        np.mean(
            (r.probe(probe_input, 0)["test"] == r.y["test"])
            & (r.probe(probe_input, 1)["test"] == r.y["test"])
        )
    ),
    # the classifier side of neural collapse (docs/math.md §6a)
    "classifier/equinorm/{member}": lambda r, member: r.classifier(_m(member))["equinorm"],
    "classifier/cos_mean/{member}": lambda r, member: r.classifier(_m(member))["cos_mean"],
    "classifier/cos_std/{member}": lambda r, member: r.classifier(_m(member))["cos_std"],
    "classifier/cos_dev/{member}": lambda r, member: r.classifier(_m(member))["cos_dev"],
    "nc3/{member}": lambda r, member: r.classifier(_m(member))["nc3"],
    "nc3/cos_mean/{member}": lambda r, member: r.classifier(_m(member))["nc3_cos"],
    # zero-shot transfer (docs/math.md §11), on TRANSFER_GRID
    "transfer/k_prime/{member}": lambda r, member: _transfer(r, member)["k_prime"],
    "transfer/probe_test_acc_k_prime/{member}": lambda r, member: _transfer(r, member)[
        "acc_k_prime"
    ],
}

ENTRY_CHECKS = {
    "cca/rho_k/{features}": lambda r, features: r.heldout_rho_k(features),
    "cca/insample/rho/{features}": lambda r, features: r.cca(features).rho,
    "lambda": lambda r: _heldout_gib(r)["lam"],
    "beta_crit": lambda r: np.sort(_heldout_gib(r)["crit"]),
    "information_curve": lambda r: _curve(
        _heldout_gib(r)["lam"], _heldout_gib(r)["mi"], r.information_grid()
    ),
    "insample/lambda": _insample_lam,
    "insample/beta_crit": lambda r: r.beta_crit,
    "insample/information_curve": lambda r: _curve(r.lam, r.mi_xy, r.information_grid()),
    "intervals": lambda r: {
        "covers": f"95% intervals over {r.settings.bootstrap} resamples of the test rows and "
        f"{r.settings.refits} refits on resamples of {r.settings.folds} training folds",
        "level": r.settings.level,
        "refits": r.settings.refits,
        "bootstrap": r.settings.bootstrap,
        "null_rho": r.null_rho,
    },
    "feature_scaling/{member}": lambda r, member: r.tk(_m(member), r.k)["scaling"],
    "transfer/grid": lambda r: TRANSFER_GRID,
    "transfer/tolerance": lambda r: TOLERANCE,
    "transfer/probe_test_acc/{member}": lambda r, member: _transfer(r, member)["probe"],
    "transfer/ncc_test_acc/{member}": lambda r, member: _transfer(r, member)["ncc"],
    "transfer/nc4_test/{member}": lambda r, member: _transfer(r, member)["nc4"],
    "transfer/feature_scaling_k_prime/{member}": lambda r, member: _transfer(r, member)["scaling"],
}

CHECKED_GROUPS = [*ANALYSIS_GROUPS, "transfer"]


def concrete(group: str, scalars: bool) -> list[tuple[str, str, dict[str, str]]]:
    """``(key, template, axes)`` of every registered key of ``group``."""
    out = []
    for metric in METRICS:
        if metric.group != group or (metric.shape == "scalar") != scalars:
            continue
        for combo in itertools.product(*(AXES[a] for a in metric.axes)):
            axes = dict(zip(metric.axes, combo, strict=True))
            out.append((metric.template.format(**axes), metric.template, axes))
    return out


def expected(key: str, group: str, scalars: bool, ref: ReferencePair):
    checks = SCALAR_CHECKS if scalars else ENTRY_CHECKS
    for made, template, axes in concrete(group, scalars):
        if made == key:
            if template not in checks:
                pytest.fail(
                    f"{group} key {template!r} has no independent check in tests/metrics/test_keys.py"
                )
            return checks[template](ref, **axes)
    raise KeyError(key)


SCALAR_KEYS = [(g, k) for g in CHECKED_GROUPS for k, _, _ in concrete(g, True)]
ENTRY_KEYS = [(g, k) for g in CHECKED_GROUPS for k, _, _ in concrete(g, False)]


# -- coverage --------------------------------------------------------------------------------
@pytest.mark.parametrize("group", CHECKED_GROUPS)
def test_every_registered_key_has_exactly_one_independent_check(group):
    for scalars, checks in ((True, SCALAR_CHECKS), (False, ENTRY_CHECKS)):
        templates = {t for _, t, _ in concrete(group, scalars)}
        mine = {t for t in checks if any(m.template == t and m.group == group for m in METRICS)}
        assert templates - mine == set(), f"{group}: keys without an independent check"
        made = {k for k, _, _ in concrete(group, scalars)}
        assert made == set(keys(group, scalars=scalars))
    registered = {m.template for m in METRICS}
    assert set(SCALAR_CHECKS) | set(ENTRY_CHECKS) <= registered, "checks of unregistered keys"


def test_the_checked_groups_are_every_analysis_group():
    from ncib.metrics import GROUPS

    assert set(CHECKED_GROUPS) == {g for g, (_, prefix) in GROUPS.items() if prefix == "analysis/"}


# -- values --------------------------------------------------------------------------------
def _close(got, want, key: str) -> None:
    if isinstance(want, float | np.floating) and math.isnan(want):
        assert isinstance(got, float) and math.isnan(got), key
        return
    np.testing.assert_allclose(
        np.asarray(got, float), np.asarray(want, float), rtol=1e-7, atol=1e-9, err_msg=key
    )


def _check_scalar(made, ref, group: str, key: str) -> None:
    scalars, _ = made[group]
    assert isinstance(scalars[key], float), key
    _close(scalars[key], expected(key, group, True, ref), key)


def _check_entry(made, ref, group: str, key: str) -> None:
    _, entries = made[group]
    want, got = expected(key, group, False, ref), entries[key]
    if isinstance(want, dict):
        assert set(got) == set(want), key
        for part in want:
            if isinstance(want[part], str):
                assert got[part] == want[part], f"{key}.{part}"
            else:
                _close(got[part], want[part], f"{key}.{part}")
    else:
        assert np.shape(got) == np.shape(want), key
        _close(got, want, key)


def test_every_key_at_once(case):
    """Every check below in one test, the first of the module to use ``case``: the module
    fixture computes all outputs during the first test that asks for it, so a tool that maps
    code to the tests that call it (mutmut, docs/testing.md) maps the outputs code to this one;
    it must therefore check everything."""
    _, ref, made = case
    for group, key in SCALAR_KEYS:
        _check_scalar(made, ref, group, key)
    for group, key in ENTRY_KEYS:
        _check_entry(made, ref, group, key)


@pytest.mark.parametrize("group,key", SCALAR_KEYS, ids=[k for _, k in SCALAR_KEYS])
def test_scalar_matches_the_reference(case, group, key):
    _, ref, made = case
    _check_scalar(made, ref, group, key)


@pytest.mark.parametrize("group,key", ENTRY_KEYS, ids=[k for _, k in ENTRY_KEYS])
def test_record_entry_matches_the_reference(case, group, key):
    _, ref, made = case
    _check_entry(made, ref, group, key)


# -- the fixture tells wrong formulas apart ------------------------------------------------------
def _swaps(axes: dict[str, str]):
    """Every key that differs from ``axes`` in one axis value."""
    for axis, value in axes.items():
        for other in AXES[axis]:
            if other != value:
                yield axis, axes | {axis: other}


# values that agree by mathematics, not by accident: both members' T_K share the GIB
# eigenvalues and r_i = 1, so α_i / mean α is the same for m0 and m1
SAME_BY_MATH = {
    "gib/feature_scaling/min/{member}",
    "gib/feature_scaling/max/{member}",
    "feature_scaling/{member}",
}


def _differ(a, b) -> bool:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return a.shape != b.shape or not np.allclose(a, b, rtol=5e-7, atol=1e-8, equal_nan=True)


@pytest.mark.parametrize("scalars", [True, False], ids=["scalars", "entries"])
def test_swapping_any_axis_value_changes_the_reference_value(case, scalars):
    """A key wired to the wrong member, feature kind, space or split cannot pass."""
    _, ref, _ = case
    checks = SCALAR_CHECKS if scalars else ENTRY_CHECKS
    same = []
    for group in CHECKED_GROUPS:
        for key, template, axes in concrete(group, scalars):
            if template in SAME_BY_MATH:
                continue
            for axis, other in _swaps(axes):
                if not _differ(checks[template](ref, **axes), checks[template](ref, **other)):
                    same.append((key, axis))
    assert same == []


EQUAL_ON_THIS_PAIR = {
    # by mathematics (SAME_BY_MATH)
    ("gib/feature_scaling/min/m0", "gib/feature_scaling/min/m1"),
    ("gib/feature_scaling/max/m0", "gib/feature_scaling/max/m1"),
}


def _one_confusion_apart(a: str, b: str) -> bool:
    """Keys that differ in one part of their name (the formula, member, features or split):
    what one wrong line of code mixes up. Keys that differ in two or more parts at once are no
    plausible confusion, and accuracies (counts out of the same samples) may coincide by
    accident: ``ncc/train_acc/raw/m0`` and ``probe/train_acc/raw/m1`` do with scikit-learn
    1.9's probe on this pair, ``…/normal/m1`` did with an earlier one."""
    pa, pb = a.split("/"), b.split("/")
    return len(pa) != len(pb) or sum(x != y for x, y in zip(pa, pb)) == 1


def test_distinct_keys_of_a_group_have_distinct_values(case):
    """No two keys of a group one confusion apart share a value on this pair, so a key computed
    by another key's formula (heldout for in-sample, min for mean, train for test, …) cannot
    pass."""
    _, ref, _ = case
    for group in CHECKED_GROUPS:
        values = {k: expected(k, group, True, ref) for k, _, _ in concrete(group, True)}
        clashes = [
            (a, b)
            for a, b in itertools.combinations(values, 2)
            if _one_confusion_apart(a, b) and not _differ(values[a], values[b])
        ]
        assert [c for c in clashes if c not in EQUAL_ON_THIS_PAIR] == [], group


def test_the_fixture_tells_plausible_wrong_formulas_apart(case):
    _, r, _ = case
    rho = r.cca("normal").rho[: r.k]
    assert _differ(rho.min(), rho.max()) and _differ(rho.min(), rho.mean())
    assert _differ(rho.var(), rho.var(ddof=1))  # population, not sample, variance
    tk = r.tk(0, r.k)
    assert _differ(tk["i_tx"], r.mi_xy) and _differ(tk["i_ty"] / tk["i_tx"], tk["i_ty"] / r.mi_xy)
    assert _differ(r.beta_crit[r.k - 1], r.beta_crit[r.k]) and math.isfinite(r.beta_crit[r.k])
    for kind in ("raw", "normal", "tk"):
        p0, p1 = (r.probe(kind, m)["test"] == r.y["test"] for m in range(2))
        both, product = np.mean(p0 & p1), np.mean(p0) * np.mean(p1)
        assert _differ(both, product), kind  # "both correct" is not acc0 × acc1
    held = _heldout_gib(r)
    assert _differ(held["mi"], r.mi_xy) and _differ(held["crit"][r.k - 1], r.beta_crit[r.k - 1])
    # K′ is neither the first nor the last k of the grid, and it exists for both members
    for member in MEMBERS:
        k_prime = _transfer(r, member)["k_prime"]
        assert TRANSFER_GRID[0] < k_prime < TRANSFER_GRID[-1], (member, k_prime)


# -- the engine: records hold exactly these values; a non-finite scalar is null, named ---------
class _Logger:
    def __init__(self):
        self.logged = []

    def log_metrics(self, metrics, step):
        self.logged.append((dict(metrics), step))


@pytest.mark.filterwarnings("ignore:gib.beta_for_k:RuntimeWarning")
def test_the_engine_records_the_mapped_values_and_stores_inf_as_null_with_a_warning(
    tmp_path, monkeypatch, one_thread
):
    """k = d0 = r: there is no β_{k+1}, so ``gib/beta_crit/k_next`` (and its held-out twin) are
    inf. The logger gets inf, the records file null, and the record's warnings name exactly the
    non-finite scalars under their logged names; every other value is the mapped one."""
    import json
    from types import SimpleNamespace

    import ncib.engine.epoch as epoch_module
    from ncib.engine import AnalysisSettings, PairEpochAnalysis
    from ncib.engine.features import PairFeatures
    from ncib.rundir.records import read_records, to_jsonable

    train, test, y, y_test = discriminating_pair()
    feats = PairFeatures(
        train, test, y, y_test, {"train": torch.arange(len(y)), "test": torch.arange(len(y_test))}
    )
    monkeypatch.setattr(epoch_module, "extract_pair_features", lambda *a, **kw: feats)
    datamodule = SimpleNamespace(num_classes=K, setup=lambda stage: None)
    rows = classifier_rows(train, y)
    pair = SimpleNamespace(members=[None, None], classifier_rows=lambda: [w.float() for w in rows])
    k = train[0].shape[1]
    logger = _Logger()
    engine = PairEpochAnalysis(tmp_path, AnalysisSettings(k=k, progress=False), loggers=[logger])
    groups = list(ANALYSIS_GROUPS)
    engine.run(pair, datamodule, epoch=3, global_step=30, groups=groups, device="cpu")
    (record,) = read_records(tmp_path / "analysis.jsonl")

    # the engine hands over the rows as float64 on the CPU: float32 rows, made float64
    as_read = tuple(w.float().double() for w in rows)
    pa = PairAnalysis(train, test, y, y_test, num_classes=K, k=k, classifier=as_read)
    infinite = []
    for group in groups:
        scalars, entries = group_outputs(pa, group)
        assert record[group]["scalars"] == to_jsonable(scalars), group
        for name, value in entries.items():
            assert record[group][name] == json.loads(json.dumps(to_jsonable(value))), name
        infinite += [f"analysis/{n}" for n, v in scalars.items() if not math.isfinite(v)]
        for name, value in scalars.items():
            if not math.isfinite(value):
                assert record[group]["scalars"][name] is None, name
    assert {"analysis/gib/beta_crit/k_next", "analysis/gib/insample/beta_crit/k_next"} <= set(
        infinite
    )
    named = [w.split(" = ")[0] for w in record["warnings"] if "is not finite" in w]
    assert sorted(named) == sorted(infinite)
    assert record["epoch"] == 3 and record["global_step"] == 30 and record["k"] == k
    assert record["num_train"] == len(y) and record["num_test"] == len(y_test)
    ((metrics, step),) = logger.logged
    assert step == 30 and metrics["analysis/epoch"] == 3.0
    assert metrics["analysis/gib/beta_crit/k_next"] == math.inf
    assert set(metrics) == {"analysis/epoch"} | {f"analysis/{n}" for g in groups for n in keys(g)}


def test_transfer_without_a_k_prime_logs_nan_and_no_scaling(case, monkeypatch):
    """When no dimension comes within the tolerance (K′ undefined), the K′ keys are NaN and the
    feature scaling at K′ is empty — never the values of some other dimension."""
    import ncib.metrics.outputs as outputs

    pa, _, _ = case
    monkeypatch.setattr(outputs, "k_prime", lambda points, acc, tolerance: None)
    scalars, entries = check_outputs("transfer", *transfer(pa, TRANSFER_GRID, TOLERANCE))
    for m in MEMBERS:
        assert math.isnan(scalars[f"transfer/k_prime/{m}"])
        assert math.isnan(scalars[f"transfer/probe_test_acc_k_prime/{m}"])
        assert entries[f"transfer/feature_scaling_k_prime/{m}"] == []


def test_transfer_defaults_to_multiples_of_k_and_a_three_point_tolerance(case, monkeypatch):
    """Left out, the grid is K, 2K, … up to the feature dimension (dimension_grid) and the
    tolerance 3 points (the transfer experiment's defaults)."""
    import ncib.metrics.outputs as outputs

    pa, _, _ = case
    feature_dim = pa.raw["train"][0].shape[1]
    seen = []

    def curve(pa, m, ks):  # records the grid; every k is as good as the raw probe
        seen.append(list(ks))
        acc = float(pa.probe("raw", m).test_acc)
        return [IBDimensionPoint(k, acc, acc, acc, 1.0, torch.ones(k)) for k in ks]

    monkeypatch.setattr(outputs, "ib_dimension_curve", curve)
    scalars, entries = transfer(pa)
    assert feature_dim % K == 0 and feature_dim > K  # so that the grid has several multiples
    grid = list(range(K, feature_dim + 1, K))
    assert seen == [grid, grid] and entries["transfer/grid"] == grid
    assert entries["transfer/tolerance"] == 3.0
    assert scalars["transfer/k_prime/m0"] == K


@pytest.mark.parametrize(
    ("lam", "expected"),
    [
        ([1.0] * 5, 0.0),  # I(X;Y) = 0 (uncorrelated): the fraction is 0, not 0/0
        # β = 4: I(T;X) = ½ log 3, I(T;Y) = ½ log 3 − ½ log 2, I(X;Y) = ½ log 2
        ([0.5] + [1.0] * 4, math.log(1.5) / math.log(2.0)),
    ],
)
def test_the_information_fraction_of_t_k_at_small_and_zero_mutual_information(
    case, monkeypatch, lam, expected
):
    """gib/insample/i_ty_frac_tk = I(T_K;Y)/I(X;Y) of the in-sample GIB, 0 when I(X;Y) = 0;
    here I(X;Y) = ½ log 2 < 1 nat (the held-out one: tests/analysis/test_intervals.py)."""
    import types

    import ncib.metrics.outputs as outputs
    from ncib.analysis import GIBResult

    pa, _, _ = case
    lam = torch.tensor(lam, dtype=torch.float64)
    crit = torch.where(lam < 1, 1 / (1 - lam), torch.full_like(lam, math.inf))
    eye, ones = torch.eye(5, dtype=torch.float64), torch.ones(5, dtype=torch.float64)
    fake = GIBResult(lam, eye, ones, crit, torch.zeros(5, dtype=torch.float64))  # r = 5 > K
    monkeypatch.setattr(pa, "gib", lambda m: fake)
    monkeypatch.setattr(
        pa, "tk", lambda m: types.SimpleNamespace(beta=4.0, feature_scaling=torch.ones(1))
    )
    scalars, _ = outputs.gib(pa)
    assert scalars["gib/insample/i_ty_frac_tk"] == pytest.approx(expected, rel=1e-12)
