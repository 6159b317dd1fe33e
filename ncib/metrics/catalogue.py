"""Every metric family ncib logs or records (:data:`METRICS`), the catalogue behind
:mod:`ncib.metrics.registry`: add a metric here, then map it in :mod:`ncib.metrics.outputs`."""

from __future__ import annotations

from ncib.metrics.vocabulary import Metric

__all__ = ["METRICS"]


def _m(template: str, meaning: str, group: str, shape: str = "scalar") -> Metric:
    return Metric(template, meaning, group, shape)


_I, _G, _E, _C = "identifiability", "gib", "simplex_etf", "classifier"

METRICS: tuple[Metric, ...] = (
    # -- identifiability (docs/math.md §3, §4, §5.4–5.5) -------------------------------------
    # unqualified keys are held out (directions fitted on the training split, correlations
    # measured on the test split); in-sample ones carry "insample/" in their name
    _m(
        "cca/mean_k/{features}",
        "mean of the k leading canonical correlations between the members, held out: directions fitted on the training split, correlations measured on the test split",
        _I,
    ),
    _m(
        "cca/mean_k_{bound}/{features}",
        "lower / upper end of the interval of that held-out mean (docs/math.md §5.5)",
        _I,
    ),
    _m("cca/var_k/{features}", "population variance of those k held-out correlations", _I),
    _m(
        "cca/std_k/{features}", "population standard deviation of those k held-out correlations", _I
    ),
    _m(
        "cca/insample/mean_k/{features}",
        "mean of the k leading canonical correlations on the training split they were fitted to (in-sample; the paper's Fig. 2)",
        _I,
    ),
    _m("cca/insample/var_k/{features}", "population variance of those in-sample correlations", _I),
    _m(
        "cca/insample/std_k/{features}",
        "population standard deviation of those in-sample correlations",
        _I,
    ),
    _m("cca/insample/min_k/{features}", "the k-th largest in-sample canonical correlation", _I),
    _m("cka/{features}", "linear CKA between the members (training split)", _I),
    _m(
        "copula_cca/mean_k/{member}",
        "mean of the k leading canonical correlations between the member's raw features and their normal scores (training split, in-sample)",
        _I,
    ),
    _m(
        "copula_cca/mean_all/{member}",
        "mean of all canonical correlations between raw features and normal scores (1: the copula is a linear map; in-sample)",
        _I,
    ),
    _m("cca/rho_k/{features}", "the k held-out correlations (training order)", _I, "(k,)"),
    _m(
        "cca/insample/rho/{features}",
        "every in-sample canonical correlation, descending",
        _I,
        "(r,)",
    ),
    # -- Gaussian information bottleneck (docs/math.md §5) -----------------------------------
    # unqualified keys come from the held-out spectrum (ρ̃ above the null threshold); the
    # in-sample GIB (the paper's, inflated by ≈ d²/(2N) nats of fitting noise) is gib/insample/
    _m(
        "gib/mi_xy",
        "I(X;Y) = −½ Σ log(1 − ρ̃_i²) between the members' normal scores, held out (nats)",
        _G,
    ),
    _m("gib/mi_xy_{bound}", "lower / upper end of the interval of the held-out I(X;Y)", _G),
    _m("gib/beta_crit/k", "held-out critical β̃_k = 1/ρ̃_k² of the k-th phase transition", _G),
    _m("gib/beta_crit/k_{bound}", "lower / upper end of the interval of β̃_k", _G),
    _m(
        "gib/beta_crit/k_next",
        "held-out β̃_{k+1} (inf when ρ̃_{k+1} does not clear the null threshold: no transition)",
        _G,
    ),
    _m("gib/beta_crit/k_next_{bound}", "lower / upper end of the interval of β̃_{k+1}", _G),
    _m("gib/beta_tk", "the β of T_K: just below β̃_{k+1} (2·β̃_k when there is none)", _G),
    _m("gib/i_tx_tk", "I(T;X) of T_K (nats, held-out spectrum)", _G),
    _m("gib/i_ty_tk", "I(T;Y) of T_K (nats, held-out spectrum)", _G),
    _m("gib/i_ty_frac_tk", "I(T;Y) / I(X;Y) of T_K (held-out spectrum)", _G),
    _m("gib/i_ty_frac_tk_{bound}", "lower / upper end of the interval of I(T;Y) / I(X;Y)", _G),
    _m(
        "gib/null_rho",
        "null threshold of held-out correlations: the largest a permutation of the test rows reaches (1 % family-wise)",
        _G,
    ),
    _m(
        "gib/feature_scaling/min/{member}", "smallest α_i / mean α over the k dimensions of T_K", _G
    ),
    _m("gib/feature_scaling/max/{member}", "largest α_i / mean α over the k dimensions of T_K", _G),
    _m(
        "gib/insample/mi_xy",
        "in-sample I(X;Y) = −½ Σ log λ_i on the training split the CCA was fitted to (nats; the paper's)",
        _G,
    ),
    _m("gib/insample/beta_crit/k", "in-sample critical β_k = 1/(1−λ_k)", _G),
    _m("gib/insample/beta_crit/k_next", "in-sample critical β_{k+1} (inf when there is none)", _G),
    _m("gib/insample/beta_tk", "the β of the in-sample T_K, just below the in-sample β_{k+1}", _G),
    _m("gib/insample/i_tx_tk", "I(T;X) of the in-sample T_K (nats)", _G),
    _m("gib/insample/i_ty_tk", "I(T;Y) of the in-sample T_K (nats)", _G),
    _m("gib/insample/i_ty_frac_tk", "I(T;Y) / I(X;Y) of the in-sample T_K", _G),
    _m("lambda", "held-out eigenvalues λ̃_i = 1 − ρ̃_i², ascending", _G, "(r,)"),
    _m("beta_crit", "held-out critical β̃_i = 1/(1 − λ̃_i)", _G, "(r,)"),
    _m(
        "information_curve",
        "β, I(T;X), I(T;Y) along β, and I(X;Y), of the held-out spectrum",
        _G,
        "{beta, i_tx, i_ty: (M,), i_xy}",
    ),
    _m("insample/lambda", "in-sample GIB eigenvalues λ_i = 1 − ρ_i², ascending", _G, "(r,)"),
    _m("insample/beta_crit", "in-sample critical β_i = 1/(1−λ_i)", _G, "(r,)"),
    _m(
        "insample/information_curve",
        "the in-sample information curve on the same β grid",
        _G,
        "{beta, i_tx, i_ty: (M,), i_xy}",
    ),
    _m(
        "intervals",
        "what the intervals cover, their level, resamples and the null threshold",
        _G,
        "{covers, level, refits, bootstrap, null_rho}",
    ),
    _m("feature_scaling/{member}", "α_i / mean α of T_K (the paper's Fig. 4B)", _G, "(k,)"),
    # -- neural collapse and the analysis probe (docs/math.md §6, §7) ------------------------
    _m("etf/equinorm/{space}/{member}", "std / mean of the norms of the centred class means", _E),
    _m(
        "etf/cos_mean/{space}/{member}",
        "mean cosine between centred class means (simplex ETF: −1/(K−1))",
        _E,
    ),
    _m("etf/cos_dev/{space}/{member}", "mean |cos + 1/(K−1)| over pairs of classes", _E),
    _m("etf/cos_std/{space}/{member}", "std of the cosines between class means", _E),
    _m("etf/angle_std_deg/{space}/{member}", "std of the angles between class means (degrees)", _E),
    _m("nc1/{space}/{member}", "NC1 = tr(Σ_W Σ_B⁺)/K on the training split", _E),
    _m(
        "ncc/{split}_acc/{space}/{member}",
        "nearest-class-centre accuracy (centres from the training split)",
        _E,
    ),
    _m(
        "ncc/loo_acc/{space}/{member}",
        "leave-one-out nearest-class-centre accuracy on the training split (each sample left out of its class centre): the terminal-phase marker (docs/math.md §8)",
        _E,
    ),
    _m(
        "nc4/{split}/{space}/{member}",
        "agreement of the nearest-class-centre rule and the analysis probe",
        _E,
    ),
    _m(
        "probe/{split}_acc/{probe_input}/{member}",
        "accuracy of the analysis probe (full-batch logistic regression, Table 2)",
        _E,
    ),
    _m(
        "probe/test_both_correct/{probe_input}",
        "share of test samples both members' analysis probes classify correctly",
        _E,
    ),
    # -- the classifier side of neural collapse (docs/math.md §6a): W of the member's own
    # classifier against its class means in raw Z (training split); present classes only
    _m(
        "classifier/equinorm/{member}",
        "std / mean of the norms of the classifier rows w_k (NC2 of the classifier; 0: equal norms)",
        _C,
    ),
    _m(
        "classifier/cos_mean/{member}",
        "mean cosine between classifier rows (simplex ETF: −1/(K−1))",
        _C,
    ),
    _m(
        "classifier/cos_std/{member}",
        "std of the cosines between classifier rows (equiangularity; 0 for an ETF)",
        _C,
    ),
    _m(
        "classifier/cos_dev/{member}",
        "mean |cos + 1/(K−1)| over pairs of classifier rows",
        _C,
    ),
    _m(
        "nc3/{member}",
        "NC3 self-duality ‖W/‖W‖_F − M/‖M‖_F‖_F² between the classifier rows and the centred class means (raw Z, training split; 0: self-dual, at most 4)",
        _C,
    ),
    _m(
        "nc3/cos_mean/{member}",
        "mean over classes of cos(w_k, μ_k − μ_G) (1: self-dual)",
        _C,
    ),
    # -- zero-shot transfer (docs/math.md §11) ------------------------------------------------
    _m(
        "transfer/k_prime/{member}",
        "K′: the smallest k of the grid whose T_k probe is within the tolerance of the raw-feature probe (null if none)",
        "transfer",
    ),
    _m(
        "transfer/probe_test_acc_k_prime/{member}",
        "test accuracy of the analysis probe on T_K′ (Table 3's IB(K′))",
        "transfer",
    ),
    _m("transfer/grid", "the dimensions k evaluated", "transfer", "(n,)"),
    _m("transfer/tolerance", "the tolerance of K′ (percentage points)", "transfer", "()"),
    _m(
        "transfer/probe_test_acc/{member}",
        "analysis-probe test accuracy on T_k, per k of the grid (Fig. 4A)",
        "transfer",
        "(n,)",
    ),
    _m(
        "transfer/ncc_test_acc/{member}",
        "nearest-class-centre test accuracy in T_k, per k",
        "transfer",
        "(n,)",
    ),
    _m(
        "transfer/nc4_test/{member}",
        "NC4 agreement of NCC and the probe in T_k, per k (Fig. 4A)",
        "transfer",
        "(n,)",
    ),
    _m(
        "transfer/feature_scaling_k_prime/{member}",
        "α_i / mean α of T_K′ (Fig. 4C)",
        "transfer",
        "(K′,)",
    ),
    # -- offline linear evaluation (Table 1) --------------------------------------------------
    _m(
        "{split}_acc/{member}",
        "accuracy of the offline linear evaluation on the frozen encoder",
        "linear_eval",
    ),
    _m(
        "{split}_top5/{member}",
        "top-5 accuracy of the offline linear evaluation (1 when K ≤ 5)",
        "linear_eval",
    ),
    _m("both_correct", "share of test samples both members classify correctly", "linear_eval"),
    # -- training --------------------------------------------------------------------------
    _m(
        "train/loss/{member}",
        "training loss of the member (its objective's: SupCon, SimCLR, cross-entropy or MSE), mean over the epoch",
        "train",
    ),
)
