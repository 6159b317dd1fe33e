"""Gaussian information bottleneck between the members: phase transitions and T_K."""

from __future__ import annotations

from ncib.callbacks.base import AnalysisCallback, keys_table

__all__ = ["GIBCallback"]


class GIBCallback(AnalysisCallback):
    """GIB with X = normal scores of one member, Y = of the other (Chechik et al. 2005;
    docs/math.md §5). The K-dimensional IB representation T_K of each member, at a β just
    below β_{K+1}, is computed once per analysis and shared with :class:`SimplexETFCallback`.

    Record entries (key ``gib``): ``lambda`` (eigenvalues λ_i, ascending), ``beta_crit``
    (β_i = 1/(1−λ_i)), ``information_curve`` (``beta``, ``i_tx``, ``i_ty``, ``i_xy``) and
    ``feature_scaling/{member}`` (α_i / mean α; the paper's Fig. 4B).
    """

    group = "gib"


GIBCallback.__doc__ += keys_table(GIBCallback.group)
