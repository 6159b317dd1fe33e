"""The analysis probe: full-batch multinomial logistic regression by L-BFGS (docs/math.md §7,
the paper's Table 2; not to be confused with the offline linear evaluation of Table 1,
:mod:`ncib.linear_eval`).

Objective on standardised features ``x̃ = (h − μ)/σ`` (training mean and population std):
``mean_i CE(softmax(x̃_i W + b), y_i) + ½·λ·‖W‖²`` (bias not penalised). With
``λ = 1/(N·C)`` this is scikit-learn's ``LogisticRegression(C)``.

The optimiser is :class:`torch.optim.LBFGS` with a strong-Wolfe line search on the
reparametrisation ``W = R⁻ᵀ V`` where ``R Rᵀ = corr(x̃) + δI`` (Cholesky; ``δ = max(K·λ, 1e-4)``)
— a change of variables with the same optimum that whitens the features, so that L-BFGS needs
far fewer passes over highly correlated features. Gradients are written by hand (two feature
matmuls per evaluation, in the features' working dtype; float32 for float32 features) and
the run is deterministic: zero start, no randomness.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn.functional import linear

from ._checks import WarningLog, check_labels, check_matrix
from ._linalg import covariance_blocks, intra_op_threads, no_tf32, row_chunks, work_dtype
from .shards import Shard

__all__ = ["ProbeResult", "fit_logistic_probe"]

_PRECONDITIONER_FLOOR = 1e-4  # smallest δ of the preconditioner corr + δI


@dataclass(frozen=True)
class ProbeResult:
    """Result of :func:`fit_logistic_probe`.

    Attributes:
        train_acc, test_acc: accuracies (0-dim float64).
        train_pred: ``(N,)``; test_pred: ``(N_test,)`` predicted classes (int64).
        weight: ``(d, K)`` and bias ``(K,)`` acting on standardised features.
        mean, std: ``(d,)`` standardisation (float64; std of constant columns set to 1).
        loss: final objective (0-dim); n_evals: function evaluations used; warnings.
    """

    train_acc: Tensor
    test_acc: Tensor
    train_pred: Tensor
    test_pred: Tensor
    weight: Tensor
    bias: Tensor
    mean: Tensor
    std: Tensor
    loss: Tensor
    n_evals: int
    warnings: tuple[str, ...] = ()


def _sharded_moments(h: Tensor, shard: Shard) -> tuple[Tensor, Tensor]:
    """Mean ``(d,)`` and population covariance ``(d, d)`` (float64) of a training split whose
    rows are shared over ranks (``h``: this rank's), centred by the global mean."""
    f64, dt = torch.float64, work_dtype(h)
    total = shard.sum_(h.sum(0, dtype=f64))
    mean = total / shard.total
    gram = torch.zeros(h.shape[1], h.shape[1], dtype=f64, device=h.device)
    shift = mean.to(dt)
    for sl in row_chunks(*h.shape):
        c = h[sl].to(dt) - shift
        gram += (c.T @ c).to(f64)
    return mean, shard.sum_(gram) / shard.total


def _validate(
    h_train: Tensor,
    y_train: Tensor,
    h_test: Tensor,
    y_test: Tensor,
    k: int | None,
    shard: Shard | None = None,
    test_shard: Shard | None = None,
):
    check_matrix("h_train", h_train, min_rows=2 if shard is None else 0)
    check_matrix("h_test", h_test, min_rows=1 if test_shard is None else 0)
    if h_test.shape[1] != h_train.shape[1]:
        raise ValueError(f"h_test has {h_test.shape[1]} columns but h_train has {h_train.shape[1]}")
    if h_test.device != h_train.device:
        raise ValueError(f"h_train is on {h_train.device} but h_test on {h_test.device}")
    if k is None:
        k = int(max(int(y_train.max()), int(y_test.max()))) + 1
    y_train = check_labels("y_train", y_train, h_train.shape[0], k).to(h_train.device)
    y_test = check_labels("y_test", y_test, h_test.shape[0], k).to(h_train.device)
    return y_train, y_test, k


def fit_logistic_probe(
    h_train: Tensor,
    y_train: Tensor,
    h_test: Tensor,
    y_test: Tensor,
    num_classes: int | None = None,
    weight_decay: float | None = None,
    max_iter: int = 100,
    tolerance_grad: float = 1e-5,
    tolerance_change: float = 1e-9,
    history_size: int = 10,
    moments: tuple[Tensor, Tensor] | None = None,
    init: tuple[Tensor, Tensor] | None = None,
    shard: Shard | None = None,
    test_shard: Shard | None = None,
) -> ProbeResult:
    """Train a multinomial logistic-regression probe on ``h_train (N, d)``, evaluate on ``h_test``.

    Args:
        h_train, y_train: training features ``(N, d)`` and labels ``(N,)``.
        h_test, y_test: test features ``(N_test, d)`` and labels ``(N_test,)``.
        num_classes: K (default: 1 + the largest label).
        weight_decay: λ of the L2 penalty ``½λ‖W‖²`` on the mean cross-entropy; default ``1/N``,
            i.e. scikit-learn's default ``C = 1``.
        max_iter: L-BFGS iterations (≈ feature passes: one forward, one backward matmul each).
        tolerance_grad, tolerance_change: L-BFGS stopping rules (max |gradient|; change of the
            objective or of the step).
        history_size: L-BFGS memory.
        moments: optional ``(mean (d,), covariance (d, d))`` of ``h_train`` (population, as from
            :func:`ncib.analysis.cross_covariance`) to skip one pass over the data.
        init: optional starting point ``(weight (d, K), bias (K,))`` on standardised features,
            e.g. the :class:`ProbeResult` of the same member at an earlier epoch (warm start;
            default: zero). The objective is strictly convex for ``weight_decay > 0``, so the
            optimum is the same; the result differs only within the stopping tolerances.
        shard: with a :class:`ncib.analysis.shards.Shard`, ``h_train`` and ``y_train`` are this
            rank's rows of the training split (``h_test`` the whole test split, unless
            ``test_shard``). The objective and its gradient are sums over samples: each evaluation forms them on
            the shard and sums them over the ranks (one all-reduce), so every rank runs the same
            L-BFGS iterates as one process would on the whole split, up to the order of
            summation. ``train_acc`` and ``loss`` are those of the whole split; ``train_pred``
            holds this rank's rows.
        test_shard: with a :class:`~ncib.analysis.shards.Shard` of the test split, ``h_test``
            and ``y_test`` are this rank's test rows: ``test_acc`` is over all ranks' rows,
            ``test_pred`` holds this rank's.
    """
    with no_tf32():
        if shard is not None and num_classes is None:
            raise ValueError("a sharded probe needs num_classes (a shard may not hold every label)")
        y_train, y_test, k = _validate(
            h_train, y_train, h_test, y_test, num_classes, shard, test_shard
        )
        log = WarningLog("fit_logistic_probe")
        rows_here, d = h_train.shape
        n = rows_here if shard is None else int(shard.total)
        dt = work_dtype(h_train)
        if weight_decay is None:
            weight_decay = 1.0 / n
        if not weight_decay >= 0:
            raise ValueError(f"weight_decay={weight_decay} must be >= 0")
        if moments is None and shard is not None:
            mean, cov = _sharded_moments(h_train, shard)
        elif moments is None:
            (mean,), blocks = covariance_blocks([h_train], [(0, 0)])
            cov = blocks[(0, 0)]
        else:
            mean, cov = (m.to(device=h_train.device, dtype=torch.float64) for m in moments)
            if mean.shape != (d,) or cov.shape != (d, d):
                raise ValueError(f"moments must be shaped ({d},) and ({d}, {d})")
        var = cov.diagonal()
        if not bool(torch.isfinite(var).all()):
            raise ValueError("h_train contains NaN or inf")
        const = var <= torch.finfo(dt).eps ** 2 * (mean.square() + var.max())
        if bool(const.any()):
            log.warn(
                f"{int(const.sum())} of {d} columns are constant on the training split; "
                "they are centred and left unscaled"
            )
        std = torch.where(const, 1.0, var.clamp_min(0).sqrt())
        corr = cov / std[:, None] / std[None, :]
        corr.diagonal().add_(max(k * weight_decay, _PRECONDITIONER_FLOOR))
        chol, info = torch.linalg.cholesky_ex(corr)
        # a correlation plus δI factorises when it comes from the data; given ``moments`` that
        # are not a covariance (not positive semi-definite) may not
        if int(info) != 0:
            chol = torch.eye(d, dtype=torch.float64, device=h_train.device)
            log.warn("the preconditioner could not be factorised; L-BFGS runs unpreconditioned")

        scale = (1.0 / std).to(dt)
        shift = mean.to(dt)
        x_train = (h_train.to(dt) - shift).mul_(scale)  # standardised copy
        rows, cols = torch.arange(rows_here, device=h_train.device), y_train
        v = torch.zeros(d, k, dtype=torch.float64, device=h_train.device)
        b = torch.zeros(k, dtype=torch.float64, device=h_train.device)
        if init is not None:
            w0, b0 = (t.to(device=h_train.device, dtype=torch.float64) for t in init)
            if w0.shape != (d, k) or b0.shape != (k,):
                raise ValueError(
                    f"init must be shaped ({d}, {k}) and ({k},) (weight, bias); got "
                    f"{tuple(w0.shape)} and {tuple(b0.shape)}"
                )
            if bool(torch.isfinite(w0).all() & torch.isfinite(b0).all()):
                v, b = chol.T @ w0, b0.clone()  # V = Rᵀ W
            else:
                log.warn("the warm start is not finite; starting from zero")
        v.requires_grad_(True)
        b.requires_grad_(True)
        solve = torch.linalg.solve_triangular
        evals = 0

        def weights() -> Tensor:
            return solve(chol.T, v.detach(), upper=True)  # W = R⁻ᵀ V

        threads = torch.get_num_threads()

        # L-BFGS's own algebra on (d·K)-vectors (Tensor.dot) runs on one thread: with more, each
        # dot costs milliseconds (ncib.analysis._linalg.intra_op_threads); the closure's products
        # over the data use them all (a with block, not a decorator: mutmut skips decorated
        # functions, docs/testing.md).
        def closure() -> Tensor:
            nonlocal evals
            with intra_op_threads(threads):
                evals += 1
                w = weights()
                logits = linear(x_train, w.T.to(dt).contiguous(), b.detach().to(dt))
                resid = torch.log_softmax(logits, dim=1)
                ce = -resid[rows, cols].sum(dtype=torch.float64)
                resid.exp_()  # softmax
                resid[rows, cols] -= 1.0  # softmax − one-hot = n · d CE / d logits
                # (K, N) contiguous: MKL reads x_train faster this way (bit-identical product)
                sum_w = (resid.T.contiguous() @ x_train).T.to(torch.float64)
                sum_b = resid.sum(0, dtype=torch.float64)
                if shard is not None:  # the sums over all ranks' rows, in one all-reduce
                    packed = shard.sum_(torch.cat([ce.reshape(1), sum_w.flatten(), sum_b]))
                    ce, sum_w, sum_b = (
                        packed[0],
                        packed[1 : 1 + d * k].view(d, k),
                        packed[1 + d * k :],
                    )
                grad_w = sum_w / n + weight_decay * w
                v.grad = solve(chol, grad_w, upper=False).contiguous()
                b.grad = sum_b / n
                return ce / n + 0.5 * weight_decay * w.square().sum()

        opt = torch.optim.LBFGS(
            [v, b],
            lr=1.0,
            max_iter=max_iter,
            tolerance_grad=tolerance_grad,
            tolerance_change=tolerance_change,
            history_size=history_size,
            line_search_fn="strong_wolfe",
        )
        with intra_op_threads(1):
            opt.step(closure)
        w, bias = weights(), b.detach()
        logits = linear(x_train, w.T.to(dt).contiguous(), bias.to(dt))
        train_pred = logits.argmax(1)
        ce = -torch.log_softmax(logits, dim=1)[rows, cols].sum(dtype=torch.float64)
        correct = (train_pred == y_train).sum(dtype=torch.float64)
        if shard is not None:
            ce, correct = shard.sum_(torch.stack([ce, correct]))
        loss = ce / n + 0.5 * weight_decay * w.square().sum()
        if not bool(torch.isfinite(loss)):
            log.warn("the probe objective is not finite; predictions are unreliable")
        wt_dt, b_dt = w.T.to(dt).contiguous(), bias.to(dt)
        test_pred = torch.cat(
            [
                linear((h_test[sl].to(dt) - shift) * scale, wt_dt, b_dt).argmax(1)
                for sl in row_chunks(*h_test.shape)
            ]
            or [y_test.new_empty(0)]
        )
        test_hits = (test_pred == y_test).sum(dtype=torch.float64).reshape(1)
        n_test = h_test.shape[0]
        if test_shard is not None:
            test_shard.sum_(test_hits)
            n_test = int(test_shard.total)
        return ProbeResult(
            train_acc=correct / n,
            test_acc=test_hits[0] / n_test,
            train_pred=train_pred,
            test_pred=test_pred,
            weight=w,
            bias=bias,
            mean=mean,
            std=std,
            loss=loss,
            n_evals=evals,
            warnings=log.as_tuple(),
        )
