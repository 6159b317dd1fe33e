"""A slow, obviously-correct numpy/scipy reference of one analysis epoch (docs/math.md §2–§7, §11).

It shares no code with :mod:`ncib.analysis` except the analysis probe (a fitted optimiser, taken
from :func:`ncib.analysis.fit_logistic_probe` on the reference's own features): normal scores
from ``scipy.stats.rankdata``, CCA by symmetric inverse square roots (eigh) instead of Cholesky,
the Gaussian information of T_K from log-determinants of covariance matrices instead of the
closed form, class means by boolean masks, NC1 with ``numpy.linalg.pinv``, NC2 of a
classifier and NC3 by loops over pairs of rows and entries, NCC by explicit
distances (leave-one-out by recomputing each class mean without the sample), resampling by
indexing rows. Everything is float64 numpy; results are plain floats and arrays. Where ncib
draws random numbers (the null threshold's permutations, the bootstrap and the fold refits of
the intervals) the reference draws the same ones from the same torch generators and
recomputes everything else itself.
"""

from __future__ import annotations

import math
from functools import cached_property

import numpy as np
import torch
from scipy.stats import norm, rankdata

MEMBERS = ("m0", "m1")


def normal_scores(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column: Φ⁻¹(rank/(N+1)) on train (average ranks), and a test value x scored against
    the training column as Φ⁻¹((#{ref < x} + ½·#{ref = x} + ½)/(N+1))."""
    n = train.shape[0]
    g_train = norm.ppf(rankdata(train, axis=0) / (n + 1))
    g_test = np.empty_like(test)
    for j in range(train.shape[1]):
        ref = np.sort(train[:, j])
        below = np.searchsorted(ref, test[:, j], side="left")
        upto = np.searchsorted(ref, test[:, j], side="right")
        g_test[:, j] = norm.ppf((below + 0.5 * (upto - below) + 0.5) / (n + 1))
    return g_train, g_test


def _cov(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a - a.mean(0)).T @ (b - b.mean(0)) / a.shape[0]


def _ridged(s: np.ndarray, ridge: float, scale: float) -> np.ndarray:
    return s + ridge * scale * np.eye(s.shape[0])


def within_scale(x: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> float:
    """tr(Σ_W)/d: the (weighted) mean squared deviation from the own class mean, per column."""
    w = np.ones(len(x)) if w is None else w
    total = 0.0
    for c in np.unique(y):
        rows = y == c
        if w[rows].sum() > 0:
            mu = np.average(x[rows], axis=0, weights=w[rows])
            total += float((w[rows][:, None] * (x[rows] - mu) ** 2).sum())
    return total / w.sum() / x.shape[1]


def _wcov(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    wa, wb = np.average(a, axis=0, weights=w), np.average(b, axis=0, weights=w)
    return (w[:, None] * (a - wa)).T @ (b - wb) / w.sum()


def _inv_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(s)
    return (v / np.sqrt(w)) @ v.T


class CCA:
    """CCA of ``a (N, d_a)``, ``b (N, d_b)`` with labels ``y``: ρ descending and directions with
    ``W_aᵀ Σ_aa W_a = I`` (ridged Σ: ``Σ + ε·tr(Σ_W)/d·I``, the within-class variance per
    column); ``w``: row weights (a resample)."""

    def __init__(self, a, b, ridge: float, y: np.ndarray, w: np.ndarray | None = None):
        w = np.ones(len(a)) if w is None else w
        self.mean_a, self.mean_b = np.average(a, 0, w), np.average(b, 0, w)
        self.s_aa = _ridged(_wcov(a, a, w), ridge, within_scale(a, y, w))
        self.s_bb = _ridged(_wcov(b, b, w), ridge, within_scale(b, y, w))
        self.s_ab = _wcov(a, b, w)
        ia, ib = _inv_sqrt(self.s_aa), _inv_sqrt(self.s_bb)
        u, s, vt = np.linalg.svd(ia @ self.s_ab @ ib)
        r = min(a.shape[1], b.shape[1])
        self.rho = np.clip(s[:r], 0.0, 1.0)
        self.w_a, self.w_b = ia @ u[:, :r], ib @ vt[:r].T

    def variates(self, a_test: np.ndarray, b_test: np.ndarray):
        return (a_test - self.mean_a) @ self.w_a, (b_test - self.mean_b) @ self.w_b

    def test_correlations(self, a_test: np.ndarray, b_test: np.ndarray) -> np.ndarray:
        """Pearson correlation on the test rows of each pair of train-fitted variates."""
        sa, sb = self.variates(a_test, b_test)
        return np.array([np.corrcoef(sa[:, i], sb[:, i])[0, 1] for i in range(sa.shape[1])])


def gaussian_mi(s_xx: np.ndarray, s_yy: np.ndarray, s_xy: np.ndarray) -> float:
    """I(X;Y) of jointly Gaussian X, Y from log-determinants (nats)."""
    joint = np.block([[s_xx, s_xy], [s_xy.T, s_yy]])
    return 0.5 * (
        np.linalg.slogdet(s_xx)[1] + np.linalg.slogdet(s_yy)[1] - np.linalg.slogdet(joint)[1]
    )


def information_at(lam: np.ndarray, beta: float) -> tuple[float, float]:
    """docs/math.md §5.2: I(T;X), I(T;Y) of the optimal T at β for GIB eigenvalues λ."""
    lam = np.clip(lam, np.finfo(float).eps, 1.0)
    crit = np.array([1.0 / (1.0 - v) if v < 1.0 else math.inf for v in lam])
    on = beta > crit
    i_tx = 0.5 * np.sum(np.log((beta - 1.0) * (1.0 - lam[on]) / lam[on]))
    return float(i_tx), float(i_tx - 0.5 * np.sum(np.log(beta * (1.0 - lam[on]))))


def beta_of_tk(crit: np.ndarray, k: int) -> float:
    """The β of T_K: just below β_{k+1}, or 2·β_k when there is no finite β_{k+1} (1 when
    not even β_k is finite... as ncib: 2·the last finite one, or 1 when none is)."""
    if k < len(crit) and math.isfinite(crit[k]):
        return crit[k] * (1.0 - 1e-6)
    if math.isfinite(crit[k - 1]):
        return 2.0 * crit[k - 1]
    finite = crit[np.isfinite(crit)]
    return 2.0 * finite[-1] if len(finite) else 1.0


def spectrum_stats(corr: np.ndarray, k: int, r: int, null_rho: float) -> dict[str, float]:
    """docs/math.md §5.5: of signed test correlations of the first q <= r pairs (training
    order): the mean of the first k, and of ρ̃ = c above the null threshold (else 0), sorted:
    ρ̃_k, ρ̃_{k+1}, I(X;Y) and I(T_K;Y)/I(X;Y) at the β of T_K."""
    rho = np.zeros(r)
    rho[: len(corr)] = np.where(corr > null_rho, np.clip(corr, 0, 1), 0.0)
    rho = np.sort(rho)[::-1]
    lam = np.clip(1.0 - rho**2, np.finfo(float).eps, 1.0)
    mi = float(-0.5 * np.log(lam).sum())
    _, i_ty = information_at(lam, beta_of_tk(crit_of(rho), k))
    return {
        "mean_k": float(np.mean(corr[:k])),
        "rho_k": float(rho[k - 1]),
        "rho_k_next": float(rho[k]) if k < r else 0.0,
        "mi_xy": mi,
        "i_ty_frac_tk": i_ty / mi if mi > 0 else 0.0,
    }


BOUNDS = {
    "mean_k": (-1.0, 1.0),
    "rho_k": (0.0, 1.0),
    "rho_k_next": (0.0, 1.0),
    "mi_xy": (0.0, math.inf),
    "i_ty_frac_tk": (0.0, 1.0),
}


def bracket(name: str, estimate: float, sources: list[list[float]], z: float):
    """docs/math.md §5.5: [min(θ̂, θ̂ − Σ bias) − z·sqrt(Σ var), max(…) + z·sqrt(Σ var)] within the
    statistic's range, each source a list of replicate values (bias = mean − θ̂; sample var)."""
    bias = sum(np.mean(v) - estimate for v in sources if len(v) >= 2)
    var = sum(np.var(v, ddof=1) for v in sources if len(v) >= 2)
    corrected, half = estimate - bias, z * math.sqrt(var)
    lo_b, hi_b = BOUNDS[name]
    lo = min(max(min(estimate, corrected) - half, lo_b), estimate)
    hi = max(min(max(estimate, corrected) + half, hi_b), estimate)
    return estimate, lo, hi


def beta_interval(interval):
    """(β̃, lo, hi) of an interval (ρ̃, lo, hi) of a correlation: β = 1/ρ² (∞ at 0)."""
    beta = lambda rho: 1.0 / rho**2 if rho > 0 else math.inf  # noqa: E731
    est, lo, hi = interval
    return beta(est), beta(hi), beta(lo)


def crit_of(rho: np.ndarray) -> np.ndarray:
    """β_i = 1/ρ_i² (= 1/(1−λ_i)); inf where ρ_i = 0."""
    return np.array([1.0 / r**2 if r > 0 else math.inf for r in rho])


class Geometry:
    """Class means, simplex-ETF statistics, NC1 and NCC of features ``h (N, d)`` (present classes)."""

    def __init__(self, h: np.ndarray, y: np.ndarray, num_classes: int):
        self.h, self.y = h, y
        self.classes = [c for c in range(num_classes) if np.any(y == c)]
        self.means = np.stack([h[y == c].mean(0) for c in self.classes])
        self.centred = self.means - self.means.mean(0)

    @cached_property
    def etf(self) -> dict[str, float]:
        m = self.centred
        k = len(m)
        norms = np.linalg.norm(m, axis=1)
        cos = np.array(
            [m[i] @ m[j] / (norms[i] * norms[j]) for i in range(k) for j in range(k) if i != j]
        )
        return {
            "equinorm": norms.std() / norms.mean(),
            "cos_mean": cos.mean(),
            "cos_std": cos.std(),
            "cos_dev": np.abs(cos + 1.0 / (k - 1)).mean(),
            "angle_std_deg": np.degrees(np.arccos(np.clip(cos, -1, 1))).std(),
        }

    @cached_property
    def nc1(self) -> float:
        lookup = {c: i for i, c in enumerate(self.classes)}
        resid = self.h - self.means[[lookup[c] for c in self.y]]
        s_w = resid.T @ resid / len(self.h)
        s_b = self.centred.T @ self.centred / len(self.classes)
        return float(np.trace(s_w @ np.linalg.pinv(s_b, hermitian=True)) / len(self.classes))

    def ncc(self, h: np.ndarray) -> np.ndarray:
        dist = ((h[:, None, :] - self.means[None]) ** 2).sum(-1)
        return np.asarray(self.classes)[dist.argmin(1)]


def classifier_collapse(h: np.ndarray, y: np.ndarray, num_classes: int, w: np.ndarray) -> dict:
    """NC2 of the classifier rows ``w (num_classes, d)`` and NC3 against the class means of
    ``h`` (docs/math.md §6a), written out term by term: the present classes only, μ_G the
    plain average of their means, every pair of rows and every entry summed in Python loops."""
    h, y, w = np.asarray(h, float), np.asarray(y), np.asarray(w, float)
    classes = [c for c in range(num_classes) if np.any(y == c)]
    mu = {c: h[y == c].mean(0) for c in classes}
    mu_g = sum(mu[c] for c in classes) / len(classes)
    dev = {c: mu[c] - mu_g for c in classes}
    k = len(classes)
    row_norm = {c: math.sqrt(sum(float(v) ** 2 for v in w[c])) for c in classes}
    norms = np.array([row_norm[c] for c in classes])
    cosines = []
    for a in classes:
        for b in classes:
            if a != b:
                cosines.append(float(np.dot(w[a], w[b])) / (row_norm[a] * row_norm[b]))
    cosines = np.array(cosines)
    w_fro = math.sqrt(sum(row_norm[c] ** 2 for c in classes))
    m_fro = math.sqrt(sum(float(np.dot(dev[c], dev[c])) for c in classes))
    nc3 = 0.0
    for c in classes:
        for j in range(w.shape[1]):
            nc3 += (w[c, j] / w_fro - dev[c][j] / m_fro) ** 2
    per_class = [
        float(np.dot(w[c], dev[c])) / (row_norm[c] * math.sqrt(float(np.dot(dev[c], dev[c]))))
        for c in classes
    ]
    return {
        "equinorm": math.sqrt(np.mean((norms - norms.mean()) ** 2)) / norms.mean(),
        "cos_mean": float(np.mean(cosines)),
        "cos_std": math.sqrt(float(np.mean((cosines - cosines.mean()) ** 2))),
        "cos_dev": float(np.mean(np.abs(cosines + 1.0 / (k - 1)))),
        "nc3": nc3,
        "nc3_cos": float(np.mean(per_class)),
        "num_classes": k,
    }


def probe(h_train, y_train, h_test, y_test, num_classes):
    """The analysis probe on reference features: ``(train_pred, test_pred)`` as numpy."""
    from ncib.analysis import fit_logistic_probe

    res = fit_logistic_probe(
        torch.from_numpy(np.ascontiguousarray(h_train)),
        torch.from_numpy(y_train),
        torch.from_numpy(np.ascontiguousarray(h_test)),
        torch.from_numpy(y_test),
        num_classes=num_classes,
    )
    return res.train_pred.numpy(), res.test_pred.numpy()


class ReferencePair:
    """The reference analysis of two members' features.

    Args:
        train, test: ``(z0, z1)`` float64 arrays ``(N, d_m)`` and ``(N_test, d_m)``.
        y, y_test: labels; num_classes: K; k: dimension of T_K; ridge: relative ridge ε.
        classifier: ``(W0, W1)`` classifier rows ``(K, d_m)`` of the members, or None.
    """

    def __init__(
        self,
        train,
        test,
        y,
        y_test,
        num_classes,
        k=None,
        ridge=1e-6,
        intervals=None,
        classifier=None,
    ):
        self.raw = {
            "train": [np.asarray(z, float) for z in train],
            "test": [np.asarray(z, float) for z in test],
        }
        self.y = {"train": np.asarray(y), "test": np.asarray(y_test)}
        self.num_classes, self.k, self.ridge = num_classes, k or num_classes, ridge
        self.settings = intervals  # ncib.analysis.IntervalSettings: sizes, levels, seed
        self.classifier_rows = (
            None if classifier is None else [np.asarray(w, float) for w in classifier]
        )
        self._probes: dict = {}

    def classifier(self, m: int) -> dict:
        """NC2 of member m's classifier rows and NC3 against its raw training class means."""
        return classifier_collapse(
            self.raw["train"][m], self.y["train"], self.num_classes, self.classifier_rows[m]
        )

    # -- features -----------------------------------------------------------------------
    @cached_property
    def normal(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [normal_scores(self.raw["train"][m], self.raw["test"][m]) for m in range(2)]

    def features(self, kind: str, m: int, split: str, k: int | None = None) -> np.ndarray:
        if kind == "raw":
            return self.raw[split][m]
        if kind == "normal":
            return self.normal[m][split == "test"]
        return self.tk(m, k or self.k)["features"][split]

    # -- CCA, CKA, copula -----------------------------------------------------------------
    def cca(self, kind: str) -> CCA:
        return self._cached(
            ("cca", kind),
            lambda: CCA(
                self.features(kind, 0, "train"),
                self.features(kind, 1, "train"),
                self.ridge,
                self.y["train"],
            ),
        )

    def cka(self, kind: str) -> float:
        a, b = (self.features(kind, m, "train") for m in range(2))
        cross = np.linalg.norm(_cov(a, b)) ** 2
        return float(cross / (np.linalg.norm(_cov(a, a)) * np.linalg.norm(_cov(b, b))))

    def heldout_rho_k(self, kind: str) -> np.ndarray:
        fit = self.cca(kind)
        return fit.test_correlations(*(self.features(kind, m, "test") for m in range(2)))[: self.k]

    def copula_rho(self, m: int) -> np.ndarray:
        return CCA(self.raw["train"][m], self.normal[m][0], self.ridge, self.y["train"]).rho

    # -- GIB -------------------------------------------------------------------------------
    @property
    def lam(self) -> np.ndarray:
        """In-sample GIB eigenvalues, ascending."""
        return np.clip(1.0 - self.cca("normal").rho ** 2, np.finfo(float).eps, 1.0)

    @property
    def beta_crit(self) -> np.ndarray:
        return crit_of(self.cca("normal").rho)

    @property
    def mi_xy(self) -> float:
        """I(X;Y) of the ridged covariance of the normal scores, by log-determinants."""
        fit = self.cca("normal")
        return gaussian_mi(fit.s_aa, fit.s_bb, fit.s_ab)

    def tk_insample(self, k: int) -> dict:
        """The in-sample T_k of member 0 (directions and β from the in-sample spectrum):
        its β, and I(T;X), I(T;Y) from covariances: T = A X + ξ, ξ ~ N(0, I)."""
        fit = self.cca("normal")
        beta = beta_of_tk(self.beta_crit, k)
        v, s_x, s_y, s_xy = fit.w_a[:, :k], fit.s_aa, fit.s_bb, fit.s_ab
        r = np.einsum("ji,jk,ki->i", v, s_x, v)
        lam = self.lam[:k]
        alpha = np.sqrt(np.clip(beta * (1.0 - lam) - 1.0, 0, None) / (lam * r))
        a = alpha[:, None] * v.T
        x_given_y = s_x - s_xy @ np.linalg.solve(s_y, s_xy.T)
        eye = np.eye(k)
        i_tx = 0.5 * np.linalg.slogdet(a @ s_x @ a.T + eye)[1]
        i_ty = i_tx - 0.5 * np.linalg.slogdet(a @ x_given_y @ a.T + eye)[1]
        return {"beta": beta, "i_tx": float(i_tx), "i_ty": float(i_ty)}

    def tk(self, m: int, k: int) -> dict:
        """T_k of member m from the held-out spectrum (docs/math.md §5.3): the train-fitted
        directions v of X = member m's normal scores in the order of their held-out ρ̃ (above
        the null threshold, descending, stable), α_i = sqrt((β(1−λ̃_i) − 1)/(λ̃_i v_iᵀ Σ_x v_i))
        at the β of T_k of the held-out critical β̃; its features; I(T;X), I(T;Y) of the
        held-out spectrum (§5.2 closed form)."""

        def compute():
            fit = self.cca("normal")
            rho, order = self.heldout_spectrum
            v = (fit.w_a if m == 0 else fit.w_b)[:, order[:k]]
            s_x = fit.s_aa if m == 0 else fit.s_bb
            lam_all = np.clip(1.0 - rho**2, np.finfo(float).eps, 1.0)
            beta = beta_of_tk(crit_of(rho), k)
            r = np.einsum("ji,jk,ki->i", v, s_x, v)
            lam = lam_all[:k]
            on = beta > crit_of(rho[:k])
            alpha = np.where(
                on, np.sqrt(np.clip(beta * (1.0 - lam) - 1.0, 0, None) / (lam * r)), 0.0
            )
            a = alpha[:, None] * v.T  # (k, d_x)
            mean = self.normal[m][0].mean(0)
            i_tx, i_ty = information_at(lam_all, beta)
            return {
                "beta": beta,
                "alpha": alpha,
                "scaling": alpha / alpha.mean(),
                "i_tx": i_tx,
                "i_ty": i_ty,
                "features": {
                    s: (self.normal[m][s == "test"] - mean) @ a.T for s in ("train", "test")
                },
            }

        return self._cached(("tk", m, k), compute)

    @cached_property
    def heldout_corr(self) -> np.ndarray:
        """Signed test correlations of all pairs of the normal CCA, training order."""
        fit = self.cca("normal")
        return fit.test_correlations(*(self.features("normal", m, "test") for m in range(2)))

    @cached_property
    def null_rho(self) -> float:
        """The 1 − null_level quantile of the largest test correlation of the normal CCA's
        pairs after permuting member 1's test rows (ncib's permutations: the same generator)."""
        st = self.settings
        fit = self.cca("normal")
        sa, sb = fit.variates(*(self.features("normal", m, "test") for m in range(2)))
        gen = torch.Generator().manual_seed(st.seed * 1_000_003 + 100 + 1)  # stream of "normal"
        maxima = []
        for _ in range(st.permutations):
            perm = torch.randperm(sa.shape[0], generator=gen).numpy()
            maxima.append(max(np.corrcoef(sa[:, i], sb[perm, i])[0, 1] for i in range(sa.shape[1])))
        return float(np.quantile(maxima, 1.0 - st.null_level))

    @cached_property
    def heldout_spectrum(self) -> tuple[np.ndarray, np.ndarray]:
        """Held-out ρ̃ (correlations above the null threshold, else 0), descending, and the
        training index of each (stable order)."""
        c = self.heldout_corr
        clamped = np.where(c > self.null_rho, np.clip(c, 0.0, 1.0), 0.0)
        order = np.argsort(-clamped, kind="stable")
        return clamped[order], order

    @property
    def heldout_rho(self) -> np.ndarray:
        return self.heldout_spectrum[0]

    def information_grid(self) -> np.ndarray:
        """The record's β grid: 256 log-spaced β in [1, 10·top], top the larger of the in-sample
        and held-out β_{k+1} (β_K's successor among the finite β_i, docs/math.md §5.2)."""
        tops = []
        for crit in (self.beta_crit, crit_of(self.heldout_rho)):
            finite = crit[np.isfinite(crit)]
            if len(finite):
                tops.append(finite[min(self.k, len(finite) - 1)])
        top = max(tops) if tops else 10.0
        return np.logspace(0.0, math.log10(10.0 * max(top, 1.0)), 256)

    # -- intervals (docs/math.md §5.5) ----------------------------------------------------
    def intervals(self, kind: str) -> dict[str, tuple[float, float, float]]:
        """(estimate, lo, hi) of the held-out statistics of kind (raw: mean_k only), from
        resampled rows: ncib's bootstrap draws and fold multiplicities (same generators),
        every statistic recomputed here (full CCAs of weighted rows)."""

        def compute():
            st = self.settings
            stream = ("raw", "normal").index(kind)
            null = self.null_rho if kind == "normal" else 0.0
            fit = self.cca(kind)
            test = [self.features(kind, m, "test") for m in range(2)]
            train = [self.features(kind, m, "train") for m in range(2)]
            sa, sb = fit.variates(*test)
            r = sa.shape[1]
            corr = fit.test_correlations(*test)
            est = spectrum_stats(corr, self.k, r, null)
            n_t = sa.shape[0]
            gen = torch.Generator().manual_seed(st.seed * 1_000_003 + 2 * stream)
            draws = torch.multinomial(
                torch.full((n_t,), 1.0 / n_t, dtype=torch.float64),
                n_t * st.bootstrap,
                True,
                generator=gen,
            ).numpy()
            boot = []
            for b in range(st.bootstrap):
                idx = draws[b * n_t : (b + 1) * n_t]
                c = np.array([np.corrcoef(sa[idx, i], sb[idx, i])[0, 1] for i in range(r)])
                boot.append(spectrum_stats(c, self.k, r, null))
            order = torch.randperm(len(train[0]), generator=torch.Generator().manual_seed(0))
            folds = np.empty(len(train[0]), dtype=int)
            n = len(train[0])
            for f in range(st.folds):
                folds[order[round(f * n / st.folds) : round((f + 1) * n / st.folds)].numpy()] = f
            gen = torch.Generator().manual_seed(st.seed * 1_000_003 + 2 * stream + 1)
            refits = []
            significant = int((corr > null).sum())
            q = min(r, self.k if kind == "raw" else max(2 * significant, self.k + 1) + 10)
            for _ in range(st.refits):
                mult = np.bincount(
                    torch.randint(st.folds, (st.folds,), generator=gen).numpy(),
                    minlength=st.folds,
                )
                refit = CCA(*train, self.ridge, self.y["train"], mult[folds].astype(float))
                c = refit.test_correlations(*test)[:q]
                refits.append(spectrum_stats(c, self.k, r, null))
            z = norm.ppf(0.5 + 0.5 * st.level)
            names = ("mean_k",) if kind == "raw" else tuple(est)
            return {
                name: bracket(
                    name, est[name], [[b[name] for b in boot], [f[name] for f in refits]], z
                )
                for name in names
            }

        return self._cached(("intervals", kind), compute)

    def ncc_loo(self, space: str, m: int) -> float:
        """Leave-one-out NCC accuracy on the training split: each sample against class means
        recomputed without it (a class left empty cannot be predicted)."""
        h, y = self.features(space, m, "train"), self.y["train"]
        right = 0
        for n in range(len(h)):
            keep = np.arange(len(h)) != n
            best, pred = math.inf, None
            for c in range(self.num_classes):
                rows = keep & (y == c)
                if rows.any():
                    dist = float(((h[n] - h[rows].mean(0)) ** 2).sum())
                    if dist < best:
                        best, pred = dist, c
            right += pred == y[n]
        return right / len(h)

    # -- geometry and probes -------------------------------------------------------------
    def geometry(self, space: str, m: int, k: int | None = None) -> Geometry:
        return self._cached(
            ("geo", space, m, k),
            lambda: Geometry(
                self.features(space, m, "train", k), self.y["train"], self.num_classes
            ),
        )

    def ncc(self, space: str, m: int, split: str, k: int | None = None) -> np.ndarray:
        return self.geometry(space, m, k).ncc(self.features(space, m, split, k))

    def probe(self, kind: str, m: int, k: int | None = None) -> dict[str, np.ndarray]:
        def compute():
            train, test = probe(
                self.features(kind, m, "train", k),
                self.y["train"],
                self.features(kind, m, "test", k),
                self.y["test"],
                self.num_classes,
            )
            return {"train": train, "test": test}

        return self._cached(("probe", kind, m, k), compute)

    def accuracy(self, pred: np.ndarray, split: str) -> float:
        return float(np.mean(pred == self.y[split]))

    def _cached(self, key, compute):
        if key not in self._probes:
            self._probes[key] = compute()
        return self._probes[key]


def discriminating_pair(
    seed: int = 0,
    n: int = 487,
    n_test: int = 241,
    dims=(8, 10),
    k: int = 4,
    scale: float = 0.7,
    noise=(0.5, 1.0),
):
    """Two members built to tell plausible wrong formulas apart (float64 torch tensors).

    Both see the same latent (the simplex of ``k`` class means, scale 0.7 so classes overlap,
    plus three shared factors of decreasing strength) through different random maps, noise
    levels and dimensions (``d0 = 8``, ``d1 = 10``), and different monotone distortions
    (exp of member 0's first three columns, cube of member 1's columns 2–4), so: the k
    leading ρ are spread (min ≠ mean ≠ max), raw ≠ normal scores, m0 ≠ m1, train ≠ test
    accuracy, in-sample ≠ held out, and β_{k+1} is finite (I(T_K;X) ≠ I(X;Y)). The split
    sizes are primes, so a train accuracy cannot equal a test accuracy by accident.
    Returns ``((z0, z1), (z0_test, z1_test), y, y_test)``.
    """
    g = np.random.default_rng(seed)
    total = n + n_test
    y = g.permutation(np.arange(total) % k)
    centred = np.eye(k) - 1.0 / k
    u, _, _ = np.linalg.svd(centred)
    means = scale * centred @ u[:, : k - 1] * math.sqrt(k / (k - 1))
    factors = g.standard_normal((total, 3)) * np.array([1.0, 0.6, 0.3])
    latent = np.concatenate([means[y], factors], 1)
    zs = []
    for d, level in zip(dims, noise, strict=True):
        zs.append(
            latent @ g.standard_normal((latent.shape[1], d)) + level * g.standard_normal((total, d))
        )
    zs[0][:, :3] = np.exp(0.8 * zs[0][:, :3] / zs[0][:, :3].std(0))
    zs[1][:, 2:5] = zs[1][:, 2:5] ** 3
    t = [torch.from_numpy(z) for z in zs]
    return (
        (t[0][:n], t[1][:n]),
        (t[0][n:], t[1][n:]),
        torch.from_numpy(y[:n]),
        torch.from_numpy(y[n:]),
    )
