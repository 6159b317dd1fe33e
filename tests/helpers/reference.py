"""A slow, obviously-correct numpy/scipy reference of one analysis epoch (docs/math.md §2–§7, §11).

It shares no code with :mod:`ncib.analysis` except the analysis probe (a fitted optimiser, taken
from :func:`ncib.analysis.fit_logistic_probe` on the reference's own features): normal scores
from ``scipy.stats.rankdata``, CCA by symmetric inverse square roots (eigh) instead of Cholesky,
the Gaussian information of T_K from log-determinants of covariance matrices instead of the
closed form, class means by boolean masks, NC1 with ``numpy.linalg.pinv``, NCC by explicit
distances. Everything is float64 numpy; results are plain floats and arrays.
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


def _ridged(s: np.ndarray, ridge: float) -> np.ndarray:
    return s + ridge * np.trace(s) / s.shape[0] * np.eye(s.shape[0])


def _inv_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(s)
    return (v / np.sqrt(w)) @ v.T


class CCA:
    """CCA of ``a (N, d_a)``, ``b (N, d_b)``: ρ descending and directions with
    ``W_aᵀ Σ_aa W_a = I`` (ridged Σ: ``Σ + ε·tr(Σ)/d·I``)."""

    def __init__(self, a: np.ndarray, b: np.ndarray, ridge: float):
        self.mean_a, self.mean_b = a.mean(0), b.mean(0)
        self.s_aa, self.s_bb = _ridged(_cov(a, a), ridge), _ridged(_cov(b, b), ridge)
        self.s_ab = _cov(a, b)
        ia, ib = _inv_sqrt(self.s_aa), _inv_sqrt(self.s_bb)
        u, s, vt = np.linalg.svd(ia @ self.s_ab @ ib)
        r = min(a.shape[1], b.shape[1])
        self.rho = np.clip(s[:r], 0.0, 1.0)
        self.w_a, self.w_b = ia @ u[:, :r], ib @ vt[:r].T

    def test_correlations(self, a_test: np.ndarray, b_test: np.ndarray) -> np.ndarray:
        """Pearson correlation on the test rows of each pair of train-fitted variates."""
        sa = (a_test - self.mean_a) @ self.w_a
        sb = (b_test - self.mean_b) @ self.w_b
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
    """The β of T_K: just below β_{k+1}, or 2·β_k when there is no finite β_{k+1}."""
    if k < len(crit) and math.isfinite(crit[k]):
        return crit[k] * (1.0 - 1e-6)
    return 2.0 * crit[k - 1]


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
    """

    def __init__(self, train, test, y, y_test, num_classes, k=None, ridge=1e-6):
        self.raw = {
            "train": [np.asarray(z, float) for z in train],
            "test": [np.asarray(z, float) for z in test],
        }
        self.y = {"train": np.asarray(y), "test": np.asarray(y_test)}
        self.num_classes, self.k, self.ridge = num_classes, k or num_classes, ridge
        self._probes: dict = {}

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
                self.features(kind, 0, "train"), self.features(kind, 1, "train"), self.ridge
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
        return CCA(self.raw["train"][m], self.normal[m][0], self.ridge).rho

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

    def tk(self, m: int, k: int) -> dict:
        """T_k of member m: rows α_i v_iᵀ (v: the canonical directions of X = member m's normal
        scores, α_i = sqrt((β(1−λ_i) − 1)/(λ_i v_iᵀ Σ_x v_i)) at the β of T_k), its features, and
        I(T;X), I(T;Y) from covariances: T = A X + ξ, ξ ~ N(0, I)."""

        def compute():
            fit = self.cca("normal")
            v = fit.w_a if m == 0 else fit.w_b
            s_x, s_y = (fit.s_aa, fit.s_bb) if m == 0 else (fit.s_bb, fit.s_aa)
            s_xy = fit.s_ab if m == 0 else fit.s_ab.T
            beta = beta_of_tk(self.beta_crit, k)
            r = np.einsum("ji,jk,ki->i", v[:, :k], s_x, v[:, :k])
            lam = self.lam[:k]
            alpha = np.sqrt(np.clip(beta * (1.0 - lam) - 1.0, 0, None) / (lam * r))
            a = alpha[:, None] * v[:, :k].T  # (k, d_x)
            mean = self.normal[m][0].mean(0)
            x_given_y = s_x - s_xy @ np.linalg.solve(s_y, s_xy.T)
            eye = np.eye(k)
            i_tx = 0.5 * np.linalg.slogdet(a @ s_x @ a.T + eye)[1]
            i_ty = i_tx - 0.5 * np.linalg.slogdet(a @ x_given_y @ a.T + eye)[1]
            return {
                "beta": beta,
                "alpha": alpha,
                "scaling": alpha / alpha.mean(),
                "i_tx": float(i_tx),
                "i_ty": float(i_ty),
                "features": {
                    s: (self.normal[m][s == "test"] - mean) @ a.T for s in ("train", "test")
                },
            }

        return self._cached(("tk", m, k), compute)

    @cached_property
    def heldout_rho(self) -> np.ndarray:
        """Held-out ρ̃ = max(c, 0) of all pairs of the normal CCA, descending."""
        fit = self.cca("normal")
        c = fit.test_correlations(*(self.features("normal", m, "test") for m in range(2)))
        return np.sort(np.clip(c, 0.0, 1.0))[::-1]

    def information_grid(self) -> np.ndarray:
        """The record's β grid: 256 log-spaced β in [1, 10·β_{k+1}] (β_K's successor among the
        finite β_i, docs/math.md §5.2)."""
        finite = self.beta_crit[np.isfinite(self.beta_crit)]
        top = finite[min(self.k, len(finite) - 1)]
        return np.logspace(0.0, math.log10(10.0 * max(top, 1.0)), 256)

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
