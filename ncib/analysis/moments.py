"""Class-centred second moments that stay right in the terminal phase (docs/math.md §9).

Near neural collapse a feature matrix is class means of norm ~10 plus within-class scatter
that may be 10⁻⁷ of the between-class variance or less. Centring by the global mean (as
:func:`ncib.analysis._linalg.covariance_blocks` does) leaves the between-class part in every
row, and float32 products of such rows lose the within-class part to rounding: canonical
correlations along within-class directions then come out as 1.0. Here every row is centred
by **its own class mean** first,

    c_n = x_n − s_{y_n}    (s_k: the class mean, rounded to the working dtype),

so the float32 products ``Σ c cᵀ`` are accurate relative to the within-class scale, and the
between-class part is added back exactly in float64 from K × d sums:

    Σ_n (x_n − μ)(x'_n − μ')ᵀ = Σ_n c_n c'_nᵀ + Σ_k [C_k D'_kᵀ + D_k C'_kᵀ + n_k D_k D'_kᵀ],

with ``C_k = Σ_{y_n = k} c_n`` (≈ 0, kept exactly), ``D_k = s_k − μ`` and
``μ = (Σ_k n_k s_k + C_k)/N`` (the law of total covariance, with no assumption that the shift
is the exact class mean). Cost: the same float32 products as a global shift, plus two
O(N·d) passes (class sums, shifts) and O(K·d²) for the correction.

**Folds.** Rows can be split into B folds (contiguous segments of a fixed random
permutation); the sums are then kept per fold, so the moments of any reweighting of the folds
(a bootstrap over folds, :mod:`ncib.analysis.intervals`) are assembled without another pass
over the data. Fold Gram matrices are accumulated in the working dtype (float32): B·d² values
per block (at d = 2,048 and B = 20, 336 MB per block).

**Resolution.** :attr:`MomentSums.resolution` is, per matrix, the smallest variance its
covariance can resolve: the float32 rounding of the products of centred values
(``eps·sqrt(rows per chunk)·max_j E[c_j²]``) plus the rounding of the features themselves
(``eps²·max_j max_k s_kj²``). :func:`ncib.analysis._linalg.cholesky_warnings` names the
directions below it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ._linalg import _chunk_rows, _tiled_gram, no_tf32
from .shards import Shard

__all__ = ["MomentSums", "class_centred_moments", "fold_assignment"]

_F64 = torch.float64


def fold_assignment(n: int, n_folds: int, device: torch.device | str = "cpu") -> Tensor:
    """``(n,)`` int64 row order whose B consecutive segments are the folds: a fixed random
    permutation (seed 0, so every analysis of the same rows uses the same folds)."""
    if isinstance(n_folds, bool) or int(n_folds) != n_folds or not 1 <= n_folds <= n:
        raise ValueError(f"n_folds={n_folds} must be an integer in [1, N={n}]")
    if n_folds == 1:
        return torch.arange(n, device=device)
    gen = torch.Generator().manual_seed(0)
    return torch.randperm(n, generator=gen).to(device)


@dataclass(frozen=True)
class MomentSums:
    """Sufficient statistics of row-aligned matrices about per-class shifts, per fold.

    Attributes:
        counts: ``(B, K)`` float64 rows of class k in fold f.
        shifts: per matrix ``(K, d_m)`` float64 class shifts s_k (values of the working dtype).
        class_sums: per matrix ``(B, K, d_m)`` float64 ``Σ c_n`` over fold f and class k.
        sq_sums: per matrix ``(B,)`` float64 ``Σ ‖c_n‖²`` over fold f.
        grams: ``{(i, j): (B_ij, d_i, d_j)}`` ``Σ c_in c_jnᵀ`` per fold (B_ij = B for the
            ``fold_pairs``, in the working dtype; B_ij = 1, all rows, in float64 otherwise).
        resolution: per matrix, the smallest variance the covariance resolves (see module).
    """

    counts: Tensor
    shifts: list[Tensor]
    class_sums: list[Tensor]
    sq_sums: list[Tensor]
    grams: dict[tuple[int, int], Tensor]
    resolution: list[float]

    @property
    def n_folds(self) -> int:
        return self.counts.shape[0]

    def _weights(self, weights: Tensor | None) -> Tensor:
        if weights is None:
            return torch.ones(self.n_folds, dtype=_F64, device=self.counts.device)
        w = torch.as_tensor(weights, dtype=_F64, device=self.counts.device)
        if w.shape != (self.n_folds,) or bool((w < 0).any()) or not float(w.sum()) > 0:
            raise ValueError(f"fold weights must be {self.n_folds} values >= 0, not all 0")
        return w

    def moments(
        self, weights: Tensor | None = None
    ) -> tuple[list[Tensor], dict[tuple[int, int], Tensor], list[float]]:
        """Means, covariance blocks (divisor N) and within-class traces tr(Σ_W) of the rows
        weighted by fold (``weights (B,)``: a fold's multiplicity; default all 1 = the data).

        Returns ``(means, blocks, within_traces)``, float64. With ``weights``, only the blocks
        kept per fold are returned."""
        w = self._weights(weights)
        counts = w @ self.counts  # (K,)
        n = float(counts.sum())
        csum = [torch.einsum("f,fkd->kd", w, c) for c in self.class_sums]
        means = [(counts @ s + c.sum(0)) / n for s, c in zip(self.shifts, csum, strict=True)]
        dev = [s - mu for s, mu in zip(self.shifts, means, strict=True)]  # D_k
        blocks = {}
        for (i, j), g in self.grams.items():
            if g.shape[0] != self.n_folds:  # a block kept for all rows only
                if weights is not None:
                    continue
                gram = g[0]
            else:  # fold by fold: no float64 copy of all B fold Grams at once
                gram = torch.zeros(g.shape[1:], dtype=_F64, device=g.device)
                for f in w.nonzero().flatten().tolist():
                    gram.add_(g[f].to(_F64), alpha=float(w[f]))
            corr = csum[i].T @ dev[j] + dev[i].T @ csum[j] + (dev[i].T * counts) @ dev[j]
            blocks[(i, j)] = (gram + corr) / n
        present = counts > 0
        within = []
        for c, sq in zip(csum, self.sq_sums, strict=True):
            between = (c[present].square().sum(1) / counts[present]).sum()
            within.append(max(float((w @ sq - between) / n), 0.0))
        return means, blocks, within


def class_centred_moments(
    mats: Sequence[Tensor],
    pairs: Sequence[tuple[int, int]],
    labels: Tensor,
    num_classes: int,
    n_folds: int = 1,
    fold_pairs: Sequence[tuple[int, int]] | None = None,
    shard: Shard | None = None,
) -> MomentSums:
    """:class:`MomentSums` of row-aligned matrices ``(N, d_m)`` (validated, one device) with
    ``labels (N,)`` in ``[0, num_classes)`` over ``n_folds`` folds (:func:`fold_assignment`).

    ``pairs`` are the blocks ``(i, j)`` to form; ``fold_pairs`` (default: all of them, when
    there are several folds) those kept per fold. Products run in float32 unless every input
    is float64; a block kept for all rows is accumulated in float64, one kept per fold in the
    working dtype per fold (see the module docstring).

    With a ``shard`` (:class:`ncib.analysis.shards.Shard`) the matrices and labels are this
    rank's rows ``shard.rows`` of an N = ``shard.total``-row split: the folds are those of the
    whole split, every sum is formed on the shard and summed over the ranks, and every rank
    returns the sums of the whole split."""
    dev = mats[0].device
    wdt = _F64 if all(m.dtype == _F64 for m in mats) else torch.float32
    eps = torch.finfo(wdt).eps
    n = mats[0].shape[0] if shard is None else int(shard.total)
    order = fold_assignment(n, n_folds, dev)
    bounds = [round(f * n / n_folds) for f in range(n_folds + 1)]
    if shard is not None:  # this rank's rows, in the order of the folds of the whole split
        local = torch.full((n,), -1, dtype=torch.int64, device=dev)
        local[shard.rows.to(dev)] = torch.arange(len(shard.rows), device=dev)
        mapped = local[order]
        kept = (mapped >= 0).to(torch.int64).cumsum(0)
        bounds = [0] + [int(kept[b - 1]) if b else 0 for b in bounds[1:]]
        order = mapped[mapped >= 0]
        del local, mapped, kept
    labels = labels.to(dev)
    k_cls = int(num_classes)
    needed = sorted({i for p in pairs for i in p} | set(range(len(mats))))
    step = _chunk_rows([m.shape[1] for m in mats], 8 if wdt == _F64 else 4)
    with no_tf32():
        counts = torch.zeros(n_folds, k_cls, dtype=_F64, device=dev)
        for f in range(n_folds):
            rows = order[bounds[f] : bounds[f + 1]]
            counts[f] = torch.bincount(labels[rows], minlength=k_cls).to(_F64)
        if shard is not None:
            shard.sum_(counts)
        total = counts.sum(0).clamp_min(1.0)
        shifts, shift_w = [], []
        rows_here = mats[0].shape[0]
        for i in needed:  # exact class means in float64, rounded to the working dtype
            sums = torch.zeros(k_cls, mats[i].shape[1], dtype=_F64, device=dev)
            for start in range(0, rows_here, step):
                sl = slice(start, min(rows_here, start + step))
                sums.index_add_(0, labels[sl], mats[i][sl].to(_F64))
            if shard is not None:
                shard.sum_(sums)
            shift_w.append((sums / total[:, None]).to(wdt))
            shifts.append(shift_w[-1].to(_F64))
        class_sums = [
            torch.zeros(n_folds, k_cls, mats[i].shape[1], dtype=_F64, device=dev) for i in needed
        ]
        sq_sums = [torch.zeros(n_folds, dtype=_F64, device=dev) for _ in needed]
        col_sq = [torch.zeros(mats[i].shape[1], dtype=_F64, device=dev) for i in needed]
        per_fold = set(pairs if fold_pairs is None else fold_pairs) if n_folds > 1 else set()
        grams = {
            (i, j): torch.zeros(
                n_folds if (i, j) in per_fold else 1,
                mats[i].shape[1],
                mats[j].shape[1],
                dtype=wdt if (i, j) in per_fold else _F64,
                device=dev,
            )
            for i, j in pairs
        }
        buf = {
            sh: torch.empty(sh, dtype=wdt, device=dev)
            for sh in {g.shape[1:] for g in grams.values()}
        }
        for f in range(n_folds):
            for start in range(bounds[f], bounds[f + 1], step):
                rows = order[start : min(bounds[f + 1], start + step)]
                y = labels[rows]
                cen = {}
                for slot, i in enumerate(needed):
                    c = mats[i].index_select(0, rows).to(wdt) - shift_w[slot].index_select(0, y)
                    cen[i] = c
                    c64 = c.to(_F64)
                    class_sums[slot][f].index_add_(0, y, c64)
                    sq = c64.square().sum(0)
                    col_sq[slot] += sq
                    sq_sums[slot][f] += sq.sum()
                for i, j in pairs:
                    out = buf[grams[(i, j)].shape[1:]]
                    if i == j:
                        _tiled_gram(cen[i], out)
                    else:
                        torch.mm(cen[i].T, cen[j], out=out)
                    g = grams[(i, j)]
                    g[f if g.shape[0] > 1 else 0] += out
    if shard is not None:  # the shards' sums (a float32 fold Gram is summed in float32)
        for t in [*class_sums, *sq_sums, *col_sq, *grams.values()]:
            shard.sum_(t)
    resolution = []
    for slot, _ in enumerate(needed):
        mean_sq = float(col_sq[slot].max()) / n if col_sq[slot].numel() else 0.0  # max E[c_j²]
        scale = float(shifts[slot].abs().max()) if shifts[slot].numel() else 0.0
        resolution.append(eps * math.sqrt(step) * mean_sq + (eps * scale) ** 2)
    return MomentSums(
        counts=counts,
        shifts=shifts,
        class_sums=class_sums,
        sq_sums=sq_sums,
        grams=grams,
        resolution=resolution,
    )
