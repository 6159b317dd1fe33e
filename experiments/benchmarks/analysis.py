"""Benchmark: one per-epoch analysis of a seed pair at CIFAR scale through ``PairAnalysis``.

Synthetic float32 features shaped like a collapsed SupCon pair (K clusters near a simplex plus
noise; member 1 = ReLU(random linear map of member 0 + noise)), N=50,000 train / 10,000 test,
d=2,048 by default. Times every stage of ``ncib.analysis.PairAnalysis`` (normal scores of both
members and splits, CCA on raw and normal scores incl. held-out, GIB and T_K, simplex-ETF /
NC1 / NCC / NC4 on full features and T_K, linear probes on raw, normal-score and T_K features)
and, unless ``--skip-baseline``, the same analysis with the usual tools (numpy float64
``np.cov`` of the stacked features with eigendecomposition whitening, scipy ``rankdata`` +
``norm.ppf``, scikit-learn ``LogisticRegression``, per-class Python loops for NC1; the held-out
GIB by projecting the test split on all train-fitted canonical directions and correlating;
the copula CCA as a numpy CCA of each member's raw features and normal scores; linear CKA from
the covariance blocks). Every stage prints wall and process CPU seconds (all threads) and the
load average: the machine may be shared, so compare ratios measured in one run.

    python experiments/benchmarks/analysis.py                  # K=10, CPU, with baseline
    python experiments/benchmarks/analysis.py --classes 100 --device cuda --skip-baseline
    python experiments/benchmarks/analysis.py --skip-baseline --warm-start 0.05  # "epoch 2"

``--no-intervals`` leaves out the null threshold and the intervals of the held-out numbers
(docs/math.md §5.5) and the fold sums they need (the analysis without that cost).

``--world R[,R...]`` is the distributed mode (docs/design.md §3a): for each R, R fresh processes
(CPU gloo, or one GPU each over NCCL with ``--device cuda`` when CUDA has R devices; R = 1: one
fresh process, unsharded) generate the same synthetic split (each keeps only its training rows
``rank::R`` of each split, generated chunk by chunk), analyse it with
``PairAnalysis(shard=..., test_shard=...)`` and report the analysis time, the peak resident memory of each rank
during the analysis and over its life (``ru_maxrss``), ``torch.cuda.max_memory_allocated`` on
GPUs, and the per-rank memory of ``ncib.engine.memory`` beside them; a summary table puts every
R beside the first (list 1 first for the single-process figure) with the largest relative
difference of the printed scalars from it. No baseline in this mode.

    python experiments/benchmarks/analysis.py --world 1,2,3                      # CIFAR-10 shape
    python experiments/benchmarks/analysis.py --world 1,2 --classes 1000 --n-train 20000

``--warm-start EPS`` then analyses a "second epoch" — every feature matrix mixed with EPS times
a random linear map of itself (then ReLU) — and fits its raw and normal-score probes twice:
from zero (as ``PairAnalysis`` does) and from the first epoch's solutions
(``fit_logistic_probe(init=...)``), printing time, L-BFGS evaluations, loss and accuracy.

Targets: 2-core CPU total <= 25 s at CIFAR-10 scale, peak memory <= 6 GB, >= 5x faster than the
baseline; GPU <= 3 s. TOTAL covers every output the analysis callbacks log and record
(ncib.metrics.outputs), the held-out GIB and the copula CCA included.
"""

from __future__ import annotations

import os

# Spinning OpenMP workers make MKL's LAPACK (the CCA's SVD) 10x slower whenever another process
# shares the cores; passive waiting costs nothing measurable on an idle machine. Must be set
# before torch loads its OpenMP runtime; an explicit OMP_WAIT_POLICY in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import resource  # noqa: E402
import socket  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from functools import partial  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ncib.analysis import IntervalSettings, PairAnalysis, fit_logistic_probe
from ncib.analysis.shards import Shard, TorchDistributed, strided_rows
from ncib.engine.memory import analysis_memory
from ncib.metrics.outputs import all_outputs

_PAGE = os.sysconf("SC_PAGE_SIZE")


