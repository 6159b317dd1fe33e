"""The classifier side of neural collapse: NC2 on the classifier rows and NC3 self-duality
(docs/math.md §6a; Papyan, Han & Donoho 2020, Figs. 3 and 5).

For a member with a linear classifier ``W (K, d)`` on its encoder features (row ``w_k`` scores
class k) and the class means of those features (:class:`ncib.analysis.etf.ClassMeans`: centred
by μ_G, the mean of the class means, ``M_k = μ_k − μ_G``):

- NC2 of W, the statistics of :func:`ncib.analysis.etf.simplex_etf_stats` on the rows ``w_k``
  themselves (not centred: cross-entropy's gradient moves Σ_k w_k not at all, and the paper
  measures the rows as they are): equinorm ``std_k‖w_k‖ / mean_k‖w_k‖``; the mean, std and
  ``mean |cos + 1/(K−1)|`` of ``cos(w_k, w_k′)`` over k ≠ k′.
- NC3: ``‖W/‖W‖_F − M/‖M‖_F‖_F²`` (0 when the classifier is the class means up to one scale;
  at most 4), and the mean over classes of ``cos(w_k, M_k)`` (1 when self-dual).

Classes absent from the labels of the class means are left out of both, as
:mod:`ncib.analysis.etf` leaves them out (K counts the present classes; a warning says so): NC3
needs a class mean for every row it compares, and NC2 of W is then measured on the same classes
as NC2 of the means. Statistics are float64 and population standard deviations; the largest
intermediate is ``K × K`` (the cosines) beside the ``K × d`` inputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ._checks import WarningLog, check_matrix
from ._linalg import no_tf32
from .etf import ClassMeans

__all__ = ["ClassifierStats", "classifier_stats"]


@dataclass(frozen=True)
class ClassifierStats:
    """NC2 of the classifier rows and NC3 self-duality (0-dim float64 tensors).

    Attributes:
        equinorm: ``std_k‖w_k‖ / mean_k‖w_k‖`` (0 for equal norms).
        cos_mean, cos_std: mean and std of ``cos(w_k, w_k′)`` over k ≠ k′ (ETF: −1/(K−1), 0).
        cos_dev: ``mean_{k≠k′} |cos(w_k, w_k′) + 1/(K−1)|``.
        nc3: ``‖W/‖W‖_F − M/‖M‖_F‖_F²`` (NaN when W or M is zero).
        nc3_cos: ``mean_k cos(w_k, M_k)``.
        norms: ``(K,)`` ``‖w_k‖`` of the present classes.
        num_classes: K, the number of present classes; warnings.
    """

    equinorm: Tensor
    cos_mean: Tensor
    cos_std: Tensor
    cos_dev: Tensor
    nc3: Tensor
    nc3_cos: Tensor
    norms: Tensor
    num_classes: int
    warnings: tuple[str, ...] = ()


def classifier_stats(w: Tensor, means: ClassMeans) -> ClassifierStats:
    """NC2 of the rows of ``w (num_classes, d)`` and NC3 of ``w`` against the centred class means
    ``means`` (:func:`ncib.analysis.class_means` of the features the classifier reads, same d).

    Row k of ``w`` belongs to class k. Raises ValueError when the shapes disagree or ``w`` is not
    finite.
    """
    with no_tf32():
        check_matrix("w", w)
        num_classes, d = means.means.shape
        if tuple(w.shape) != (num_classes, d):
            raise ValueError(
                f"classifier rows have shape {tuple(w.shape)} but the class means are "
                f"({num_classes}, {d}): need one row per class over the same {d} features"
            )
        log = WarningLog("classifier_stats")
        log.extend(means.warnings)
        w = w.detach().to(device=means.means.device, dtype=torch.float64)
        if not bool(torch.isfinite(w).all()):
            raise ValueError("classifier rows contain NaN or inf; NC2 and NC3 need finite rows")
        w = w[means.present]
        m = means.centred
        k = w.shape[0]
        tiny = torch.finfo(torch.float64).tiny
        norms = w.norm(dim=1)
        m_norms = m.norm(dim=1)
        if bool((norms <= tiny).any()):
            log.warn("some classifier rows are zero; their cosines are taken as 0")
        unit = w / norms.clamp_min(tiny)[:, None]
        cos = (unit @ unit.T).clamp(-1.0, 1.0)  # (K, K): the largest intermediate
        pairs = cos[~torch.eye(k, dtype=torch.bool, device=cos.device)]
        if bool((m_norms <= tiny).any()):
            log.warn(
                "some class means coincide with the global mean; their cosine with the "
                "classifier row is taken as 0"
            )
        m_unit = m / m_norms.clamp_min(tiny)[:, None]
        w_f, m_f = w.norm(), m.norm()
        if float(w_f) <= tiny or float(m_f) <= tiny:
            which = [
                what
                for what, zero in (
                    ("the classifier rows are all zero", float(w_f) <= tiny),
                    ("all class means coincide", float(m_f) <= tiny),
                )
                if zero
            ]
            log.warn(f"{' and '.join(which)}: NC3 self-duality is undefined and reported as NaN")
            nc3 = torch.tensor(math.nan, dtype=torch.float64, device=w.device)
        else:
            nc3 = (w / w_f - m / m_f).square().sum()  # the difference itself: exact near 0
        return ClassifierStats(
            equinorm=norms.std(unbiased=False) / norms.mean().clamp_min(tiny),
            cos_mean=pairs.mean(),
            cos_std=pairs.std(unbiased=False),
            cos_dev=(pairs + 1.0 / (k - 1)).abs().mean(),
            nc3=nc3,
            nc3_cos=(unit * m_unit).sum(1).mean(),
            norms=norms,
            num_classes=k,
            warnings=log.as_tuple(),
        )
