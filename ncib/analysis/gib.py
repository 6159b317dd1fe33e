"""Gaussian information bottleneck between two members (Chechik et al. 2005; docs/math.md §5).

For jointly Gaussian X, Y the optimal compression ``T = A X + ξ``, ``ξ ~ N(0, I)`` of
``min I(X;T) − β I(T;Y)`` (paper eq. 2, Theorem 2.4) has rows ``α_i v_iᵀ`` where ``v_i`` are
the left eigenvectors of ``Σ_{x|y} Σ_x⁻¹`` (``Σ_{x|y} = Σ_x − Σ_xy Σ_y⁻¹ Σ_yx``) with eigenvalues
``λ_i`` ascending, ``β_i = 1/(1−λ_i)`` are the critical β, ``r_i = v_iᵀ Σ_x v_i`` and
``α_i = sqrt((β(1−λ_i) − 1)/(λ_i r_i))`` for β > β_i, else 0.

Solved stably through CCA: with ``Σ_x = L Lᵀ`` and ``L⁻¹ Σ_xy Σ_y^{-ᵀ/2} = U diag(ρ) Vᵀ``,
``Σ_{x|y} Σ_x⁻¹ = L (I − U diag(ρ²) Uᵀ) L⁻¹``, so ``λ_i = 1 − ρ_i²`` and ``v_i = L⁻ᵀ u_i`` — the
canonical directions of X (:mod:`ncib.analysis.cca`); the same ridge regularises both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from ._checks import WarningLog, check_matrix
from ._linalg import no_tf32, row_chunks, work_dtype
from .cca import CCAResult, CovarianceBlocks, cca_from_covariance, cross_covariance

__all__ = [
    "GIBResult",
    "IBRepresentation",
    "InformationCurve",
    "gaussian_ib",
    "gib_from_cca",
    "gib_from_covariance",
    "ib_representation",
]


@dataclass(frozen=True)
class InformationCurve:
    """``I(T;X)`` and ``I(T;Y)`` (nats) of the optimal T along ``beta (M,)``; ``i_xy = I(X;Y)``."""

    beta: Tensor
    i_tx: Tensor
    i_ty: Tensor
    i_xy: Tensor


@dataclass(frozen=True)
class IBRepresentation:
    """The K-dimensional GIB representation ``T_K`` (noise-free mean ``A (x − μ_x)``).

    Attributes:
        k: dimension; beta: the β used (0-dim), chosen so exactly the first k transitions
            are active (see :meth:`GIBResult.beta_for_k`).
        matrix: ``(k, d_x)`` rows ``α_i v_iᵀ``; mean: ``(d_x,)`` training mean of X.
        alphas: ``(k,)``; feature_scaling: ``(k,)`` ``α_i / mean_{i≤k} α_j`` (paper Fig. 4B/C).
        features: ``(N, k)`` the representation of the X it was built for, or None.
        warnings: diagnostics (tied or missing transitions, and those of the GIB).
    """

    k: int
    beta: Tensor
    matrix: Tensor
    mean: Tensor
    alphas: Tensor
    feature_scaling: Tensor
    features: Tensor | None = None
    warnings: tuple[str, ...] = ()

    def transform(self, x: Tensor) -> Tensor:
        """Map features ``x (N', d_x)`` to ``(N', k)``: ``(x − μ_x) Aᵀ`` in x's working dtype."""
        with no_tf32():
            check_matrix("x", x)
            if x.shape[1] != self.matrix.shape[1]:
                raise ValueError(
                    f"x has {x.shape[1]} columns, the projection expects {self.matrix.shape[1]}"
                )
            dt = work_dtype(x)
            mean, proj = self.mean.to(dt), self.matrix.T.to(dt)
            out = torch.empty(x.shape[0], proj.shape[1], dtype=dt, device=x.device)
            for sl in row_chunks(*x.shape):  # centring copies of bounded size
                out[sl] = (x[sl].to(dt) - mean) @ proj
            return out


def _as_betas(beta: float | Sequence[float] | Tensor, like: Tensor) -> Tensor:
    return torch.as_tensor(beta, dtype=torch.float64).to(like.device).reshape(-1)