class RssSampler:
    """Peak resident memory of this process between :meth:`reset` and now (sampled every 5 ms)."""

    def __init__(self) -> None:
        self.peak = self.current()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def current() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.current())

    def reset(self) -> int:
        self.peak = self.current()
        return self.peak

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def synthetic_pair(
    n_train: int,
    n_test: int,
    dim: int,
    classes: int,
    seed: int,
    rank: int = 0,
    world: int = 1,
    balanced: bool = False,
):
    """Float32 features of a collapsed pair: ``((Z0_tr, Z1_tr), (Z0_te, Z1_te), y_tr, y_te)``;
    with ``world`` > 1 only the rows ``rank::world`` of each split (the same numbers: every
    rank draws every chunk and keeps its rows). ``balanced``: each
    split draws its classes evenly (⌊n/K⌋ or ⌈n/K⌉ each, before the label flips), instead of
    the two splits sharing one even draw.

    Class means near a scaled simplex (separation ≈ 11 vs within-class std ≈ 1 along 2K latent
    directions and 0.3 per coordinate) plus a positive offset; member 0 = ReLU of that,
    member 1 = ReLU(random linear map + noise 0.5). 3% of the labels are flipped so that the
    probes do not see separable data.
    """
    g = torch.Generator().manual_seed(seed)
    n = n_train + n_test
    if balanced:
        y = torch.cat(
            [(torch.arange(m) % classes)[torch.randperm(m, generator=g)] for m in (n_train, n_test)]
        )
    else:
        y = (torch.arange(n) % classes)[torch.randperm(n, generator=g)]
    # float64 products, rounded to float32 at the end: the features do not depend on the
    # thread count of the process that draws them (a float32 product would, in its last bits,
    # and the normal scores and the noise-bulk directions turn that into 1e-3 differences)
    f64 = torch.float64
    simplex = (torch.eye(classes, dtype=f64) - 1.0 / classes) * math.sqrt(classes / (classes - 1))
    latent = min(2 * classes, dim - classes)  # 2K latent directions where d leaves room
    if latent < 1:
        raise ValueError(f"dim={dim} must exceed classes={classes}")
    basis, _ = torch.linalg.qr(torch.randn(dim, classes + latent, generator=g).to(f64))
    class_basis, latent_basis = basis[:, :classes], basis[:, classes:]
    means = 8.0 * (simplex + 0.05 * torch.randn(classes, classes, generator=g)) @ class_basis.T
    means += 0.5 + 0.25 * torch.rand(dim, generator=g)  # offset so ReLU keeps most structure
    linear_map = torch.randn(dim, dim, generator=g).to(f64) / math.sqrt(dim)
    index = torch.arange(n)
    kept = torch.where(index < n_train, index, index - n_train) % world == rank  # rank's rows
    n_kept = int(kept.sum())
    z0, z1 = torch.empty(n_kept, dim), torch.empty(n_kept, dim)
    filled = 0
    for start in range(0, n, 8192):  # every rank draws every row, and computes its own
        sl = slice(start, min(n, start + 8192))
        m = sl.stop - sl.start
        mine = kept[sl]
        draws = [torch.randn(m, c, generator=g)[mine].to(f64) for c in (latent, dim, dim)]
        pre = means[y[sl][mine]] + draws[0] @ latent_basis.T + 0.3 * draws[1]
        out = slice(filled, filled + int(mine.sum()))
        z1[out] = (pre @ linear_map + 0.5 * draws[2]).relu_()
        z0[out] = pre.relu_()
        filled = out.stop
    flip = torch.rand(n, generator=g) < 0.03
    y[flip] = torch.randint(0, classes, (int(flip.sum()),), generator=g)
    y = y[kept]
    t = int(kept[:n_train].sum())
    return (z0[:t], z1[:t]), (z0[t:], z1[t:]), y[:t], y[t:]


# the CUDA warm-up runs every kernel of the intervals once, not their default 20 refits of a
# d x d CCA (about 20 s on an H200 at d = 2,048)
WARM_UP_INTERVALS = IntervalSettings(refits=1, bootstrap=2, permutations=10, null_level=0.1)


