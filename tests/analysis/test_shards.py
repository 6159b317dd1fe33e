"""The analysis shared over ranks equals the analysis of one process (docs/design.md §3a).

A synthetic split of N = 301 training and N_t = 151 test rows (multiples of neither 2 nor 3)
with ties in a column and one class present only in rank 0's strided shard of either split is
analysed whole and in R = 2, 3 shards (the test split held whole on every rank, or sharded
too); every metric of every group must agree to 1e-6 (relative; 1e-9 absolute near zero), the
normal scores exactly, and no rank may keep a tensor with as many rows as a whole split. Ranks
are threads here (:mod:`tests.helpers.ranks`); ``test_sharded_processes.py`` runs the same with
gloo processes (slow).
"""

from __future__ import annotations

import dataclasses
import math
import threading

import pytest
import torch

from ncib.analysis import IntervalSettings, PairAnalysis, fit_logistic_probe
from ncib.analysis.copula import normal_scores_train_test, sharded_normal_scores
from ncib.analysis.shards import Shard, SingleProcess, strided_rows
from ncib.metrics.outputs import ANALYSIS_GROUPS, group_outputs
from tests.helpers.ranks import ThreadRanks, thread_shard

N, N_TEST, D, K = 301, 151, 12, 7
RTOL, ATOL = 1e-6, 1e-9


def planted(seed: int = 0):
    """Two members sharing a class structure and a common signal; class K-1 only on rows
    0, 3, 6, 9 of each split (absent from shards 1 and 2 of three); column 3 of member 0
    rounded (ties)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, K - 1, (N,), generator=g)
    y[torch.tensor([0, 3, 6, 9])] = K - 1
    y_test = torch.randint(0, K - 1, (N_TEST,), generator=g)
    y_test[torch.tensor([0, 3, 6, 9])] = K - 1
    means = 3 * torch.randn(K, D, generator=g)
    labels = torch.cat([y, y_test])
    shared = torch.randn(N + N_TEST, D, generator=g)
    z0 = means[labels] + shared + 0.5 * torch.randn(N + N_TEST, D, generator=g)
    mix = torch.randn(D, D, generator=g)
    z1 = (means[labels] + shared) @ mix + 0.5 * torch.randn(N + N_TEST, D, generator=g)
    z0[:, 3] = z0[:, 3].round()
    rows = [torch.randn(K, D, generator=g) for _ in range(2)]
    return (z0[:N], z1[:N]), (z0[N:], z1[N:]), y, y_test, rows


def analysis(shard: Shard | None = None, test_shard: Shard | None = None) -> PairAnalysis:
    train, test, y, y_test, rows = planted()
    if shard is not None:
        train, y = tuple(z[shard.rows] for z in train), y[shard.rows]
    if test_shard is not None:
        test, y_test = tuple(z[test_shard.rows] for z in test), y_test[test_shard.rows]
    return PairAnalysis(
        train, test, y, y_test, K, k=5, classifier=rows, shard=shard, test_shard=test_shard
    )


def sharded(ranks: ThreadRanks, r: int, test: bool = True) -> PairAnalysis:
    """Rank r's analysis: its strided shard of the training split and, with ``test``, of the
    test split (else the whole test split)."""
    return analysis(thread_shard(ranks, r, N), thread_shard(ranks, r, N_TEST) if test else None)


def every_metric(pa: PairAnalysis) -> dict[str, float]:
    out = {}
    for group in ANALYSIS_GROUPS:
        out |= {f"{group}/{name}": v for name, v in group_outputs(pa, group)[0].items()}
    return out


def assert_same_record(got: dict[str, float], want: dict[str, float]) -> None:
    assert got.keys() == want.keys()
    differ = [
        (key, want[key], got[key])
        for key in want
        if not (
            (math.isnan(want[key]) and math.isnan(got[key]))
            or math.isclose(got[key], want[key], rel_tol=RTOL, abs_tol=ATOL)
        )
    ]
    assert not differ, f"{len(differ)} of {len(want)} metrics differ: {differ[:10]}"


def tensors(value, seen=None):
    """Every tensor reachable from a cached value (dataclasses, tuples, lists, dicts)."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return
    seen.add(id(value))
    if isinstance(value, torch.Tensor):
        yield value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from tensors(getattr(value, f.name), seen)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from tensors(v, seen)
    elif isinstance(value, dict):
        for v in value.values():
            yield from tensors(v, seen)


