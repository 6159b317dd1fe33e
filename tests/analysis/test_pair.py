"""PairAnalysis: caching, keys, and values on a synthetic collapsed pair."""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest
import torch

import ncib.analysis.etf as etf_module
import ncib.analysis.pair as pair_module
import ncib.analysis.probe as probe_module
from ncib.analysis import (
    PairAnalysis,
    fit_logistic_probe,
    heldout_identifiability,
    identifiability,
    linear_cka,
    normal_scores,
)
from ncib.metrics import keys
from ncib.metrics.outputs import DEFAULT_GROUPS, all_outputs

SEEDS = [0, 1, 2]
K = 4


def scalars_of(pa: PairAnalysis) -> dict[str, float]:
    return all_outputs(pa)[0]


def entries_of(pa: PairAnalysis) -> dict:
    return all_outputs(pa)[1]


@pytest.fixture
def pair(make_collapsed_pair):
    def build(seed: int, **kwargs):
        train, test, y, y_test = make_collapsed_pair(seed, k=K, **kwargs)
        return PairAnalysis(train, test, y, y_test, num_classes=K), (train, test, y, y_test)

    return build


@pytest.mark.parametrize("one_pass", [False, True])
def test_each_expensive_piece_is_computed_once(pair, monkeypatch, one_pass):
    calls: Counter[str] = Counter()
    for name in (
        "class_centred_moments",
        "normal_scores_train_test",
        "cca_from_covariance",
        "gib_from_cca",
        "fit_logistic_probe",
        "class_means",
        "test_variates",
        "heldout_intervals",
        "null_threshold",
        "ncc_loo_accuracy",
        "nc1",
        "simplex_etf_stats",
        "ncc_predict",
    ):
        _count(monkeypatch, pair_module, name, calls)
    pa, _ = pair(0)
    if one_pass:
        pa.covariances()  # raw, normal and the copula cross blocks in one pass
    first = scalars_of(pa)
    assert scalars_of(pa) == first
    entries_of(pa)
    assert calls == {
        # raw, normal (shared by CCA, CKA and the raw/normal probes), the copula cross blocks
        "class_centred_moments": 1 if one_pass else 3,
        "normal_scores_train_test": 2,  # per member, both splits at once
        "cca_from_covariance": 2,  # raw, normal; both GIBs reuse the normal CCA
        "gib_from_cca": 2,
        "fit_logistic_probe": 6,  # 3 feature kinds x 2 members
        "class_means": 4,  # 2 spaces x 2 members, shared by ETF, NC1, NCC
        "test_variates": 2,  # raw, normal: held-out identifiability, GIB and intervals share them
        "heldout_intervals": 2,  # raw, normal
        "null_threshold": 1,  # normal only (the GIB's transitions)
        "ncc_loo_accuracy": 4,  # 2 spaces x 2 members
        "nc1": 4,
        "simplex_etf_stats": 4,
        "ncc_predict": 8,  # 2 spaces x 2 members x 2 splits
    }


def test_keys_and_outputs(pair):
    pa, _ = pair(1)
    scalars = scalars_of(pa)
    assert set(scalars) == {k for g in DEFAULT_GROUPS for k in keys(g)}
    assert all(isinstance(v, float) for v in scalars.values())
    entries = entries_of(pa)
    json.dumps(entries)  # JSON-ready
    assert len(entries["cca/insample/rho/raw"]) == 16 and len(entries["cca/rho_k/normal"]) == K
    assert len(entries["feature_scaling/m0"]) == K
    curve = entries["information_curve"]
    assert len(curve["beta"]) == len(curve["i_tx"]) == len(curve["i_ty"]) == 256
    assert max(curve["i_ty"]) <= curve["i_xy"] + 1e-9


