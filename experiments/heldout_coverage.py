"""How often the held-out intervals cover the truth, and how often a transition is invented.

A planted pair (docs/math.md §5.5): X, Y ``(N + N_t, d)`` standard normal, the first K
coordinates correlated at ρ = 0.99 (true I(X;Y) = −½·K·log(1 − 0.99²) = 19.585 nats for
K = 10), everything else independent, each side rotated by its own random orthogonal map. The
whole analysis path runs on it (normal scores, class-centred moments with two classes that carry no signal, the
held-out spectrum, the null threshold, the intervals); the truths are those of the planted
spectrum:

* mean ρ_K = ρ_K = 0.99, β_K = 1/0.99²;
* no (K+1)-th transition: β_{K+1} = ∞ (reported as none when ρ̃_{K+1} does not clear the null);
* I(X;Y) = 19.585; I(T_K;Y)/I(X;Y) at the β of T_K (2·β_K without a (K+1)-th transition).

Run (one line per seed, then the coverage of each statistic)::

    PYTHONPATH=. python experiments/heldout_coverage.py --d 2048 --n-train 50000 --n-test 10000 --seeds 20
    PYTHONPATH=. python experiments/heldout_coverage.py --d 2048 --n-train 10000 --n-test 10000 --seeds 20

``tests/analysis/test_coverage.py`` (``slow``) runs both and asserts the coverage.
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from dataclasses import dataclass

import torch

from ncib.analysis import IntervalSettings, PairAnalysis
from ncib.analysis.intervals import spectrum_statistics

STRENGTH = 0.99


def planted_pair(n: int, d: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """X, Y ``(n, d)`` float32: ``corr(x_i, y_i) = 0.99`` for i < k, independent otherwise,
    then rotated by independent random orthogonal maps (the truth is rotation-invariant)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = torch.randn(n, d, generator=g)
    y[:, :k] = STRENGTH * x[:, :k] + math.sqrt(1 - STRENGTH**2) * y[:, :k]
    qx = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64)).Q.float()
    qy = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64)).Q.float()
    return x @ qx, y @ qy


def truth(d: int, k: int) -> dict[str, float]:
    """The statistics of the planted spectrum (same formulas as the estimates)."""
    corr = torch.zeros(1, d, dtype=torch.float64)
    corr[0, :k] = STRENGTH
    values = spectrum_statistics(corr, k, d, 0.0)[0]
    return dict(zip(("mean_k", "rho_k", "rho_k_next", "mi_xy", "i_ty_frac_tk"), values.tolist()))


@dataclass
class SeedResult:
    seed: int
    estimates: dict[str, tuple[float, float, float]]  # name -> (estimate, lo, hi)
    null_rho: float
    seconds: float

    def covers(self, name: str, value: float) -> bool:
        _, lo, hi = self.estimates[name]
        return lo <= value <= hi


def run_seed(d: int, n_train: int, n_test: int, k: int, seed: int, settings: IntervalSettings):
    x, y = planted_pair(n_train + n_test, d, k, seed)
    labels = torch.arange(n_train + n_test) % 2  # two classes unrelated to the signal
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        pa = PairAnalysis(
            (x[:n_train], y[:n_train]),
            (x[n_train:], y[n_train:]),
            labels[:n_train],
            labels[n_train:],
            num_classes=2,
            k=k,
            intervals=settings,
        )
        iv = pa.intervals("normal")
    values = {n: (i.estimate, i.lo, i.hi) for n, i in iv.values.items()}
    return SeedResult(seed, values, iv.null_rho, time.perf_counter() - start)


def coverage(results: list[SeedResult], d: int, k: int) -> dict[str, float]:
    """Share of seeds whose interval holds the truth (ρ_{K+1}: whose estimate is none)."""
    true = truth(d, k)
    out = {n: sum(r.covers(n, true[n]) for r in results) / len(results) for n in true}
    out["rho_k_next"] = sum(r.estimates["rho_k_next"][0] == 0.0 for r in results) / len(results)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--d", type=int, default=2048)
    p.add_argument("--n-train", type=int, default=50_000)
    p.add_argument("--n-test", type=int, default=10_000)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--first-seed", type=int, default=0)
    args = p.parse_args(argv)
    settings = IntervalSettings()
    true = truth(args.d, args.k)
    print(
        f"d={args.d} N={args.n_train} N_t={args.n_test} K={args.k}; truth "
        + ", ".join(f"{n}={v:.4f}" for n, v in true.items()),
        flush=True,
    )
    results = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        r = run_seed(args.d, args.n_train, args.n_test, args.k, seed, settings)
        results.append(r)
        cells = " ".join(
            f"{n}={e:.4f}[{lo:.4f},{hi:.4f}]{'' if r.covers(n, true[n]) else '*'}"
            for n, (e, lo, hi) in r.estimates.items()
        )
        print(f"seed {seed} ({r.seconds:.0f} s) null_rho={r.null_rho:.4f} {cells}", flush=True)
    print("coverage (ρ_{K+1}: share reported as none):")
    for n, c in coverage(results, args.d, args.k).items():
        print(f"  {n}: {c:.2f}")


if __name__ == "__main__":
    main()
