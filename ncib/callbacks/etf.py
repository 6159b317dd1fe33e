"""Simplex-ETF / neural-collapse statistics and the analysis probe, on raw features and on T_K."""

from __future__ import annotations

from ncib.callbacks.base import AnalysisCallback, keys_table

__all__ = ["SimplexETFCallback"]


class SimplexETFCallback(AnalysisCallback):
    """Neural collapse of each member on its raw features and inside T_K (docs/math.md §6,
    the paper's Fig. 3), and the analysis probe — full-batch logistic regression on raw,
    normal-score and T_K features (§7, the paper's Table 2). Class means come from the
    training split. Record entries (key ``simplex_etf``): only the scalars.
    """

    group = "simplex_etf"


SimplexETFCallback.__doc__ += keys_table(SimplexETFCallback.group)