@pytest.mark.parametrize("seed", SEEDS)
def test_collapsed_pair_values(pair, seed):
    pa, _ = pair(seed)
    s = scalars_of(pa)
    for kind in ("raw", "normal"):
        assert pa.cca(kind).rho[:K].min() > 0.98  # K−1 class directions + the shared factor
        assert s[f"cca/mean_k/{kind}"] > 0.95
        assert s[f"cca/mean_k_lo/{kind}"] <= s[f"cca/mean_k/{kind}"] <= s[f"cca/mean_k_hi/{kind}"]
    for m in ("m0", "m1"):
        assert abs(s[f"etf/cos_mean/tk/{m}"] + 1 / (K - 1)) < 0.02
        assert abs(s[f"etf/cos_mean/raw/{m}"] + 1 / (K - 1)) < 0.02
        assert s[f"probe/test_acc/tk/{m}"] > 0.98 and s[f"nc4/test/tk/{m}"] > 0.97
        assert s[f"nc1/raw/{m}"] < 0.05
    for space in ("raw", "tk"):
        for m, name in enumerate(("m0", "m1")):
            agree = pa.ncc(space, m, "test") == pa.probe(space, m).test_pred
            assert s[f"nc4/test/{space}/{name}"] == float(agree.double().mean())
    assert s["gib/beta_crit/k"] < s["gib/beta_tk"] < s["gib/beta_crit/k_next"]
    assert 0 < s["gib/i_ty_tk"] <= s["gib/mi_xy"]


@pytest.mark.parametrize("seed", SEEDS)
def test_agrees_with_direct_calls(pair, seed):
    pa, ((z0, z1), (t0, t1), y, y_test) = pair(seed)
    np.testing.assert_allclose(
        pa.identifiability("raw").mean.item(),
        identifiability(z0, z1, K, labels=y).mean.item(),
        rtol=1e-12,
    )
    g0, g1 = normal_scores(z0), normal_scores(z1)
    held = heldout_identifiability(
        g0, g1, normal_scores(t0, z0), normal_scores(t1, z1), K, labels=(y, y_test)
    )
    np.testing.assert_allclose(pa.heldout("normal").rho_k.numpy(), held.rho_k.numpy(), rtol=1e-10)
    direct = fit_logistic_probe(g1, y, normal_scores(t1, z1), y_test, num_classes=K)
    assert torch.equal(pa.probe("normal", 1).test_pred, direct.test_pred)
    # the two members' GIBs share the eigenvalues but not the eigenvectors
    torch.testing.assert_close(pa.gib(0).lam, pa.gib(1).lam, atol=1e-12, rtol=0)
    assert pa.gib(0).v.shape == (z0.shape[1], 16)
    assert not torch.allclose(pa.tk(0).features, pa.tk(1).features)


def test_information_curve_default_grid_reaches_saturation(pair):
    pa, _ = pair(2)
    curve = pa.information_curve()
    assert curve.beta[0].item() == pytest.approx(1.0)
    assert curve.beta[-1].item() > pa.gib(0).beta_crit[K].item()
    explicit = pa.information_curve([1.0, 1e12])
    assert math.isclose(explicit.i_ty[1].item(), explicit.i_xy.item(), rel_tol=1e-6)


@pytest.mark.parametrize("seed", SEEDS)
def test_cka_agrees_with_the_direct_call(pair, seed):
    pa, ((z0, z1), _, _, _) = pair(seed)
    torch.testing.assert_close(pa.cka("raw"), linear_cka(z0, z1), atol=1e-12, rtol=0)
    torch.testing.assert_close(
        pa.cka("normal"), linear_cka(normal_scores(z0), normal_scores(z1)), atol=1e-12, rtol=0
    )


def test_one_covariance_pass_gives_the_same_outputs(pair):
    """``covariances()`` first (one pass for raw, normal and the copula cross blocks) changes
    no output: every scalar and record entry is identical to the lazy separate passes."""
    lazy, _ = pair(1)
    eager, _ = pair(1)
    eager.covariances()
    assert scalars_of(eager) == scalars_of(lazy)
    assert entries_of(eager) == entries_of(lazy)
    assert eager.warnings == lazy.warnings
    with pytest.raises(ValueError, match="unknown covariance kind"):
        eager.covariances(("raw", "tk"))
    with pytest.raises(ValueError, match="expected raw or normal"):
        eager.covariance("copula")


