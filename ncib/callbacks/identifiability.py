"""Linear identifiability of the two members (CCA), on raw and on normal-score features."""

from __future__ import annotations

from ncib.callbacks.base import AnalysisCallback

__all__ = ["IdentifiabilityCallback"]


class IdentifiabilityCallback(AnalysisCallback):
    """Canonical correlations between the members' features (DESIGN.md §4, paper Fig. 2).

    Logged under ``analysis/`` (``raw``: the features; ``normal``: their normal scores):

    ==================================================  ========================================
    key                                                 value
    ==================================================  ========================================
    ``cca/mean_k/{raw,normal}``                         mean of the K leading canonical
                                                        correlations ρ between the members
    ``cca/{var_k,std_k}/{raw,normal}``                  their population variance and std
    ``cca/min_k/{raw,normal}``                          the K-th largest ρ
    ``cca/heldout/{mean_k,var_k,std_k}/{raw,normal}``   the same measured on the test split with
                                                        directions fitted on the training split
    ==================================================  ========================================

    Record entries (``analysis.jsonl``, key ``identifiability``): ``cca/rho/{f}`` (the full
    spectrum) and ``cca/heldout/rho_k/{f}``.
    """

    name = "identifiability"

    def analyse(self, analysis):
        spectra = {}
        for kind in ("raw", "normal"):
            spectra[f"cca/rho/{kind}"] = analysis.cca(kind).rho.tolist()
            spectra[f"cca/heldout/rho_k/{kind}"] = analysis.heldout(kind).rho_k.tolist()
        return analysis.identifiability_scalars(), spectra