class Stages:
    """Wall-clock and process CPU seconds (all threads) per stage, in order of first use."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def add(self, name: str, wall: float, cpu: float) -> None:
        self.wall[name] = self.wall.get(name, 0.0) + wall
        self.cpu[name] = self.cpu.get(name, 0.0) + cpu

    def totals(self) -> tuple[float, float]:
        return sum(self.wall.values()), sum(self.cpu.values())


def _timed(
    stages: Stages, name: str, fn: Callable[[], object], sync: Callable[[], None], show=True
):
    sync()
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    sync()
    stages.add(name, time.perf_counter() - t0, time.process_time() - c0)
    if not show:
        return out
    print(
        f"  {name:<38s} {stages.wall[name]:8.2f} s   cpu {stages.cpu[name]:7.2f} s   "
        f"load {os.getloadavg()[0]:5.2f}",
        flush=True,
    )
    return out


KEYS = (  # the scalars printed (and compared across R in the distributed mode)
    "cca/mean_k/raw",
    "cca/mean_k/normal",
    "cca/mean_k_lo/normal",
    "cca/mean_k_hi/normal",
    "cca/insample/mean_k/normal",
    "gib/beta_tk",
    "etf/cos_mean/tk/m0",
    "nc1/raw/m0",
    "gib/mi_xy",
    "gib/mi_xy_lo",
    "gib/mi_xy_hi",
    "gib/insample/mi_xy",
    "gib/null_rho",
    "ncc/loo_acc/raw/m0",
    "copula_cca/mean_all/m0",
    "probe/test_acc/raw/m0",
    "probe/test_acc/normal/m1",
    "probe/test_acc/tk/m0",
    "nc4/test/tk/m0",
)


def run_ours(pa: PairAnalysis, sync: Callable[[], None], show: bool = True) -> Stages:
    st = Stages()
    timed = partial(_timed, show=show)
    timed(st, "normal scores (2 members x 2 splits)", lambda: [pa.normal(m) for m in (0, 1)], sync)
    # as the engine can when the identifiability group is due: all blocks in one pass
    timed(st, "covariance blocks (raw, normal, copula)", pa.covariances, sync)
    for kind in ("raw", "normal"):
        timed(
            st,
            f"CCA + held-out ({kind})",
            lambda k=kind: (pa.identifiability(k), pa.heldout(k)),
            sync,
        )
    timed(
        st,
        "GIB + T_K (2 members)",
        lambda: [pa.features("tk", m, s) for m in (0, 1) for s in ("train", "test")],
        sync,
    )
    timed(
        st,
        "ETF / NC1 / NCC (full, T_K)",
        lambda: [
            (pa.etf(s, m), pa.nc1(s, m), pa.ncc(s, m, "train"), pa.ncc(s, m, "test"))
            for s in ("raw", "tk")
            for m in (0, 1)
        ],
        sync,
    )
    for kind in ("raw", "normal", "tk"):
        name = f"probes ({kind}, 2 members)"
        probes = timed(st, name, lambda k=kind: [pa.probe(k, m) for m in (0, 1)], sync)
        if show:
            print(f"  {'':<34s} L-BFGS evaluations {[p.n_evals for p in probes]}")
    timed(st, "held-out GIB + null threshold (normal)", pa.heldout_gib_summary, sync)
    if pa.intervals_settings is not None:
        timed(
            st,
            "intervals (raw, normal: refits, bootstrap)",
            lambda: [pa.intervals(k) for k in ("raw", "normal")],
            sync,
        )
    timed(
        st, "copula CCA raw vs normal (2 members)", lambda: [pa.copula_cca(m) for m in (0, 1)], sync
    )
    timed(st, "outputs (NC4, CKA, curves, keys)", lambda: all_outputs(pa), sync)
    return st


def _inv_sqrt(cov: np.ndarray, ridge: float) -> np.ndarray:
    cov = cov + ridge * np.trace(cov) / cov.shape[0] * np.eye(cov.shape[0])
    evals, evecs = np.linalg.eigh(cov)
    return (evecs / np.sqrt(np.clip(evals, 1e-300, None))) @ evecs.T


def run_baseline(train, test, y_tr: np.ndarray, y_te: np.ndarray, k: int, classes: int):
    """The same analysis with numpy/scipy/scikit-learn and Python loops."""
    from scipy.spatial.distance import cdist
    from scipy.stats import norm, rankdata
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    st = Stages()
    res: dict[str, object] = {}

    def t(name, fn):
        return _timed(st, name, fn, lambda: None)

    def normal(ztr, zte):
        n = ztr.shape[0]
        g_tr = norm.ppf(rankdata(ztr, axis=0) / (n + 1))
        g_te = np.empty(zte.shape)
        for j in range(ztr.shape[1]):  # score test against the sorted training column
            col = np.sort(ztr[:, j])
            lo = np.searchsorted(col, zte[:, j], "left")
            hi = np.searchsorted(col, zte[:, j], "right")
            g_te[:, j] = norm.ppf((lo + hi + 1) / (2.0 * (n + 1)))
        return g_tr, g_te

    feats = {"raw": (train, test)}
    feats["normal"] = t(
        "normal scores (2 members x 2 splits)",
        lambda: tuple(zip(*[normal(train[m], test[m]) for m in (0, 1)])),
    )
    for kind in ("raw", "normal"):
        (a, b), (a_te, b_te) = feats[kind]
        d = a.shape[1]
        cov = t(
            f"covariance blocks ({kind})",
            lambda a=a, b=b: np.cov(np.hstack([a, b]).astype(np.float64), rowvar=False),
        )

        def cca(cov=cov, a=a, b=b, a_te=a_te, b_te=b_te, d=d):
            wa, wb = _inv_sqrt(cov[:d, :d], 1e-6), _inv_sqrt(cov[d:, d:], 1e-6)
            u, rho, vt = np.linalg.svd(wa @ cov[:d, d:] @ wb)
            dir_a, dir_b = wa @ u[:, :k], wb @ vt[:k].T
            pa_ = (a_te - a.mean(0)) @ dir_a
            pb_ = (b_te - b.mean(0)) @ dir_b
            held = [np.corrcoef(pa_[:, i], pb_[:, i])[0, 1] for i in range(k)]
            # linear CKA from the same covariance blocks (Kornblith et al. 2019)
            cka = np.linalg.norm(cov[:d, d:]) ** 2 / (
                np.linalg.norm(cov[:d, :d]) * np.linalg.norm(cov[d:, d:])
            )
            return rho, held, wa, u, wb, vt, cka

        res[kind] = t(f"CCA + held-out ({kind})", cca)
    rho, _, wa, u, wb, vt, _ = res["normal"]
    (g0, g1), (g0_te, g1_te) = feats["normal"]

    def gib_tk():  # λ = 1 − ρ², v_i = canonical directions, β just below β_{K+1}
        lam = 1 - rho**2
        beta = 1 / (1 - lam[k]) * (1 - 1e-6)
        alpha = np.sqrt(np.clip(beta * (1 - lam[:k]) - 1, 0, None) / lam[:k])
        out = []
        for g, g_te, proj in ((g0, g0_te, wa @ u[:, :k]), (g1, g1_te, wb @ vt[:k].T)):
            mu = g.mean(0)
            out.append(((g - mu) @ (proj * alpha), (g_te - mu) @ (proj * alpha)))
        return out

    (tk0, tk0_te), (tk1, tk1_te) = t("GIB + T_K (2 members)", gib_tk)

    def nc_loops(h, y, h_te):
        mus = np.stack([h[y == c].mean(0) for c in range(classes)])
        ncc = [cdist(x, mus).argmin(1) for x in (h, h_te)]  # nearest class centre
        mg = mus.mean(0)
        sw = np.zeros((h.shape[1], h.shape[1]))
        for c in range(classes):
            r = h[y == c] - mus[c]
            sw += r.T @ r
        sw /= h.shape[0]
        m = mus - mg
        sb = m.T @ m / classes
        nc1 = np.trace(sw @ np.linalg.pinv(sb)) / classes
        norms = np.linalg.norm(m, axis=1)
        cos = (m @ m.T) / np.outer(norms, norms)
        return nc1, norms.std() / norms.mean(), cos[~np.eye(classes, dtype=bool)].mean(), ncc

    spaces = {"full": (train, test), "tk": ((tk0, tk1), (tk0_te, tk1_te))}
    t(
        "ETF / NC1 / NCC (full, T_K)",
        lambda: [
            nc_loops(np.asarray(spaces[s][0][m], dtype=np.float64), y_tr, spaces[s][1][m])
            for s in spaces
            for m in (0, 1)
        ],
    )
    accs = {}
    for kind, (tr, te) in (
        ("raw", feats["raw"]),
        ("normal", feats["normal"]),
        ("tk", spaces["tk"]),
    ):

        def probes(tr=tr, te=te):
            out = []
            for m in (0, 1):
                sc = StandardScaler().fit(tr[m])
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    clf = LogisticRegression().fit(sc.transform(tr[m]), y_tr)
                out.append(clf.score(sc.transform(te[m]), y_te))
            return out

        accs[kind] = t(f"probes ({kind}, 2 members)", probes)

    def heldout_gib():  # all r train-fitted pairs correlated on test; GIB of that spectrum
        sa = (g0_te - g0.mean(0)) @ (wa @ u)
        sb = (g1_te - g1.mean(0)) @ (wb @ vt.T)
        sa, sb = sa - sa.mean(0), sb - sb.mean(0)
        corr = (sa * sb).sum(0) / np.sqrt((sa * sa).sum(0) * (sb * sb).sum(0))
        rho_t = np.sort(np.clip(corr, 0.0, 1.0))[::-1]
        lam = np.clip(1.0 - rho_t**2, np.finfo(np.float64).eps, 1.0)
        beta = 1.0 / (1.0 - lam[k]) * (1 - 1e-6)
        active = beta > 1.0 / (1.0 - lam[:k])
        i_tx = 0.5 * np.log((beta - 1) * (1 - lam[:k][active]) / lam[:k][active]).sum()
        i_ty = i_tx - 0.5 * np.log(beta * (1 - lam[:k][active])).sum()
        return -0.5 * np.log(lam).sum(), i_tx, i_ty

    res["heldout_gib"] = t("held-out GIB (normal, test split)", heldout_gib)

    def copula():  # per member: CCA of the raw features and their normal scores
        out = []
        for z, g in zip(train, feats["normal"][0], strict=True):
            d = z.shape[1]
            cov = np.cov(np.hstack([z, g]).astype(np.float64), rowvar=False)
            w_z, w_g = _inv_sqrt(cov[:d, :d], 1e-6), _inv_sqrt(cov[d:, d:], 1e-6)
            rho_c = np.linalg.svd(w_z @ cov[:d, d:] @ w_g, compute_uv=False)
            out.append((rho_c[:k].mean(), rho_c.mean()))
        return out

    res["copula"] = t("copula CCA raw vs normal (2 members)", copula)
    return st, res, accs


def second_epoch(pa: PairAnalysis, feats, y_tr, y_te, classes: int, eps: float, seed: int):
    """Probes of the next analysis epoch, from zero and warm-started from ``pa``'s."""
    g = torch.Generator().manual_seed(seed + 1)
    dim = feats[0].shape[1]
    mix = (torch.randn(dim, dim, generator=g) / math.sqrt(dim)).to(feats[0].device)
    moved = [(f + eps * (f @ mix)).relu_() for f in feats]
    pa2 = PairAnalysis((moved[0], moved[1]), (moved[2], moved[3]), y_tr, y_te, classes)
    pa2.covariances(("raw", "normal"))  # the moments the probes reuse (not timed)
    print(f"-- second epoch (features moved by eps={eps}): probes cold vs warm-started --")
    for kind in ("raw", "normal"):
        cov = pa2.covariance(kind)
        for m in (0, 1):
            moments = (cov.mean_a, cov.cov_aa) if m == 0 else (cov.mean_b, cov.cov_bb)
            first = pa.probe(kind, m)
            for name, init in (("cold", None), ("warm", (first.weight, first.bias))):
                t0 = time.perf_counter()
                r = fit_logistic_probe(
                    pa2.features(kind, m, "train"),
                    y_tr,
                    pa2.features(kind, m, "test"),
                    y_te,
                    classes,
                    moments=moments,
                    init=init,
                )
                print(
                    f"  {kind:<6s} m{m} {name}: {time.perf_counter() - t0:6.2f} s, "
                    f"{r.n_evals:3d} evaluations, loss {float(r.loss):.8f}, test acc "
                    f"{float(r.test_acc):.4f}, load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def shard_worker(rank: int, world: int, port: int, args: dict, out_dir: str) -> None:
    """One rank of the distributed mode: its shard of the synthetic split, the analysis timed,
    its memory; writes ``world<R>.rank<r>.json`` into ``out_dir``."""
    import torch.distributed as dist

    cuda = args["device"] == "cuda"
    torch.set_num_threads(args["threads"] or max(1, torch.get_num_threads() // world))
    dev = torch.device("cuda", rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(dev)
    if world > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
    sampler = RssSampler()
    start = sampler.current()  # torch and the interpreter
    n, n_test, dim, k = args["n_train"], args["n_test"], args["dim"], args["classes"]
    (z0, z1), (z0t, z1t), y_tr, y_te = synthetic_pair(
        n, n_test, dim, k, args["seed"], rank, world, args["balanced"]
    )
    dtype = getattr(torch, args["precision"])  # analysis.precision: the features' dtype
    feats = [t.to(dev, dtype) for t in (z0, z1, z0t, z1t)]
    y_tr, y_te = y_tr.to(dev), y_te.to(dev)
    del z0, z1, z0t, z1t

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize(dev)
        if world > 1:
            dist.barrier()

    if cuda:  # CUDA context, handles and kernels on a slice, unsharded, excluded from timing
        small = PairAnalysis(
            (feats[0][:4096], feats[1][:4096]),
            (feats[2][:1024], feats[3][:1024]),
            y_tr[:4096],
            y_te[:1024],
            k,
            intervals=WARM_UP_INTERVALS,
        )
        all_outputs(small)
        del small
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
    sync()
    before = sampler.reset()
    shard = test_shard = None
    if world > 1:
        comm = TorchDistributed()
        shard = Shard(comm, strided_rows(n, rank, world), n)
        test_shard = Shard(comm, strided_rows(n_test, rank, world), n_test)
    intervals = None if args["no_intervals"] else IntervalSettings()
    t0 = time.perf_counter()
    pa = PairAnalysis(
        (feats[0], feats[1]),
        (feats[2], feats[3]),
        y_tr,
        y_te,
        k,
        intervals=intervals,
        shard=shard,
        test_shard=test_shard,
    )
    if rank == 0:
        print(f"-- R = {world}: rank 0's stages --", flush=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stages = run_ours(pa, sync, show=rank == 0)
        scalars = all_outputs(pa)[0]
    wall = time.perf_counter() - t0
    folds = None if intervals is None else intervals.folds
    # both members side by side only in one CPU process with 2+ threads (ncib.engine.memory)
    side = 2 if not cuda and world == 1 and torch.get_num_threads() >= 2 else 1
    result = {
        "rank": rank,
        "world": world,
        "wall": wall,
        "stages_wall": stages.totals()[0],
        "cpu": stages.totals()[1],
        "threads": torch.get_num_threads(),
        "rss_start": start,
        "rss_features": before,
        "rss_peak": sampler.peak,
        "ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "cuda_max": torch.cuda.max_memory_allocated(dev) if cuda else None,
        "model": analysis_memory(
            n,
            n_test,
            dim,
            k,
            world,
            folds,
            side_by_side=side,
            cuda=cuda,
            precision=args["precision"],
        ).total,
        "scalars": {key: float(scalars[key]) for key in KEYS},
    }
    sampler.stop()
    with open(os.path.join(out_dir, f"world{world}.rank{rank}.json"), "w") as f:
        json.dump(result, f)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


def _relative(a: float, b: float) -> float:
    if math.isnan(a) and math.isnan(b):
        return 0.0
    return abs(a - b) / max(abs(b), 1e-12)


def distributed(args: argparse.Namespace) -> None:
    """The ``--world`` mode: every R in turn, then the summary beside the first R."""
    import torch.multiprocessing as mp

    worlds = [int(w) for w in str(args.world).split(",")]
    if args.device == "cuda" and torch.cuda.device_count() < max(worlds):
        raise SystemExit(
            f"--world {max(worlds)} needs {max(worlds)} GPUs; CUDA has {torch.cuda.device_count()}"
        )
    gib = 2**30
    print(
        f"distributed mode: N={args.n_train}+{args.n_test}, d={args.dim}, K={args.classes}, {args.precision}, "
        f"device {args.device} ({'NCCL' if args.device == 'cuda' else 'gloo'}), R in {worlds}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()}",
        flush=True,
    )
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for world in worlds:
            t0 = time.perf_counter()
            mp.spawn(shard_worker, args=(world, _free_port(), vars(args), out), nprocs=world)
            ranks = []
            for r in range(world):
                with open(os.path.join(out, f"world{world}.rank{r}.json")) as f:
                    ranks.append(json.load(f))
            rows.append(ranks)
            print(
                f"   R = {world} done in {time.perf_counter() - t0:.1f} s (with start-up and "
                f"data); load average {os.getloadavg()[0]:.2f}",
                flush=True,
            )
            for res in ranks:
                cuda = "" if res["cuda_max"] is None else f", CUDA max {res['cuda_max'] / gib:.2f}"
                print(
                    f"   rank {res['rank']}: analysis {res['wall']:.2f} s (cpu {res['cpu']:.1f} s, "
                    f"{res['threads']} threads); RSS at start {res['rss_start'] / gib:.2f}, with "
                    f"features {res['rss_features'] / gib:.2f}, peak {res['rss_peak'] / gib:.2f} "
                    f"(+{(res['rss_peak'] - res['rss_start']) / gib:.2f} over the start), "
                    f"ru_maxrss {res['ru_maxrss'] / gib:.2f}{cuda} GiB; modelled "
                    f"{res['model'] / gib:.2f} GiB",
                    flush=True,
                )
    first = rows[0][0]["scalars"]
    print(
        "-- summary (per rank: the slowest analysis time, the largest memory in GiB; '+ start': "
        "peak RSS over the process's RSS before the features, to compare with the model) --"
    )
    print(
        f"  {'R':>3s} {'time s':>8s} {'speed-up':>8s} {'peak RSS':>9s} {'+ start':>8s} {'ru_maxrss':>9s} "
        f"{'CUDA max':>9s} {'model':>7s} {'max rel diff vs R=' + str(worlds[0]):>20s}"
    )
    for ranks in rows:
        wall = max(r["wall"] for r in ranks)
        cmax = [r["cuda_max"] for r in ranks if r["cuda_max"] is not None]
        diff, worst = max(
            (_relative(r["scalars"][key], first[key]), key) for r in ranks for key in KEYS
        )
        print(
            f"  {ranks[0]['world']:>3d} {wall:8.2f} {max(x['wall'] for x in rows[0]) / wall:8.2f} "
            f"{max(r['rss_peak'] for r in ranks) / gib:9.2f} "
            f"{max(r['rss_peak'] - r['rss_start'] for r in ranks) / gib:8.2f} "
            f"{max(r['ru_maxrss'] for r in ranks) / gib:9.2f} "
            f"{(max(cmax) / gib if cmax else float('nan')):9.2f} {ranks[0]['model'] / gib:7.2f} "
            f"{diff:20.2e}" + (f"  ({worst})" if diff > 0 else "")
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--classes", type=int, default=10)
    p.add_argument(
        "--n-train",
        "--train",
        type=int,
        default=50_000,
        help="training samples (the analysed subset)",
    )
    p.add_argument("--n-test", type=int, default=10_000)
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-baseline", action="store_true")
    p.add_argument(
        "--no-intervals",
        action="store_true",
        help="no null threshold, intervals or folds (the held-out numbers alone)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument(
        "--warm-start",
        type=float,
        default=0.0,
        metavar="EPS",
        help="also time the probes of a perturbed 'second epoch' cold and warm-started",
    )
    p.add_argument(
        "--balanced",
        action="store_true",
        help="draw each split's classes evenly (the training split class-balanced)",
    )
    p.add_argument(
        "--world",
        default=None,
        metavar="R[,R...]",
        help="distributed mode: the analysis sharded over R processes, for each R (1: unsharded)",
    )
    p.add_argument(
        "--precision",
        choices=("float32", "float64"),
        default="float32",
        help="distributed mode: the analysis's precision (analysis.precision: the features cast)",
    )
    args = p.parse_args()
    if args.world:
        distributed(args)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    sampler = RssSampler()
    gib = 2**30
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, device {dev}, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, load average {os.getloadavg()}"
    )
    base_rss = sampler.current()
    print(f"RSS before features: {base_rss / gib:.2f} GiB")
    (z0, z1), (z0t, z1t), y_tr, y_te = synthetic_pair(
        args.n_train, args.n_test, args.dim, args.classes, args.seed, balanced=args.balanced
    )
    feats = [t.to(dev) for t in (z0, z1, z0t, z1t)]
    ytr_d, yte_d = y_tr.to(dev), y_te.to(dev)
    sync()
    if cuda:
        # CUDA context, cuBLAS/cuSOLVER handles and kernels load on first use; a run pays
        # this once, at its first analysis epoch. Warm up on a slice, excluded from timing.
        t0 = time.perf_counter()
        small = PairAnalysis(
            (feats[0][:4096], feats[1][:4096]),
            (feats[2][:1024], feats[3][:1024]),
            ytr_d[:4096],
            yte_d[:1024],
            args.classes,
            intervals=WARM_UP_INTERVALS,
        )
        all_outputs(small)
        sync()
        print(f"warm-up on a 4096-sample slice (excluded): {time.perf_counter() - t0:.2f} s")
        del small
        torch.cuda.reset_peak_memory_stats(dev)
        alloc0 = torch.cuda.memory_allocated(dev)
    before = sampler.reset()
    print(
        f"features: N={args.n_train}+{args.n_test}, d={args.dim}, K={args.classes}; "
        f"RSS with features {before / gib:.2f} GiB\n-- ncib.analysis.PairAnalysis --"
    )
    load_before = os.getloadavg()[0]
    pa = PairAnalysis(
        (feats[0], feats[1]),
        (feats[2], feats[3]),
        ytr_d,
        yte_d,
        args.classes,
        intervals=None if args.no_intervals else IntervalSettings(),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ours = run_ours(pa, sync)
    total, total_cpu = ours.totals()
    print(
        f"  {'TOTAL':<38s} {total:8.2f} s   cpu {total_cpu:7.2f} s   "
        f"(load average before {load_before:.2f}, now {os.getloadavg()[0]:.2f})"
    )
    print(
        f"  peak RSS during analysis {sampler.peak / gib:.2f} GiB (+{(sampler.peak - before) / gib:.2f} GiB over the "
        f"features; +{(sampler.peak - base_rss) / gib:.2f} GiB over the pre-feature baseline); "
        f"ru_maxrss so far {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB"
    )
    if cuda:
        print(
            f"  CUDA max_memory_allocated {torch.cuda.max_memory_allocated(dev) / gib:.2f} GiB "
            f"(+{(torch.cuda.max_memory_allocated(dev) - alloc0) / gib:.2f} GiB over the features)"
        )
    print(f"  warnings: {len(caught)} emitted; recorded: {pa.warnings}")
    s = all_outputs(pa)[0]
    for key in KEYS:
        print(f"  {key:<30s} {s[key]: .4f}")
    if args.warm_start:
        second_epoch(pa, feats, ytr_d, yte_d, args.classes, args.warm_start, args.seed)
    if args.skip_baseline:
        return
    print("-- baseline (numpy float64 np.cov + eigh whitening, scipy ranks, sklearn, loops) --")
    np_feats = [t.numpy() for t in (z0, z1, z0t, z1t)]
    sampler.reset()
    base, res, accs = run_baseline(
        np_feats[:2], np_feats[2:], y_tr.numpy(), y_te.numpy(), args.classes, args.classes
    )
    btotal, btotal_cpu = base.totals()
    print(
        f"  {'TOTAL':<38s} {btotal:8.2f} s   cpu {btotal_cpu:7.2f} s   (peak RSS "
        f"{sampler.peak / gib:.2f} GiB, load average now {os.getloadavg()[0]:.2f})"
    )
    print(
        f"speed-up {btotal / total:.1f}x wall, {btotal_cpu / total_cpu:.1f}x cpu  (baseline "
        f"{btotal:.1f} s / ours {total:.1f} s wall; {btotal_cpu:.1f} s / {total_cpu:.1f} s cpu)"
    )
    for kind in ("raw", "normal"):
        diff = np.abs(
            np.asarray(res[kind][0][: args.classes])
            - pa.cca(kind).rho[: args.classes].cpu().numpy()
        ).max()
        print(f"  max |rho_k(ours) - rho_k(baseline)| ({kind}): {diff:.2e}")
    for kind in ("raw", "normal"):
        print(f"  CKA ({kind}): baseline {res[kind][6]:.10f}, ours {s[f'cka/{kind}']:.10f}")
    for m in (0, 1):
        mk, ma = res["copula"][m]
        print(
            f"  copula CCA m{m} mean_k / mean_all: baseline {mk:.8f} / {ma:.8f}, ours "
            f"{s[f'copula_cca/mean_k/m{m}']:.8f} / {s[f'copula_cca/mean_all/m{m}']:.8f}"
        )
    mi_b, _, _ = res["heldout_gib"]
    print(
        f"  held-out I(X;Y): baseline {mi_b:.6f}, ours {s['gib/mi_xy']:.6f} nats (ours counts "
        "only correlations above the null threshold)"
    )
    for kind, acc in accs.items():
        print(
            f"  probe test acc {kind}: sklearn {acc}, ours "
            f"{[round(s[f'probe/test_acc/{kind}/m{m}'], 4) for m in (0, 1)]}"
        )
    sampler.stop()


if __name__ == "__main__":
    main()
