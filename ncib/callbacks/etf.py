"""Simplex-ETF / neural-collapse statistics and linear probes, on full features and on T_K."""

from __future__ import annotations

from ncib.callbacks.base import AnalysisCallback

__all__ = ["SimplexETFCallback"]


class SimplexETFCallback(AnalysisCallback):
    """Neural collapse of each member on its full features and inside T_K (paper Fig. 3),
    and full-batch logistic-regression probes on raw, normal-score and T_K features (Table 2).

    Logged under ``analysis/`` (``full``: the encoder features Z, ``tk``: T_K; ``raw``,
    ``normal``, ``tk``: probe inputs Z, normal scores of Z, T_K; class means from the
    training split):

    ==========================================================  ==============================
    key                                                         value
    ==========================================================  ==============================
    ``etf/equinorm/{full,tk}/{m0,m1}``                          std / mean of the centred
                                                                class-mean norms
    ``etf/cos_mean/{full,tk}/{m0,m1}``                          mean cosine between class
                                                                means (target −1/(K−1))
    ``etf/cos_dev/{full,tk}/{m0,m1}``                           mean abs(cos + 1/(K−1))
    ``etf/cos_std/{full,tk}/{m0,m1}``                           std of those cosines
    ``etf/angle_std_deg/{full,tk}/{m0,m1}``                     std of the angles (degrees)
    ``nc1/{full,tk}/{m0,m1}``                                   NC1 = tr(Σ_W Σ_B⁺)/K
    ``ncc/{train_acc,test_acc}/{full,tk}/{m0,m1}``              nearest-class-centre accuracy
    ``nc4/{train,test}/{full,tk}/{m0,m1}``                      agreement of NCC and the probe
    ``probe/{train_acc,test_acc}/{raw,normal,tk}/{m0,m1}``      probe accuracy (train ≥ 0.98:
                                                                terminal phase)
    ``probe/test_both_correct/{raw,normal,tk}``                 share of test samples both
                                                                members classify correctly
    ==========================================================  ==============================

    Record entries (key ``simplex_etf``): only the scalars.
    """

    name = "simplex_etf"

    def analyse(self, analysis):
        return analysis.etf_scalars() | analysis.probe_scalars(), {}
