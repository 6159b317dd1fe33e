"""The analysis probe: full-batch L-BFGS logistic regression (docs/math.md §7, Table 2)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ncib.analysis import cross_covariance, fit_logistic_probe

SEEDS = [0, 1, 2]


def _clusters(seed: int, n=600, n_test=300, d=10, k=4, sep=10.0):
    g = torch.Generator().manual_seed(seed)
    centres = sep * torch.randn(k, d, generator=g, dtype=torch.float64) / np.sqrt(2)
    y, y_test = torch.arange(n) % k, torch.arange(n_test) % k
    h = centres[y] + torch.randn(n, d, generator=g, dtype=torch.float64)
    h_test = centres[y_test] + torch.randn(n_test, d, generator=g, dtype=torch.float64)
    return h, y, h_test, y_test


@pytest.mark.parametrize("seed", SEEDS)
def test_separable_clusters(seed):
    h, y, h_test, y_test = _clusters(seed)
    res = fit_logistic_probe(h, y, h_test, y_test)
    assert float(res.test_acc) >= 0.99 and float(res.train_acc) >= 0.99
    assert res.test_pred.shape == y_test.shape and res.train_pred.shape == y.shape
    np.testing.assert_allclose(
        float(res.test_acc), float((res.test_pred == y_test).double().mean())
    )


@pytest.mark.parametrize("seed", SEEDS)
def test_matches_scikit_learn_on_digits(seed):
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, stratify=y, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn may not converge in its default 100 iterations
        ref = (
            make_pipeline(StandardScaler(), LogisticRegression()).fit(x_tr, y_tr).score(x_te, y_te)
        )
    with pytest.warns(RuntimeWarning, match="constant"):  # digits has always-blank pixels
        ours = fit_logistic_probe(
            torch.tensor(x_tr), torch.tensor(y_tr), torch.tensor(x_te), torch.tensor(y_te)
        )
    assert abs(float(ours.test_acc) - ref) <= 0.01, (float(ours.test_acc), ref)
    assert float(ours.test_acc) > 0.9


@pytest.mark.parametrize("seed", SEEDS)
def test_same_optimum_as_scikit_learn(seed):
    """Default λ = 1/N is scikit-learn's C = 1: converged probabilities agree."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x, y = load_digits(return_X_y=True)
    rows = np.random.default_rng(seed).choice(len(y), 500, replace=False)
    x, y = x[rows], y[rows]
    scaler = StandardScaler().fit(x)
    ref = LogisticRegression(tol=1e-10, max_iter=10_000).fit(scaler.transform(x), y)
    with pytest.warns(RuntimeWarning, match="constant"):
        ours = fit_logistic_probe(
            torch.tensor(x),
            torch.tensor(y),
            torch.tensor(x),
            torch.tensor(y),
            tolerance_grad=1e-10,
            tolerance_change=0.0,
            max_iter=2000,
        )
    logits = (torch.tensor(x) - ours.mean) / ours.std @ ours.weight + ours.bias
    probs = torch.softmax(logits, 1).numpy()
    np.testing.assert_allclose(probs, ref.predict_proba(scaler.transform(x)), atol=2e-4)


@pytest.mark.parametrize("seed", SEEDS)
def test_deterministic(seed):
    h, y, h_test, y_test = _clusters(seed, sep=2.0)  # overlapping: a non-trivial optimum
    a = fit_logistic_probe(h, y, h_test, y_test)
    b = fit_logistic_probe(h, y, h_test, y_test)
    assert torch.equal(a.test_pred, b.test_pred) and torch.equal(a.train_pred, b.train_pred)
    assert torch.equal(a.weight, b.weight)


