"""Simplex ETF geometry and neural collapse of class means (docs/math.md §6; Papyan et al. 2020).

For features ``H (N, d)`` with labels ``y``: class means ``μ_k``, global mean ``μ_G`` = the mean
of the class means (not the sample mean), ``M_k = μ_k − μ_G``. Equinorm
``std_k‖M_k‖ / mean_k‖M_k‖``; equiangularity from the cosines ``cos_kk′`` over k ≠ k′ (target
``−1/(K−1)``, paper Fig. 3); NC1 ``= tr(Σ_W Σ_B⁺)/K`` with
``Σ_W = (1/N) Σ_i (h_i − μ_{y_i})(h_i − μ_{y_i})ᵀ`` and ``Σ_B = (1/K) Σ_k M_k M_kᵀ``; NC4 compares
the nearest-class-centre (NCC) rule with a classifier.

Classes absent from the given labels are left out (K counts present classes) with a warning.
Standard deviations are population statistics (``unbiased=False``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ._checks import WarningLog, check_labels, check_matrix
from ._linalg import no_tf32, row_chunks, work_dtype
from .shards import Shard

__all__ = [
    "ClassMeans",
    "ETFStats",
    "NC1Result",
    "class_means",
    "nc1",
    "nc4_agreement",
    "ncc_predict",
    "simplex_etf_stats",
]


@dataclass(frozen=True)
class ClassMeans:
    """Class means of features (float64).

    Attributes:
        means: ``(K, d)`` class means (rows of absent classes are zero).
        counts: ``(K,)`` samples per class; present: ``(K,)`` bool, counts > 0.
        global_mean: ``(d,)`` mean of the present class means, μ_G.
        warnings: e.g. classes absent from the labels.
    """

    means: Tensor
    counts: Tensor
    present: Tensor
    global_mean: Tensor
    warnings: tuple[str, ...] = ()

    @property
    def centred(self) -> Tensor:
        """``(K_present, d)`` ``M_k = μ_k − μ_G`` of the present classes."""
        return self.means[self.present] - self.global_mean


def class_means(h: Tensor, y: Tensor, num_classes: int, shard: Shard | None = None) -> ClassMeans:
    """Class means of ``h (N, d)`` for labels ``y (N,)`` in ``[0, num_classes)``.

    One pass over row chunks: one-hot products in the working dtype, accumulated in float64.
    With a ``shard`` (:class:`ncib.analysis.shards.Shard`), ``h`` and ``y`` are this rank's rows
    and the class sums and counts are summed over the ranks. Raises ValueError when fewer than
    two classes are present.
    """
    with no_tf32():
        check_matrix("h", h, min_rows=0 if shard is not None else 1)
        y = check_labels("y", y, h.shape[0], num_classes).to(h.device)
        log = WarningLog("class_means")
        dt = work_dtype(h)
        sums = torch.zeros(num_classes, h.shape[1], dtype=torch.float64, device=h.device)
        for sl in row_chunks(h.shape[0], h.shape[1]):
            onehot = torch.nn.functional.one_hot(y[sl], num_classes).to(dt)
            sums += (onehot.T @ h[sl].to(dt)).to(torch.float64)
        counts = torch.bincount(y, minlength=num_classes)
        if shard is not None:
            shard.sum_(sums)
            counts = shard.sum_(counts.to(torch.float64)).round().to(torch.int64)
        present = counts > 0
        n_present = int(present.sum())
        if n_present < 2:
            raise ValueError(
                f"only {n_present} of num_classes={num_classes} classes occur in the labels; "
                "class-mean geometry needs at least two"
            )
        if not bool(torch.isfinite(sums).all()):
            raise ValueError("h contains NaN or inf; class means need finite features")
        if n_present < num_classes:
            missing = torch.nonzero(~present).flatten().tolist()
            shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
            log.warn(
                f"{num_classes - n_present} of {num_classes} classes have no samples ({shown}); "
                f"statistics use the {n_present} present classes"
            )
        means = sums / counts.clamp_min(1).to(torch.float64)[:, None]
        return ClassMeans(means, counts, present, means[present].mean(0), log.as_tuple())


@dataclass(frozen=True)
class ETFStats:
    """Simplex-ETF statistics of the centred class means (0-dim float64 tensors).

    Attributes:
        equinorm: ``std_k‖M_k‖ / mean_k‖M_k‖`` (0 for an ETF).
        cos_mean, cos_std: mean and std of ``cos_kk′`` over k ≠ k′ (ETF: ``−1/(K−1)``, 0).
        angle_std_deg: std of the pairwise angles in degrees.
        cos_dev: ``mean_{k≠k′} |cos_kk′ + 1/(K−1)|``.
        norms: ``(K,)`` ``‖M_k‖``; cosines: ``(K, K)`` (present classes only).
        num_classes: K, the number of present classes; warnings.
    """

    equinorm: Tensor
    cos_mean: Tensor
    cos_std: Tensor
    angle_std_deg: Tensor
    cos_dev: Tensor
    norms: Tensor
    cosines: Tensor
    num_classes: int
    warnings: tuple[str, ...] = ()


def simplex_etf_stats(
    h: Tensor, y: Tensor, num_classes: int, means: ClassMeans | None = None
) -> ETFStats:
    """Equinorm and equiangularity of the class means of ``h (N, d)`` (paper Fig. 3B–D)."""
    cm = means if means is not None else class_means(h, y, num_classes)
    log = WarningLog("simplex_etf_stats")
    log.extend(cm.warnings)
    m = cm.centred
    k = m.shape[0]
    norms = m.norm(dim=1)
    tiny = torch.finfo(torch.float64).tiny
    if bool((norms <= tiny).any()):
        log.warn("some class means coincide with the global mean; their cosines are taken as 0")
    unit = m / norms.clamp_min(tiny)[:, None]
    cos = (unit @ unit.T).clamp(-1.0, 1.0)
    off = ~torch.eye(k, dtype=torch.bool, device=cos.device)
    pairs = cos[off]
    angles = torch.rad2deg(torch.arccos(pairs))
    return ETFStats(
        equinorm=norms.std(unbiased=False) / norms.mean().clamp_min(tiny),
        cos_mean=pairs.mean(),
        cos_std=pairs.std(unbiased=False),
        angle_std_deg=angles.std(unbiased=False),
        cos_dev=(pairs + 1.0 / (k - 1)).abs().mean(),
        norms=norms,
        cosines=cos,
        num_classes=k,
        warnings=log.as_tuple(),
    )


@dataclass(frozen=True)
class NC1Result:
    """``value = tr(Σ_W Σ_B⁺)/K`` (0-dim float64), ``rank_b`` = rank kept for Σ_B⁺, warnings."""

    value: Tensor
    rank_b: int
    warnings: tuple[str, ...] = ()


def nc1(
    h: Tensor,
    y: Tensor,
    num_classes: int,
    means: ClassMeans | None = None,
    rtol: float | None = None,
    shard: Shard | None = None,
) -> NC1Result:
    """Within-class variability collapse NC1 = ``tr(Σ_W Σ_B⁺)/K`` of ``h (N, d)``.

    ``Σ_B`` has rank ≤ K−1: with the SVD ``M = P S Qᵀ`` of the ``(K, d)`` centred class means,
    ``Σ_B⁺ = Q diag(K/s_j²) Qᵀ`` over the ``s_j² > rtol·s_1²`` (default ``rtol = max(K, d)·eps``, as
    ``torch.linalg.pinv``), so ``tr(Σ_W Σ_B⁺) = Σ_j (K/s_j²)(1/N) Σ_i ((h_i − μ_{y_i})·q_j)²``:
    residuals are projected onto ≤ K−1 directions chunk by chunk; no d×d matrix is formed.
    With a ``shard``, ``h`` and ``y`` are this rank's rows and the sums are over all ranks.
    """
    with no_tf32():
        cm = means if means is not None else class_means(h, y, num_classes, shard)
        y = check_labels("y", y, h.shape[0], num_classes).to(h.device)
        log = WarningLog("nc1")
        log.extend(cm.warnings)
        m = cm.centred
        k = m.shape[0]
        _, s, qh = torch.linalg.svd(m, full_matrices=False)
        tol = (max(k, h.shape[1]) * torch.finfo(torch.float64).eps) if rtol is None else rtol
        keep = (
            s.square() > tol * s[0].square()
            if float(s[0]) > 0
            else torch.zeros_like(s, dtype=torch.bool)
        )
        rank = int(keep.sum())
        if rank == 0:
            log.warn("all class means coincide: Σ_B = 0, NC1 is undefined and reported as inf")
            return NC1Result(torch.tensor(math.inf, dtype=torch.float64), 0, log.as_tuple())
        dt = work_dtype(h)
        q = qh[keep].T.to(dt)  # (d, rank)
        mu = cm.means.to(dt)
        sq = torch.zeros(rank, dtype=torch.float64, device=h.device)
        for sl in row_chunks(h.shape[0], h.shape[1]):
            resid = h[sl].to(dt) - mu[y[sl]]
            sq += (resid @ q).to(torch.float64).square().sum(0)
        n = h.shape[0] if shard is None else shard.total
        if shard is not None:
            shard.sum_(sq)
        within = sq / n  # q_jᵀ Σ_W q_j
        eig_b = s[keep].square() / k  # eigenvalues of Σ_B
        return NC1Result((within / eig_b).sum() / k, rank, log.as_tuple())


def ncc_predict(
    h_train: Tensor,
    y_train: Tensor,
    h: Tensor,
    num_classes: int | None = None,
    means: ClassMeans | None = None,
) -> Tensor:
    """Nearest-class-centre predictions ``(N,)`` (Euclidean) for ``h (N, d)``.

    Class centres are the means of ``h_train (N_train, d)`` by ``y_train``; classes absent from
    the training labels are never predicted.
    """
    with no_tf32():
        check_matrix("h", h, min_rows=0)  # a rank's shard of a split may be empty
        if h.shape[1] != h_train.shape[1]:
            raise ValueError(f"h has {h.shape[1]} columns but h_train has {h_train.shape[1]}")
        if num_classes is None:
            num_classes = int(y_train.max()) + 1
        cm = means if means is not None else class_means(h_train, y_train, num_classes)
        dt = work_dtype(h)
        mu = cm.means.to(dt)
        # argmin ‖h − μ_k‖² = argmax h·μ_k − ½‖μ_k‖²
        bias = torch.where(cm.present, -0.5 * cm.means.square().sum(1), -math.inf).to(dt)
        preds = [(h[sl].to(dt) @ mu.T + bias).argmax(1) for sl in row_chunks(*h.shape)]
        return torch.cat(preds) if preds else torch.empty(0, dtype=torch.int64, device=h.device)


def ncc_loo_accuracy(
    h: Tensor,
    y: Tensor,
    num_classes: int | None = None,
    means: ClassMeans | None = None,
    shard: Shard | None = None,
) -> Tensor:
    """Leave-one-out nearest-class-centre accuracy of ``h (N, d)`` with labels ``y (N,)``, 0-dim.

    Each sample is classified with its own class centre computed **without it**,
    ``μ_k^(−n) = (n_k μ_k − h_n)/(n_k − 1)``, so ``‖h_n − μ_{y_n}^(−n)‖ = n_k/(n_k − 1)·‖h_n −
    μ_{y_n}‖``; the other centres are unchanged. A class of one sample has no centre without
    it (that sample cannot be right). Unlike the plain training accuracy of NCC or of a fitted
    probe, a sample's own weight cannot make it right: with few samples per class against the
    dimension (100 per class at d = 2,048) it stays at chance for unrelated features
    (docs/math.md §8). The own-class distance is formed from the difference ``h_n − μ_{y_n}``
    itself (not expanded), so a collapsed class (within-class scatter 10⁻⁷ of the class-mean
    norm) is not lost to rounding. With a ``shard`` (and its ``num_classes``), ``h`` and ``y``
    are this rank's rows and the accuracy is that of all ranks' rows.
    """
    with no_tf32():
        check_matrix("h", h, min_rows=0 if shard is not None else 1)
        if num_classes is None:
            num_classes = int(y.max()) + 1
        cm = means if means is not None else class_means(h, y, num_classes, shard)
        f64, dt = torch.float64, work_dtype(h)
        mu = cm.means.to(dt)
        counts = cm.counts.to(f64)
        bias = torch.where(cm.present, -0.5 * cm.means.square().sum(1), -math.inf).to(dt)
        correct = 0
        for sl in row_chunks(*h.shape):
            hc, yc = h[sl].to(dt), y[sl]
            # the other classes: −½‖h − μ_k‖² + ½‖h‖² by one product in the working dtype
            score = (hc @ mu.T + bias).to(f64)
            # the own class from the difference itself, scaled to the centre without h
            n_own = counts[yc]
            diff = hc.to(f64) - cm.means.to(f64)[yc]
            own = diff.square().sum(1) * (n_own / (n_own - 1).clamp_min(1)).square()
            own = -0.5 * own + 0.5 * hc.to(f64).square().sum(1)
            score.scatter_(1, yc[:, None], torch.where(n_own > 1, own, -math.inf)[:, None])
            correct += int((score.argmax(1) == yc).sum())
        if shard is None:
            return torch.tensor(correct / h.shape[0], dtype=f64)
        tally = shard.sum_(torch.tensor([float(correct)], dtype=f64, device=h.device))
        return torch.tensor(float(tally[0]) / shard.total, dtype=f64)


def nc4_agreement(ncc_predictions: Tensor, classifier_predictions: Tensor) -> Tensor:
    """NC4 agreement: fraction of samples where the NCC rule and the classifier agree (0-dim)."""
    if ncc_predictions.shape != classifier_predictions.shape or ncc_predictions.ndim != 1:
        raise ValueError(
            "predictions must be 1-D and of equal length, got shapes "
            f"{tuple(ncc_predictions.shape)} and {tuple(classifier_predictions.shape)}"
        )
    if ncc_predictions.numel() == 0:
        raise ValueError("NC4 agreement needs at least one prediction")
    return (ncc_predictions == classifier_predictions).to(torch.float64).mean()
