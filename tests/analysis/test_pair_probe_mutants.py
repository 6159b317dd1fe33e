"""PairAnalysis and the probe: messages naming the bad input, warning bookkeeping, what is
computed (and how often), and the probe's optimiser and preconditioner fallback."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ncib.analysis.etf as etf_module
import ncib.analysis.pair as pair_module
import ncib.analysis.probe as probe_module
from ncib.analysis import PairAnalysis, cross_covariance, fit_logistic_probe
from ncib.metrics.outputs import all_outputs

from .test_probe import _clusters

K = 4


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
    for name in ("covariance_blocks", "cca_from_covariance"):
        _count(monkeypatch, pair_module, name, calls)
    lazy = PairAnalysis(*data, num_classes=K)
    lazy.cca("raw")  # only the raw blocks exist: the normal CCA (and its blocks) wait
    assert calls == {"covariance_blocks": 1, "cca_from_covariance": 1}
    calls.clear()
    eager = PairAnalysis(*data, num_classes=K)
    eager.covariances()
    eager.cca("raw")  # both blocks formed: both CCAs computed together
    assert calls == {"covariance_blocks": 1, "cca_from_covariance": 2}
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


def test_outputs_compute_only_member_0s_heldout_gib(data, monkeypatch):
    """The held-out summary is the same for both members: member 1's is never computed."""
    calls: Counter[str] = Counter()
    _count(monkeypatch, pair_module, "heldout_gib_from_correlations", calls)
    pa = PairAnalysis(*data, num_classes=K)
    all_outputs(pa)
    assert calls == {"heldout_gib_from_correlations": 1}


# -- the probe -------------------------------------------------------------------------------


def test_probe_y_test_message():
    h, y, h_test, y_test = _clusters(0)
    with pytest.raises(
        ValueError, match=r"^y_test must have shape \(300,\) to match the features, got \(299,\)$"
    ):
        fit_logistic_probe(h, y, h_test, y_test[:-1])


def test_probe_moments_shape_message():
    h, y, h_test, y_test = _clusters(0)
    cov = cross_covariance(h, h)
    with pytest.raises(ValueError, match=r"^moments must be shaped \(10,\) and \(10, 10\)$"):
        fit_logistic_probe(h, y, h_test, y_test, moments=(cov.mean_a[:-1], cov.cov_aa))


def test_float32_moments_and_warm_start_are_accepted():
    h, y, h_test, y_test = _clusters(1, sep=2.0)
    kw = dict(weight_decay=1e-2, tolerance_grad=1e-9, tolerance_change=0.0, max_iter=500)
    ref = fit_logistic_probe(h, y, h_test, y_test, **kw)
    cov = cross_covariance(h, h)
    f32 = fit_logistic_probe(
        h, y, h_test, y_test, moments=(cov.mean_a.float(), cov.cov_aa.float()), **kw
    )
    assert f32.mean.dtype == f32.std.dtype == torch.float64
    torch.testing.assert_close(f32.std, ref.std, rtol=1e-6, atol=0)
    torch.testing.assert_close(f32.weight, ref.weight, rtol=0, atol=1e-4)
    warm = fit_logistic_probe(
        h, y, h_test, y_test, init=(ref.weight.float(), ref.bias.float()), **kw
    )
    assert warm.weight.dtype == torch.float64
    torch.testing.assert_close(warm.weight, ref.weight, rtol=0, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_column_constant_up_to_rounding_is_flagged(dtype):
    """A column at 1000 (float32) or 1e4 (float64) that differs between rows by one ulp only is
    constant to the features' precision: it is flagged, centred and left unscaled (std 1)."""
    g = torch.Generator().manual_seed(0)
    n = 200
    y = torch.arange(n) % 2
    level = torch.tensor(1e3 if dtype == torch.float32 else 1e4, dtype=dtype)
    column = torch.where(torch.arange(n) % 3 == 0, torch.nextafter(level, 2 * level), level)
    h = torch.cat([column[:, None], torch.randn(n, 2, generator=g, dtype=dtype) + y[:, None]], 1)
    assert h[:, 0].var() > 0
    with pytest.warns(RuntimeWarning) as record:
        res = fit_logistic_probe(h, y, h, y)
    message = (
        "fit_logistic_probe: 1 of 3 columns are constant on the training split; "
        "they are centred and left unscaled"
    )
    assert [str(w.message) for w in record] == [message] and res.warnings == (message,)
    assert res.std[0].item() == 1.0 and res.std[1].item() != 1.0


def test_unfactorisable_preconditioner_falls_back():
    """Moments whose correlation is not positive definite (off-diagonal covariance 1.5×) cannot
    be factorised: the probe warns and runs unpreconditioned. The objective uses only the
    diagonal (standardisation), so the optimum is that of the true moments."""
    h, y, h_test, y_test = _clusters(2, sep=2.0)
    kw = dict(weight_decay=1e-2, tolerance_grad=1e-9, tolerance_change=0.0, max_iter=500)
    cov = cross_covariance(h, h)
    ref = fit_logistic_probe(h, y, h_test, y_test, moments=(cov.mean_a, cov.cov_aa), **kw)
    sd = cov.cov_aa.diagonal().sqrt()
    bad = 1.5 * torch.outer(sd, sd)
    bad.diagonal().copy_(cov.cov_aa.diagonal())
    with pytest.warns(RuntimeWarning) as record:
        res = fit_logistic_probe(h, y, h_test, y_test, moments=(cov.mean_a, bad), **kw)
    message = (
        "fit_logistic_probe: the preconditioner could not be factorised; "
        "L-BFGS runs unpreconditioned"
    )
    assert [str(w.message) for w in record] == [message] and res.warnings == (message,)
    torch.testing.assert_close(res.std, ref.std, rtol=0, atol=0)
    torch.testing.assert_close(res.weight, ref.weight, rtol=0, atol=1e-5)
    assert torch.equal(res.test_pred, ref.test_pred)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_iteration_decreases_the_objective(seed):
    """The strong-Wolfe line search accepts only steps that decrease the objective: from a
    poor warm start the objective after 1, 2, … L-BFGS iterations never increases (a fixed
    unit step overshoots). Each loss is the documented objective at the returned weights."""
    h, y, h_test, y_test = _clusters(seed, sep=2.0)
    lam = 1e-2
    cold = fit_logistic_probe(h, y, h_test, y_test, weight_decay=lam)
    init = (-10 * cold.weight, cold.bias)

    def objective(w, b):
        x = (h - cold.mean) / cold.std
        return float(F.cross_entropy(x @ w + b, y) + 0.5 * lam * w.square().sum())

    losses = [objective(*init)]
    for max_iter in range(1, 6):
        res = fit_logistic_probe(
            h, y, h_test, y_test, weight_decay=lam, init=init, max_iter=max_iter
        )
        np.testing.assert_allclose(float(res.loss), objective(res.weight, res.bias), rtol=1e-12)
        losses.append(float(res.loss))
    assert all(b <= a for a, b in zip(losses, losses[1:], strict=False)), losses