@dataclass(frozen=True)
class GIBResult:
    """Solution of the Gaussian IB of X with respect to Y for all β (float64).

    Attributes:
        lam: ``(r,)`` eigenvalues ``λ_i`` of ``Σ_{x|y} Σ_x⁻¹``, ascending, clamped to [eps, 1].
        v: ``(d_x, r)`` left eigenvectors ``v_i`` as columns (the canonical directions of X).
        r: ``(r,)`` ``r_i = v_iᵀ Σ_x v_i`` (Σ_x regularised like the CCA; 1 up to rounding).
        beta_crit: ``(r,)`` critical ``β_i = 1/(1−λ_i)`` (inf where λ_i = 1).
        mean_x: ``(d_x,)`` the mean of X used for centring.
        warnings: diagnostics (clamped eigenvalues, and those of the covariance/CCA).
    """

    lam: Tensor
    v: Tensor
    r: Tensor
    beta_crit: Tensor
    mean_x: Tensor
    warnings: tuple[str, ...] = ()

    def alphas(self, beta: float) -> Tensor:
        """``(r,)`` ``α_i(β)``: zero unless β > β_i."""
        b = float(beta)
        active = b > self.beta_crit
        num = (b * (1.0 - self.lam) - 1.0).clamp_min(0.0)
        return torch.where(active, (num / (self.lam * self.r)).sqrt(), 0.0)

    def n_active(self, beta: float) -> int:
        """Number of phase transitions below β (nonzero rows of :meth:`projection`)."""
        return int((float(beta) > self.beta_crit).sum())

    def projection(self, beta: float) -> Tensor:
        """``(r, d_x)`` matrix A with row i = ``α_i(β) v_iᵀ``; ``T = A x + ξ``, ``ξ ~ N(0, I)``."""
        return self.alphas(beta)[:, None] * self.v.T

    def mutual_information(self) -> Tensor:
        """``I(X;Y) = −½ Σ_i log λ_i`` (nats), 0-dim."""
        return -0.5 * self.lam.log().sum()

    def information_curve(self, betas: float | Sequence[float] | Tensor) -> InformationCurve:
        """``I(T;X) = ½ Σ_{β>β_i} log((β−1)(1−λ_i)/λ_i)``, ``I(T;Y) = I(T;X) − ½ Σ log(β(1−λ_i))``."""
        b = _as_betas(betas, self.lam)[:, None]
        active = b > self.beta_crit[None, :]
        one_minus = 1.0 - self.lam[None, :]
        # inactive terms (whose logs may be of numbers <= 0) are replaced by 0, not summed
        t_x = torch.where(active, ((b - 1.0) * one_minus / self.lam).log(), 0.0)
        t_y = torch.where(active, (b * one_minus).log(), 0.0)
        i_tx = 0.5 * t_x.sum(1)
        return InformationCurve(b[:, 0], i_tx, i_tx - 0.5 * t_y.sum(1), self.mutual_information())

    def beta_for_k(self, k: int) -> tuple[float, tuple[str, ...]]:
        """A β with exactly the first k transitions active, and the warnings of the choice.

        ``β = β_{k+1}(1 − 1e-6)`` (or the midpoint of ``β_k, β_{k+1}`` if that is not above
        ``β_k``); ``β = 2 β_k`` when there is no finite ``β_{k+1}`` (k = r or λ_{k+1} = 1).
        If ``β_k = β_{k+1}`` (tied eigenvalues, or adjacent floats with no float between them)
        no β activates exactly k transitions: a warning is recorded and ``β = β_k (1 + 1e-6)``
        is used; :meth:`representation` then keeps the first k rows (the order within the tie is
        the SVD's). If fewer than k transitions are finite, ``β = 2 β_last`` (the last finite
        one; ``β = 1``, nothing active, if none is) and the remaining rows are zero (warning).
        """
        n = self.lam.shape[0]
        if isinstance(k, bool) or int(k) != k or not 1 <= k <= n:
            raise ValueError(
                f"k={k} is out of range: k must be an integer with 1 <= k <= {n} "
                "(the number of GIB eigenvalues, min(d_x, d_y))"
            )
        log = WarningLog("gib.beta_for_k")
        crit = [float(c) for c in self.beta_crit[: k + 1].cpu()]
        finite = [c for c in crit[:k] if math.isfinite(c)]
        if len(finite) < k:
            log.warn(
                f"only {len(finite)} of the first k={k} GIB eigenvalues are below 1 (X and Y "
                "are uncorrelated along the others); those rows of T_K are zero"
            )
            return (2.0 * finite[-1] if finite else 1.0), log.as_tuple()
        b_k = crit[k - 1]
        b_next = crit[k] if k < n else math.inf
        if not math.isfinite(b_next):
            return 2.0 * b_k, log.as_tuple()
        beta = b_next * (1.0 - 1e-6)
        if beta <= b_k:  # β_k and β_{k+1} closer than 1e-6 (relative), or tied
            beta = 0.5 * (b_k + b_next)
        if b_k < beta < b_next:
            return beta, log.as_tuple()
        log.warn(
            f"β_{k} = β_{k + 1} = {b_k:.6g} (tied GIB eigenvalues): no β activates exactly "
            f"k={k} transitions; using β = β_{k}·(1+1e-6) and the first k rows"
        )
        return b_k * (1.0 + 1e-6), log.as_tuple()

    def representation(self, k: int) -> IBRepresentation:
        """The K-dim representation T_K (matrix and mean; ``features`` left None)."""
        beta, notes = self.beta_for_k(k)
        alphas = self.alphas(beta)[:k]
        mean_alpha = alphas.mean()
        scaling = alphas / mean_alpha if float(mean_alpha) > 0 else torch.zeros_like(alphas)
        return IBRepresentation(
            k=int(k),
            beta=torch.tensor(beta, dtype=torch.float64, device=self.lam.device),
            matrix=alphas[:, None] * self.v[:, :k].T,
            mean=self.mean_x,
            alphas=alphas,
            feature_scaling=scaling,
            warnings=tuple(dict.fromkeys((*self.warnings, *notes))),  # in order, once each
        )

    def feature_scaling(self, k: int) -> Tensor:
        """``(k,)`` ``α_i / mean_{i≤k} α_j`` at the β of T_K (paper Fig. 4B/C)."""
        return self.representation(k).feature_scaling