@pytest.fixture(scope="module")
def whole():
    return every_metric(analysis())


@pytest.mark.parametrize("test", [True, False], ids=["test-sharded", "test-whole"])
@pytest.mark.parametrize("world", [2, 3])
def test_every_metric_of_a_sharded_analysis_equals_one_process(whole, world, test):
    ranks = ThreadRanks(world)
    results = ranks.run(lambda r: every_metric(sharded(ranks, r, test)))
    for got in results:
        assert_same_record(got, whole)


def test_no_rank_keeps_a_tensor_with_a_whole_split():
    ranks = ThreadRanks(3)

    def work(r):
        pa = sharded(ranks, r)
        every_metric(pa)
        return pa

    for r, pa in enumerate(ranks.run(work)):
        held = list(tensors(pa._cache)) + list(tensors(pa.raw))
        assert held, "the analysis cached nothing"
        for split, total in (("train", N), ("test", N_TEST)):
            local = len(strided_rows(total, r, 3))
            assert pa.features("normal", 0, split).shape[0] == local
            assert pa.features("tk", 1, split).shape[0] == local
            assert pa.test_variates("normal")[0].shape[0] == local or split == "train"
        too_big = [tuple(t.shape) for t in held if t.ndim and max(t.shape) >= N_TEST]
        assert not too_big, f"rank {r} keeps tensors with >= N_t={N_TEST} rows: {too_big}"


@pytest.mark.parametrize("test", [True, False], ids=["test-sharded", "test-whole"])
@pytest.mark.parametrize(("world", "d"), [(2, 12), (3, 12), (3, 2)])
def test_sharded_normal_scores_are_exactly_those_of_one_process(world, d, test):
    train, test_split, *_ = planted()
    z, z_test = train[0][:, :d].contiguous(), test_split[0][:, :d].contiguous()
    want_train, want_test = normal_scores_train_test(z, z_test)
    ranks = ThreadRanks(world)

    def work(r):
        shard = thread_shard(ranks, r, N)
        if not test:
            return (
                shard.rows,
                torch.arange(N_TEST),
                *sharded_normal_scores(z[shard.rows], z_test, shard),
            )
        tshard = thread_shard(ranks, r, N_TEST)
        scores = sharded_normal_scores(z[shard.rows], z_test[tshard.rows], shard, tshard)
        return shard.rows, tshard.rows, *scores

    for rows, test_rows, got_train, got_test in ranks.run(work):
        assert torch.equal(got_train, want_train[rows])  # ties included (column 3)
        assert torch.equal(got_test, want_test[test_rows])


def test_a_sharded_probe_fits_the_same_optimum():
    train, test, y, y_test, _ = planted()
    want = fit_logistic_probe(train[0], y, test[0], y_test, num_classes=K)
    ranks = ThreadRanks(2)

    def work(r):
        shard, tshard = thread_shard(ranks, r, N), thread_shard(ranks, r, N_TEST)
        got = fit_logistic_probe(
            train[0][shard.rows],
            y[shard.rows],
            test[0][tshard.rows],
            y_test[tshard.rows],
            num_classes=K,
            shard=shard,
            test_shard=tshard,
        )
        return got, tshard.rows

    for got, test_rows in ranks.run(work):
        torch.testing.assert_close(got.loss, want.loss, rtol=RTOL, atol=0)  # L-BFGS tolerances
        assert float(got.train_acc) == float(want.train_acc)
        assert float(got.test_acc) == float(want.test_acc)  # the hits of both ranks
        assert torch.equal(got.test_pred, want.test_pred[test_rows])
        torch.testing.assert_close(got.weight, want.weight, rtol=1e-4, atol=1e-6)


def test_shards_that_do_not_partition_the_split_are_refused():
    with pytest.raises(ValueError, match="hold 3 rows in all, not total=4"):
        Shard(SingleProcess(), torch.arange(3), 4)
    with pytest.raises(ValueError, match=r"must lie in \[0, total=3\)"):
        Shard(SingleProcess(), torch.tensor([0, 1, 3]), 3)
    with pytest.raises(ValueError, match="1-D int64"):
        Shard(SingleProcess(), torch.arange(3.0), 3)
    train, test, y, y_test, _ = planted()
    with pytest.raises(ValueError, match="one process must list rows 0..N-1 in order"):
        PairAnalysis(
            train, test, y, y_test, K, shard=Shard(SingleProcess(), torch.arange(N).flip(0), N)
        )
    ranks = ThreadRanks(2)

    def wrong_rows(r):
        shard = thread_shard(ranks, r, N)
        return PairAnalysis(train, test, y, y_test, K, shard=shard)  # the whole split, not a shard

    with pytest.raises(ValueError, match=r"the shard lists 15[01] rows but train\[0\] has 301"):
        ranks.run(wrong_rows)