def test_members_side_by_side_give_the_serial_outputs(pair):
    """With two threads the members' normal scores, CCAs, probes and copula CCAs are computed
    side by side (one thread each); the outputs equal those of one thread (serial)."""
    from ncib.analysis._linalg import intra_op_threads

    outputs = []
    for threads in (1, 2):
        with intra_op_threads(threads):
            pa, _ = pair(0)
            pa.covariances()
            outputs.append(scalars_of(pa))
            with pytest.raises(ValueError, match="unknown feature kind"):
                pa.cca("tk")
            with pytest.raises(ValueError, match="unknown feature kind"):
                pa.probe("ranked", 0)
    assert outputs[0].keys() == outputs[1].keys()
    for key, value in outputs[0].items():
        assert math.isclose(value, outputs[1][key], rel_tol=1e-9, abs_tol=1e-12), key


@pytest.mark.parametrize("m", [2, -1, True, None])
def test_every_per_member_method_rejects_what_is_not_a_member(pair, m):
    pa, _ = pair(0)
    calls = {
        "normal": lambda: pa.normal(m),
        "features": lambda: pa.features("raw", m, "train"),
        "gib": lambda: pa.gib(m),
        "heldout_gib": lambda: pa.heldout_gib(m),
        "copula_cca": lambda: pa.copula_cca(m),
        "tk": lambda: pa.tk(m),
        "class_means": lambda: pa.class_means("raw", m),
        "etf": lambda: pa.etf("raw", m),
        "ncc": lambda: pa.ncc("raw", m, "test"),
        "probe": lambda: pa.probe("raw", m),
    }
    for name, call in calls.items():
        with pytest.raises(ValueError, match=rf"^member m={m!r} is not 0 or 1 \(a pair has"):
            call()
        assert not pa._cache, f"{name} computed something for m={m!r} before rejecting it"


def test_features_reject_an_unknown_split_or_kind(pair):
    pa, _ = pair(0)
    for kind in ("raw", "normal", "tk"):
        with pytest.raises(ValueError, match=r"^unknown split 'tset'; expected 'train' or 'test'$"):
            pa.features(kind, 0, "tset")  # not silently the training split
    with pytest.raises(ValueError, match=r"^unknown feature kind 'full'; expected one of"):
        pa.features("full", 0, "train")


@pytest.fixture
def data(make_collapsed_pair):
    return make_collapsed_pair(0, k=K)


def _count(monkeypatch, module, name, calls: Counter) -> None:
    original = getattr(module, name)

    def counted(*args, **kwargs):
        calls[name] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)


# -- PairAnalysis: input errors and warnings ------------------------------------------------


def test_pair_messages_name_the_bad_input(data):
    (z0, z1), (t0, t1), y, y_test = data
    with pytest.raises(
        ValueError, match=r"^train and test must each be a pair \(member 0, member 1\) of features$"
    ):
        PairAnalysis((z0,), (t0, t1), y, y_test, num_classes=K)
    with pytest.raises(ValueError, match=r"^train\[1\] must be 2-D \(N, d\), got shape \(600,\)$"):
        PairAnalysis((z0, z1[:, 0]), (t0, t1), y, y_test, num_classes=K)
    with pytest.raises(ValueError, match=r"^test\[0\] must be 2-D \(N, d\), got shape \(200,\)$"):
        PairAnalysis((z0, z1), (t0[:, 0], t1), y, y_test, num_classes=K)
    with pytest.raises(
        ValueError,
        match=r"^the two members' features must be row-aligned \(same samples per split\)$",
    ):
        PairAnalysis((z0, z1[:-1]), (t0, t1), y, y_test, num_classes=K)
    with pytest.raises(
        ValueError, match=r"^y_train must have shape \(600,\) to match the features, got \(599,\)$"
    ):
        PairAnalysis((z0, z1), (t0, t1), y[:-1], y_test, num_classes=K)


def test_absent_classes_are_reported_and_probed(data):
    """With num_classes = K + 1 the last class has no samples: the warning says so, and the
    probes still have K + 1 outputs (not 1 + the largest label seen)."""
    train, test, y, y_test = data
    with pytest.warns(RuntimeWarning) as record:
        pa = PairAnalysis(train, test, y, y_test, num_classes=K + 1)
    expected = [
        f"PairAnalysis: 1 of {K + 1} classes have no samples in the {split} split"
        for split in ("train", "test")
    ]
    assert pa.warnings == expected
    assert [str(w.message) for w in record] == expected
    probe = pa.probe("raw", 0)
    assert probe.weight.shape == (train[0].shape[1], K + 1) and probe.bias.shape == (K + 1,)
    assert int(probe.test_pred.max()) < K  # the absent class is never predicted