def gib_from_cca(cca: CCAResult) -> GIBResult:
    """GIB of X = the "a" side of ``cca`` w.r.t. Y = the "b" side (use ``cca.swapped()``
    for the other direction). ``λ_i = (1−ρ_i)(1+ρ_i)``, ``v_i = W_a[:, i]``."""
    with no_tf32():
        log = WarningLog("gaussian_ib")
        log.extend(cca.warnings)
        lam = (1.0 - cca.rho) * (1.0 + cca.rho)
        eps = torch.finfo(torch.float64).eps
        if bool((lam < eps).any()):
            log.warn(
                f"{int((lam < eps).sum())} GIB eigenvalues below {eps:.1e} (X and Y almost "
                "deterministically related) clamped so that the logs stay finite"
            )
        lam = lam.clamp(eps, 1.0)
        v = cca.directions_a
        r = (cca.chol_a.T @ v).square().sum(0)  # v_iᵀ (L Lᵀ) v_i
        beta_crit = 1.0 / (1.0 - lam)
        return GIBResult(lam, v, r, beta_crit, cca.mean_a, log.as_tuple())


def gib_from_covariance(cov: CovarianceBlocks, ridge: float = 1e-6) -> GIBResult:
    """GIB from precomputed covariance blocks (X = a side, Y = b side)."""
    return gib_from_cca(cca_from_covariance(cov, ridge))


def gaussian_ib(x: Tensor, y: Tensor, ridge: float = 1e-6) -> GIBResult:
    """Gaussian IB compressing ``x (N, d_x)`` with respect to ``y (N, d_y)`` (Chechik et al. 2005).

    In the paper X and Y are the normal scores of the two members (meta-Gaussian IB).
    """
    return gib_from_covariance(cross_covariance(x, y), ridge)


def ib_representation(
    x: Tensor, k: int, gib: GIBResult | None = None, y: Tensor | None = None, ridge: float = 1e-6
) -> IBRepresentation:
    """T_K of ``x (N, d_x)``: ``features (N, k)`` plus the matrix and mean for :meth:`transform`.

    Pass the :class:`GIBResult` of x w.r.t. its partner, or the partner ``y (N, d_y)`` to
    compute it. The representation is the noise-free mean ``A (x − μ_x)`` of ``T = A x + ξ``.
    """
    check_matrix("x", x)
    if gib is None:
        if y is None:
            raise ValueError("ib_representation needs either gib=GIBResult or the partner y")
        gib = gaussian_ib(x, y, ridge)
    rep = gib.representation(k)
    return replace(rep, features=rep.transform(x))
