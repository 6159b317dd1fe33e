"""Gaussian information bottleneck between the members: phase transitions and T_K."""

from __future__ import annotations

from ncib.callbacks.base import AnalysisCallback

__all__ = ["GIBCallback"]


class GIBCallback(AnalysisCallback):
    """GIB with X = normal scores of one member, Y = of the other (Chechik et al. 2005;
    DESIGN.md §4). The K-dimensional IB representation T_K of each member, at a β just below
    β_{K+1}, is computed once per round and shared with :class:`SimplexETFCallback`.

    Logged under ``analysis/``:

    ==============================================  ===========================================
    key                                             value
    ==============================================  ===========================================
    ``gib/mi_xy``                                   I(X;Y) = −½ Σ log λ_i (nats)
    ``gib/beta_crit/{k,k_next}``                    critical β_K and β_{K+1}
    ``gib/beta_tk``                                 the β of T_K (just below β_{K+1})
    ``gib/{i_tx_tk,i_ty_tk}``                       I(T;X) and I(T;Y) of T_K (nats)
    ``gib/i_ty_frac_tk``                            I(T;Y) / I(X;Y) of T_K
    ``gib/feature_scaling/{min,max}/{m0,m1}``       range of α_i / mean α over the K dimensions
    ==============================================  ===========================================

    Record entries (key ``gib``): ``lambda`` (eigenvalues λ_i, ascending), ``beta_crit``
    (β_i = 1/(1−λ_i)), ``information_curve`` (``beta``, ``i_tx``, ``i_ty``, ``i_xy``) and
    ``feature_scaling`` (α_i / mean α per member; the paper's Fig. 4B).
    """

    name = "gib"

    def analyse(self, analysis):
        g = analysis.gib(0)
        entries = {
            "lambda": g.lam.tolist(),
            "beta_crit": g.beta_crit.tolist(),
            "information_curve": analysis.information_curve(),
            "feature_scaling": analysis.feature_scaling(),
        }
        return analysis.gib_scalars(), entries
