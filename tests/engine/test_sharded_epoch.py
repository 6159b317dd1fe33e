"""The analysis of a pair at an epoch shared over R ranks gives the record of one process, on
the bundled digits: each rank extracts and keeps its shard of both splits (docs/design.md §3a). Ranks are threads here; ``tests/engine/test_sharded_processes.py`` (slow)
uses gloo processes.

In float64 the two agree to rounding (1e-9 asserted). In the engine's float32 they agree to
1e-6 wherever float32 resolves the quantity that well: where it does not (the T_K scalings of
an untrained encoder, ~3e-5), the sharded record must be as close to the float64 analysis of
the same features as the single-process record is. The summation order differs between the
two, so neither float32 record is more exact than the other (docs/design.md §3a).
"""

from __future__ import annotations

import math

import pytest
import torch
from hydra.utils import instantiate

from ncib.analysis import PairAnalysis
from ncib.engine import AnalysisSettings, PairEpochAnalysis
from ncib.engine.features import extract_pair_features
from ncib.metrics.outputs import DEFAULT_GROUPS, group_outputs
from ncib.rundir.records import read_records
from tests.conftest import compose_config
from tests.helpers.ranks import ThreadRanks, thread_shard

RTOL, ATOL = 1e-6, 1e-9


@pytest.fixture(scope="module")
def digits_pair(tmp_path_factory):
    cfg = compose_config([], output_dir=tmp_path_factory.mktemp("run"))
    dm = instantiate(cfg.dataset.datamodule)
    dm.setup("fit")
    return instantiate(cfg.model).eval(), dm


def scalars(record: dict) -> dict[str, float]:
    return {
        f"{group}/{name}": value
        for group in DEFAULT_GROUPS
        for name, value in record[group]["scalars"].items()
    }


def analysed(
    feats, settings: AnalysisSettings, dtype, shard=None, test_shard=None
) -> dict[str, float]:
    train, y, test, y_test = feats.train, feats.y_train, feats.test, feats.y_test
    if shard is not None:
        train, y = tuple(z[shard.rows] for z in train), y[shard.rows]
    if test_shard is not None:
        test, y_test = tuple(z[test_shard.rows] for z in test), y_test[test_shard.rows]
    pa = PairAnalysis(
        tuple(z.to(dtype) for z in train),
        tuple(z.to(dtype) for z in test),
        y,
        y_test,
        10,
        ridge=settings.ridge,
        intervals=settings.intervals,
        shard=shard,
        test_shard=test_shard,
    )
    return {
        f"{group}/{name}": value
        for group in DEFAULT_GROUPS
        for name, value in group_outputs(pa, group)[0].items()
    }


def relative(a: float, b: float) -> float:
    if (a is None and b is None) or a == b or (math.isnan(a) and math.isnan(b)):
        return 0.0
    return abs(a - b) / max(abs(a), abs(b))


def one_and_three_ranks(digits_pair, settings: AnalysisSettings, out) -> tuple[dict, list]:
    """The epoch-0 record of one process (into ``out/one``) and those of three thread ranks
    (``out/three``)."""
    pair, dm = digits_pair
    one = PairEpochAnalysis(out / "one", settings).run(pair, dm, 0, 0, DEFAULT_GROUPS, device="cpu")
    ranks = ThreadRanks(3)

    def work(r):
        engine = PairEpochAnalysis(out / "three", settings, collective=ranks.comm(r))
        return engine.run(pair, dm, 0, 0, DEFAULT_GROUPS, device="cpu")

    return one, ranks.run(work)


def test_a_sharded_epoch_analysis_of_digits_writes_the_record_of_one_process(digits_pair, tmp_path):
    pair, dm = digits_pair
    settings = AnalysisSettings(max_samples=None)
    one, records = one_and_three_ranks(digits_pair, settings, tmp_path)
    written = read_records(tmp_path / "three" / "analysis.jsonl")
    assert len(written) == 1  # rank 0 alone writes
    assert written[0]["num_train"] == one["num_train"] == 1437
    assert (written[0]["ranks"], one["ranks"]) == (3, 1)
    # the float64 analysis of the same features: what float32 rounds
    feats = extract_pair_features(pair, dm, torch.device("cpu"), progress=False)
    exact = analysed(feats, settings, torch.float64)
    want = scalars(one)
    assert want.keys() == exact.keys()
    for record in records:
        got = scalars(record)
        assert got.keys() == want.keys()
        differ = [
            (key, want[key], got[key], exact[key])
            for key in want
            if not (
                want[key] is None
                or math.isclose(got[key], want[key], rel_tol=RTOL, abs_tol=ATOL)
                # below float32's resolution of the quantity: no further from float64 than
                # the single-process record (4x: the two round independently)
                or relative(got[key], exact[key]) <= RTOL + 4 * relative(want[key], exact[key])
            )
        ]
        assert not differ, f"{len(differ)} of {len(want)} scalars differ: {differ[:10]}"


@pytest.mark.parametrize("world", [2, 3])
def test_in_float64_a_sharded_analysis_of_digits_features_equals_one_process(digits_pair, world):
    pair, dm = digits_pair
    feats = extract_pair_features(pair, dm, torch.device("cpu"), progress=False)
    settings = AnalysisSettings()
    want = analysed(feats, settings, torch.float64)
    ranks = ThreadRanks(world)
    n, n_test = len(feats.y_train), len(feats.y_test)
    for got in ranks.run(
        lambda r: analysed(
            feats,
            settings,
            torch.float64,
            thread_shard(ranks, r, n),
            thread_shard(ranks, r, n_test),
        )
    ):
        differ = [(k, want[k], got[k]) for k in want if relative(got[k], want[k]) > 1e-9]
        assert not differ, differ[:10]


def test_with_float64_precision_the_records_of_one_and_three_ranks_agree_to_1e_9(
    digits_pair, tmp_path
):
    """analysis.precision=float64: the engine casts the features once, and the record of three
    ranks equals that of one process to rounding — the issue's 1e-6 with room to spare, where
    float32 records differ by up to 6e-5 (the test above)."""
    pair, dm = digits_pair
    settings = AnalysisSettings(precision="float64")
    one, records = one_and_three_ranks(digits_pair, settings, tmp_path)
    want = scalars(one)
    assert one["settings"]["precision"] == "float64"
    feats = extract_pair_features(pair, dm, torch.device("cpu"), progress=False)
    assert want == pytest.approx(analysed(feats, settings, torch.float64), rel=1e-12, nan_ok=True)
    for record in records:
        got = scalars(record)
        differ = [(k, want[k], got[k]) for k in want if relative(got[k], want[k]) > 1e-9]
        assert not differ, f"{len(differ)} of {len(want)} scalars differ: {differ[:10]}"