@pytest.mark.parametrize("seed", SEEDS)
def test_optimum_satisfies_stationarity(seed):
    """The gradient of the documented objective vanishes at the returned weights."""
    h, y, h_test, y_test = _clusters(seed, sep=2.0)
    lam = 1e-2
    res = fit_logistic_probe(
        h,
        y,
        h_test,
        y_test,
        weight_decay=lam,
        tolerance_grad=1e-10,
        tolerance_change=0.0,
        max_iter=500,
    )
    x = ((h - res.mean) / res.std).requires_grad_(False)
    w = res.weight.clone().requires_grad_(True)
    b = res.bias.clone().requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(x @ w + b, y) + 0.5 * lam * w.square().sum()
    loss.backward()
    assert float(w.grad.abs().max()) < 1e-6 and float(b.grad.abs().max()) < 1e-6
    np.testing.assert_allclose(float(res.loss), float(loss.detach()), rtol=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
def test_precomputed_moments_and_float32(seed):
    h, y, h_test, y_test = _clusters(seed, sep=2.0)
    ref = fit_logistic_probe(h, y, h_test, y_test)
    cov = cross_covariance(h, h)
    with_moments = fit_logistic_probe(h, y, h_test, y_test, moments=(cov.mean_a, cov.cov_aa))
    torch.testing.assert_close(with_moments.weight, ref.weight, rtol=1e-6, atol=1e-8)
    f32 = fit_logistic_probe(h.float(), y, h_test.float(), y_test)
    assert float((f32.test_pred == ref.test_pred).double().mean()) >= 0.98


def test_validation_errors():
    h, y, h_test, y_test = _clusters(0)
    with pytest.raises(ValueError, match="at least two classes"):
        fit_logistic_probe(h, torch.zeros_like(y), h_test, torch.zeros_like(y_test), num_classes=1)
    with pytest.raises(ValueError, match="shape"):
        fit_logistic_probe(h, y[:-1], h_test, y_test)
    with pytest.raises(ValueError, match="columns"):
        fit_logistic_probe(h, y, h_test[:, :-1], y_test)
    with pytest.raises(ValueError, match="outside"):
        fit_logistic_probe(h, y, h_test, y_test, num_classes=3)
    with pytest.raises(ValueError, match=r"^h_train must be 2-D \(N, d\)"):
        fit_logistic_probe(h[:, 0], y, h_test, y_test)
    with pytest.raises(ValueError, match=r"^h_test must be 2-D \(N, d\)"):
        fit_logistic_probe(h, y, h_test[:, 0], y_test)
    # a probe needs two training rows; one test row is enough
    message = rf"^h_train has shape \(1, {h.shape[1]}\); need at least 2 rows and 1 column$"
    with pytest.raises(ValueError, match=message):
        fit_logistic_probe(h[:1], y[:1], h_test, y_test, num_classes=int(y.max()) + 1)
    result = fit_logistic_probe(h[:2], y[:2], h_test[:1], y_test[:1], num_classes=int(y.max()) + 1)
    assert result.test_pred.shape == (1,)


@pytest.mark.parametrize("seed", SEEDS)
def test_warm_start_reaches_the_same_optimum(seed):
    """Started from a perturbed optimum (an earlier epoch's probe), L-BFGS converges to the
    optimum of the cold start; init is honoured (a huge start is not the zero start)."""
    h, y, h_test, y_test = _clusters(seed, sep=2.0)
    kw = dict(weight_decay=1e-2, tolerance_grad=1e-9, tolerance_change=0.0, max_iter=500)
    cold = fit_logistic_probe(h, y, h_test, y_test, **kw)
    g = torch.Generator().manual_seed(seed)
    start = (cold.weight * (1 + 0.05 * torch.randn(cold.weight.shape, generator=g)), cold.bias)
    warm = fit_logistic_probe(h, y, h_test, y_test, init=start, **kw)
    torch.testing.assert_close(warm.weight, cold.weight, atol=1e-6, rtol=0)
    torch.testing.assert_close(warm.loss, cold.loss, atol=1e-12, rtol=0)
    at_optimum = fit_logistic_probe(h, y, h_test, y_test, init=(cold.weight, cold.bias), **kw)
    assert at_optimum.n_evals <= 2  # W = R⁻ᵀ V inverted exactly: the start is already optimal
    far = fit_logistic_probe(h, y, h_test, y_test, init=(100 * cold.weight, cold.bias), max_iter=1)
    near = fit_logistic_probe(h, y, h_test, y_test, max_iter=1)
    assert float(far.loss) > 2 * float(near.loss)


def test_warm_start_validation():
    h, y, h_test, y_test = _clusters(0)
    with pytest.raises(ValueError, match="init must be shaped"):
        fit_logistic_probe(h, y, h_test, y_test, init=(torch.zeros(10, 3), torch.zeros(4)))
    with pytest.warns(RuntimeWarning, match="not finite"):
        res = fit_logistic_probe(
            h, y, h_test, y_test, init=(torch.full((10, 4), float("nan")), torch.zeros(4))
        )
    assert float(res.test_acc) >= 0.99


def test_standardisation_matters_on_badly_scaled_features():
    """The class signal lives in one column of scale 1e-3, beside columns of noise of scale
    1e3: standardised, the default penalty leaves that column usable (accuracy near 1); an
    unscaled probe would need a weight of ~1e3 there, which the same penalty forbids, and
    stays near chance."""
    g = torch.Generator().manual_seed(0)
    n, k = 400, 2
    y = torch.arange(n) % k
    y_test = torch.arange(200) % k

    def features(labels):
        signal = 1e-3 * (2.0 * labels.double() - 1 + 0.2 * torch.randn(len(labels), generator=g))
        noise = 1e3 * torch.randn(len(labels), 4, generator=g, dtype=torch.float64)
        return torch.cat([signal[:, None], noise], 1)

    h, h_test = features(y), features(y_test)
    res = fit_logistic_probe(h, y, h_test, y_test)
    assert float(res.test_acc) > 0.95 and float(res.train_acc) > 0.95
    np.testing.assert_allclose(res.std[0].item(), h[:, 0].std(unbiased=False).item(), rtol=1e-6)
    # the same objective without standardisation, minimised directly: near chance
    w = torch.zeros(h.shape[1], k, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(k, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(h @ w + b, y) + 0.5 / n * w.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    unscaled = float(((h_test @ w + b).argmax(1) == y_test).double().mean())
    assert unscaled < 0.7, unscaled


# -- messages, moments, rounding, the preconditioner fallback, the line search -------------------------------------------------------------------------------


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
