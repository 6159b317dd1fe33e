"""Linear identifiability of the two members: CCA and CKA, on raw and normal-score features."""

from __future__ import annotations

from ncib.callbacks.base import AnalysisCallback, keys_table

__all__ = ["IdentifiabilityCallback"]


class IdentifiabilityCallback(AnalysisCallback):
    """Canonical correlations (docs/math.md §3, the paper's Fig. 2) and linear CKA (§4) between
    the members' features; ``raw``: the encoder features, ``normal``: their normal scores.

    Record entries (key ``identifiability`` of each record): ``cca/rho_k/{features}`` (the K
    leading held-out correlations) and ``cca/insample/rho/{features}`` (the full in-sample
    spectrum).
    """

    group = "identifiability"


IdentifiabilityCallback.__doc__ += keys_table(IdentifiabilityCallback.group)
