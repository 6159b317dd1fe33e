"""How far the SupCon loss gradient moves from float32 under reduced precision (docs/math.md §1).

The terminal-phase case of ``tests/losses/test_supcon_precision.py``: unit class prototypes
(K classes in D = 128) plus N(0, noise²) per coordinate, B = 1,024 samples in two views,
τ = 0.1, τ_base = 0.07; the gradient is taken with respect to the pre-normalisation features,
the head's L2 normalisation included. Printed: the relative norm of the gradient difference
from the float32 gradient, under CPU bf16 autocast (the stand-in for CUDA ``bf16-mixed``)

* ``guarded``: the loss as shipped (float32, autocast off inside);
* ``unguarded``: the loss's autocast guard removed (its Gram matrix in bf16, as before);
* ``bf16 head``: float32 loss on projections whose pre-normalisation values were rounded to
  bf16 (what the head's bf16 ``Linear`` output costs, which no loss can undo);
* ``tf32 gram``: float32 loss whose Gram-matrix inputs are rounded to TF32's 10 mantissa bits
  (CUDA float32 matmuls under ``float32_matmul_precision=high``, simulated on the CPU).

    python experiments/supcon_precision.py
"""

from __future__ import annotations

import contextlib
import time

import torch
import torch.nn.functional as F

import ncib.losses.supcon as supcon_module
from ncib.losses import supcon_loss

REAL_AUTOCAST = torch.autocast


def near_collapse(noise, classes, seed=0, batch=1024, dim=128):
    g = torch.Generator().manual_seed(seed)
    prototypes = F.normalize(torch.randn(classes, dim, generator=g), dim=-1)
    labels = torch.arange(batch) % classes
    return prototypes[labels][:, None, :] + noise * torch.randn(batch, 2, dim, generator=g), labels


def round_mantissa(x: torch.Tensor, bits: int) -> torch.Tensor:
    """float32 rounded to ``bits`` explicit mantissa bits (to nearest), gradient passed through."""
    drop = 23 - bits
    i = x.detach().view(torch.int32)
    rounded = (((i + (1 << (drop - 1))) >> drop) << drop).view(torch.float32)
    return x + (rounded - x).detach()


def gradient(features, labels, autocast=False, head_bits=None, gram_bits=None):
    f = features.detach().clone().requires_grad_(True)
    h = f if head_bits is None else round_mantissa(f, head_bits)
    with REAL_AUTOCAST("cpu", dtype=torch.bfloat16, enabled=autocast):
        p = F.normalize(h, dim=-1)
        if gram_bits is not None:  # the Gram matrix's inputs only: p·p is all the loss reads
            p = round_mantissa(p, gram_bits)
        loss = supcon_loss(p, labels, 0.1, base_temperature=0.07)
    loss.backward()  # outside autocast, as Lightning calls it
    return f.grad


def unguarded(device_type, dtype=None, enabled=True, **kwargs):
    return contextlib.nullcontext() if not enabled else REAL_AUTOCAST(device_type, dtype, enabled)


def main() -> None:
    print("K    noise  guarded    unguarded  bf16 head  tf32 gram   (relative gradient error)")
    for classes in (10, 100):
        for noise in (0.02, 0.1, 0.5):
            f, y = near_collapse(noise, classes)
            ref = gradient(f, y)
            err = {}
            err["guarded"] = gradient(f, y, autocast=True)
            supcon_module.torch.autocast = unguarded
            try:
                err["unguarded"] = gradient(f, y, autocast=True)
            finally:
                supcon_module.torch.autocast = REAL_AUTOCAST
            err["head"] = gradient(f, y, head_bits=7)
            err["tf32"] = gradient(f, y, gram_bits=10)
            rel = {k: float((g - ref).norm() / ref.norm()) for k, g in err.items()}
            print(
                f"{classes:<4} {noise:<6} {rel['guarded']:<10.2e} {rel['unguarded']:<10.3f} "
                f"{rel['head']:<10.4f} {rel['tf32']:<10.4f}"
            )


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"({time.perf_counter() - start:.0f} s)")