@pytest.mark.parametrize("test", [True, False], ids=["test-sharded", "test-whole"])
def test_the_refits_are_dealt_out_over_the_ranks(monkeypatch, test):
    from ncib.analysis import intervals

    fitted: dict[int, int] = {}
    original = intervals.cca_from_covariance

    def counted(*args):
        rank = int(threading.current_thread().name.split("-")[-1])
        fitted[rank] = fitted.get(rank, 0) + 1
        return original(*args)

    monkeypatch.setattr(intervals, "cca_from_covariance", counted)
    ranks = ThreadRanks(3)
    ranks.run(lambda r: sharded(ranks, r, test).intervals("normal"), name="rank")
    refits = IntervalSettings().refits  # 20: ranks 0, 1, 2 fit 7, 7, 6
    assert fitted == {r: len(range(r, refits, 3)) for r in range(3)}


def test_the_decompositions_are_dealt_out_not_repeated(monkeypatch):
    """CCA (raw, normal), GIB and copula CCA (both members): each computed by one rank and
    broadcast; every rank still ends with every result."""
    from ncib.analysis import pair

    done: dict[str, list[int]] = {}

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            done.setdefault(name, []).append(int(threading.current_thread().name.split("-")[-1]))
            return fn(*args, **kwargs)

        return wrapper

    for name in ("cca_from_covariance", "gib_from_cca", "copula_cca_from_factors"):
        monkeypatch.setattr(pair, name, counted(name, getattr(pair, name)))
    ranks = ThreadRanks(2)

    def work(r):
        pa = sharded(ranks, r)
        every_metric(pa)
        return [pa.cca(kind).rho for kind in ("raw", "normal")] + [pa.gib(1).lam]

    results = ranks.run(work, name="rank")
    assert {name: sorted(r) for name, r in done.items()} == {
        "cca_from_covariance": [0, 1],  # raw on rank 0, normal on rank 1
        "gib_from_cca": [0, 1],
        "copula_cca_from_factors": [0, 1],
    }
    for got, want in zip(results[0], results[1], strict=True):
        assert torch.equal(got, want)


def test_a_broadcast_result_arrives_whole_and_refuses_what_it_cannot_send():
    from ncib.analysis.shards import broadcast_result

    @dataclasses.dataclass(frozen=True)
    class Result:
        values: torch.Tensor
        index: torch.Tensor
        beta: float
        n: int
        note: str | None
        warnings: tuple[str, ...] = ()

    sent = Result(
        torch.tensor([[1.5, math.inf], [math.nan, -2.0]], dtype=torch.float64),
        torch.arange(3),
        math.inf,
        7,
        None,
        ("one", "two"),
    )
    ranks = ThreadRanks(3)
    got = ranks.run(
        lambda r: broadcast_result(sent if r == 1 else None, Result, 1, ranks.comm(r), "cpu")
    )
    for value in got:
        assert torch.equal(value.values.nan_to_num(), sent.values.nan_to_num())
        assert bool(value.values[1, 0].isnan()) and value.index.dtype == torch.int64
        assert torch.equal(value.index, sent.index)
        assert (value.beta, value.n, value.note, value.warnings) == (
            math.inf,
            7,
            None,
            ("one", "two"),
        )

    @dataclasses.dataclass(frozen=True)
    class Nested:
        inner: object

    with pytest.raises(TypeError, match="cannot send a field of type Result"):
        broadcast_result(Nested(sent), Nested, 0, SingleProcess(), "cpu")


def test_the_ib_dimension_curve_of_a_sharded_analysis_equals_one_process():
    from ncib.analysis.ib_dimension import ib_dimension_curve

    def curve(pa):
        return [
            (p.probe_train_acc, p.probe_test_acc, p.ncc_test_acc, p.nc4_test)
            for p in ib_dimension_curve(pa, 1, [1, 3, 5])
        ]

    want = curve(analysis())
    ranks = ThreadRanks(2)
    for got in ranks.run(lambda r: curve(sharded(ranks, r))):
        assert got == pytest.approx(want, rel=RTOL)
