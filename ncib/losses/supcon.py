"""Supervised contrastive loss (Khosla et al. 2020, the L_out form, their eq. 2).

docs/math.md §1: for the ``B·V`` views of a batch with L2-normalised projections ``p``,

    L = (τ/τ_base) · mean_i  -1/|P(i)| Σ_{p∈P(i)} log( exp(p_i·p_p/τ) / Σ_{a≠i} exp(p_i·p_a/τ) ),

where ``P(i)`` are the *other* views that share the label of view ``i``. Anchors without a
positive (possible only with a single view of a singleton class) are left out of the mean, so
the loss is never NaN. With every label distinct, V = 2 and τ_base = τ this is SimCLR's NT-Xent
loss.

The factor ``τ/τ_base`` is the reference implementation's (``base_temperature``, 0.07 there):
it scales the loss, hence every gradient, so the learning rates published with that code
assume it. With τ = 0.1 and τ_base = 0.07 the gradients are 10/7 as large as without it.

**Precision** (docs/math.md §1). The loss runs in float32 with autocast off, whatever the
training precision: on near-collapsed projections the logits ``p_i·p_a/τ`` of a class differ
by less than bf16 resolves (8 bits of mantissa: steps of 1/16 near 1/τ = 10), and a bf16 loss
gradient is then mostly rounding. What runs in which dtype under ``trainer.precision=bf16-mixed``
(Lightning's ``torch.autocast(dtype=torch.bfloat16)`` around the training step):

* encoder and projection-head ``Linear``/``Conv`` layers: bf16 (autocast's lower-precision list);
* the head's L2 normalisation (``F.normalize``): the vector norm is on CUDA autocast's
  float32 list, and the bf16 numerator divided by the float32 norm promotes, so the
  projections ``p`` are float32 — carrying the bf16 rounding of the head's output (CPU
  autocast keeps the norm in bf16: ``PairedSupCon.member_loss`` casts to float32);
* :func:`~ncib.losses.gather_with_grad` under DDP: all-gather of the float32 ``p``, all-reduce
  of float32 gradients in the backward pass;
* here: ``p`` cast to float32 (a no-op under bf16-mixed), then the Gram matrix ``P Pᵀ``, the
  division by τ, the masked log-sum-exp, the log-probabilities, the sums over positives and
  the mean, all float32 (without the guard the product is on the lower-precision list: the
  logits come out bf16, and every later step inherits their rounding).

The Gram matrix is then a float32 matmul, which on CUDA obeys
``torch.set_float32_matmul_precision`` (``float32_matmul_precision``: ``high`` allows TF32,
inputs rounded to 10 bits of mantissa with float32 accumulation); ``precision=fp32`` sets
``highest`` and ``trainer.precision=32-true``, the float32 of the reference training.
"""

from __future__ import annotations

import torch

__all__ = ["supcon_loss"]


def supcon_loss(
    features: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 0.1,
    base_temperature: float | None = None,
) -> torch.Tensor:
    """SupCon L_out loss of a batch, multiplied by ``τ/τ_base``.

    Args:
        features: ``(B, V, D)`` projections of ``V`` views of ``B`` samples, already
            L2-normalised along ``D``.
        labels: ``(B,)`` integer class labels.
        temperature: softmax temperature ``τ > 0``.
        base_temperature: ``τ_base > 0`` of the loss factor ``τ/τ_base``. ``None`` means
            ``τ_base = τ`` (factor 1, the plain L_out). The reference SupCon code uses 0.07;
            its learning rates were tuned with that factor in the loss.

    Returns:
        A scalar tensor, float32 (float64 for float64 features) whatever the autocast: the mean
        over anchors that have at least one positive (zero, still attached to the graph, when
        no anchor has one).
    """
    if features.dim() != 3:
        raise ValueError(
            f"features must have shape (B, V, D); got a tensor of shape {tuple(features.shape)}"
        )
    batch, views, _ = features.shape
    if labels.shape != (batch,):
        raise ValueError(
            f"labels must have shape ({batch},) to match features; got {tuple(labels.shape)}"
        )
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0; got {temperature}")
    if base_temperature is not None and not base_temperature > 0:
        raise ValueError(f"base_temperature must be > 0 (or None for τ); got {base_temperature}")
    scale = 1.0 if base_temperature is None else temperature / base_temperature

    # float32 with autocast off, whatever the training precision (module docstring); float64
    # inputs stay float64
    with torch.autocast(features.device.type, enabled=False):
        if features.dtype != torch.float64:
            features = features.float()
        # view-major layout: row v*B + b is view v of sample b
        p = features.transpose(0, 1).reshape(batch * views, -1)
        y = labels.repeat(views)
        n = p.shape[0]
        logits = (p @ p.T) / temperature
        self_mask = torch.eye(n, dtype=torch.bool, device=p.device)
        # log of the denominator Σ_{a≠i} exp(p_i·p_a/τ), stable by log-sum-exp
        log_denom = torch.logsumexp(logits.masked_fill(self_mask, float("-inf")), dim=1)
        log_prob = logits - log_denom[:, None]

        positives = (y[:, None] == y[None, :]) & ~self_mask
        n_pos = positives.sum(dim=1)
        has_pos = n_pos > 0
        pos_log_prob = torch.where(positives, log_prob, torch.zeros_like(log_prob)).sum(dim=1)
        per_anchor = -scale * pos_log_prob[has_pos] / n_pos[has_pos]
        if per_anchor.numel() == 0:
            return logits.sum() * 0.0
        return per_anchor.mean()