def test_results_warnings_are_collected(data):
    """A result's warnings (here the probe's constant column) join ``PairAnalysis.warnings``."""
    (z0, z1), test, y, y_test = data
    z0 = z0.clone()
    z0[:, 3] = 2.0
    pa = PairAnalysis((z0, z1), test, y, y_test, num_classes=K)
    with pytest.warns(RuntimeWarning, match="constant"):
        probe = pa.probe("raw", 0)
    message = (
        "fit_logistic_probe: 1 of 16 columns are constant on the training split; "
        "they are centred and left unscaled"
    )
    assert message in probe.warnings
    assert set(probe.warnings) <= set(pa.warnings)
    assert len(pa.warnings) == len(set(pa.warnings))


# -- PairAnalysis: what is computed, and when ------------------------------------------------


def test_cca_computes_both_kinds_only_when_both_blocks_exist(data, monkeypatch):
    calls: Counter[str] = Counter()
    for name in ("class_centred_moments", "cca_from_covariance"):
        _count(monkeypatch, pair_module, name, calls)
    lazy = PairAnalysis(*data, num_classes=K)
    lazy.cca("raw")  # only the raw blocks exist: the normal CCA (and its blocks) wait
    assert calls == {"class_centred_moments": 1, "cca_from_covariance": 1}
    calls.clear()
    eager = PairAnalysis(*data, num_classes=K)
    eager.covariances()
    eager.cca("raw")  # both blocks formed: both CCAs computed together
    assert calls == {"class_centred_moments": 1, "cca_from_covariance": 2}
    eager.cca("normal")
    assert calls["cca_from_covariance"] == 2


def test_class_means_shared_by_etf_nc1_and_ncc(data, monkeypatch):
    """Each (space, member)'s class means are computed once (also not inside the ETF stats)."""
    calls: Counter[str] = Counter()
    original = etf_module.class_means

    def counted(*args, **kwargs):
        calls["class_means"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(etf_module, "class_means", counted)
    monkeypatch.setattr(pair_module, "class_means", counted)
    pa = PairAnalysis(*data, num_classes=K)
    for m in range(2):
        pa.etf("raw", m)
        pa.nc1("raw", m)
        pa.ncc("raw", m, "test")
    assert calls == {"class_means": 2}


def test_raw_and_normal_probes_reuse_the_covariance_blocks(data, monkeypatch):
    """No pass of the probe's own over the features for raw and normal (the pair's covariance
    blocks give the moments); T_K has no blocks, so each member's probe makes one."""
    calls: Counter[str] = Counter()
    _count(monkeypatch, probe_module, "covariance_blocks", calls)
    pa = PairAnalysis(*data, num_classes=K)
    for kind in ("raw", "normal"):
        for m in range(2):
            pa.probe(kind, m)
    assert calls["covariance_blocks"] == 0
    pa.probe("tk", 0)
    assert calls["covariance_blocks"] == 2


def test_heldout_gib_defaults_to_member_0(data):
    pa = PairAnalysis(*data, num_classes=K)
    assert pa.heldout_gib() is pa.heldout_gib(0)
    assert not torch.equal(pa.heldout_gib(0).gib.v, pa.heldout_gib(1).gib.v)


def test_outputs_compute_each_members_heldout_gib_once(data, monkeypatch):
    """The held-out summary is the same for both members and computed from member 0's; member
    1's held-out GIB is computed once, for its T_K (placed by the held-out spectrum)."""
    calls: Counter[str] = Counter()
    _count(monkeypatch, pair_module, "heldout_gib_from_correlations", calls)
    _count(monkeypatch, pair_module, "heldout_gib_summary", calls)
    pa = PairAnalysis(*data, num_classes=K)
    all_outputs(pa)
    assert calls == {"heldout_gib_from_correlations": 2, "heldout_gib_summary": 1}
