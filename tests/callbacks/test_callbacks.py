"""The analysis callback through real (tiny) fits: schedule, groups, shared features, records."""

from __future__ import annotations

import pytest
import torch

from ncib.callbacks import PairAnalysisCallback
from ncib.data import DigitsDataModule
from ncib.engine.checkpoints import list_analysis_checkpoints, load_weights
from ncib.engine.plan import ANALYSIS_GROUPS, DEFAULT_GROUPS
from ncib.metrics import keys
from ncib.rundir.records import RECORDS_FILE, read_records
from tests.helpers.builders import quiet_trainer, tiny_pair


def tiny_model():
    return tiny_pair([0, 1], feature_dim=24, momentum=0.9)


def fit(callbacks, root, epochs=3, model=None, loggers=False):
    trainer = quiet_trainer(
        max_epochs=epochs,
        logger=loggers,
        callbacks=callbacks,
        default_root_dir=str(root),
        limit_train_batches=2,
    )
    model = model or tiny_model()
    trainer.fit(model, datamodule=DigitsDataModule(seeds=[0, 1], batch_size=128))
    return trainer, model


def make(*groups, **kw):
    """The callback for ``groups`` (default: the default groups), analysing epochs 0 and 2
    unless told."""
    plan = {"epochs": [0, 2], "progress": False, "groups": list(groups or DEFAULT_GROUPS)}
    return PairAnalysisCallback(plan | kw)


def test_the_groups_are_the_registry_analysis_groups():
    assert ANALYSIS_GROUPS == ("identifiability", "gib", "simplex_etf", "classifier")
    assert DEFAULT_GROUPS == ("identifiability", "gib", "simplex_etf")
    assert make().groups == DEFAULT_GROUPS
    assert make("simplex_etf", "gib").groups == ("gib", "simplex_etf")  # the registry's order


@pytest.mark.parametrize("group", DEFAULT_GROUPS)  # classifier: tests/engine/test_classifier.py
def test_callback_acts_only_on_its_epochs_logs_its_documented_keys_and_survives_a_second_fit(
    group, tmp_path
):
    callback = make(group)
    fit([callback], tmp_path)
    records = read_records(tmp_path / RECORDS_FILE)
    assert [r["epoch"] for r in records] == [0, 2]
    for r in records:
        assert set(r) >= {"epoch", "global_step", "num_classes", "k", group}
        assert not (set(ANALYSIS_GROUPS) - {group}) & set(r)
        assert set(r[group]["scalars"]) == set(keys(group))
        assert set(r[group]) - {"scalars"} == set(keys(group, scalars=False))
        assert all(isinstance(v, float) for v in r[group]["scalars"].values())
    assert records[0]["global_step"] == 0 and records[1]["global_step"] == 4
    fit([callback], tmp_path, epochs=2)  # the same callback object, a new trainer
    assert [r["epoch"] for r in read_records(tmp_path / RECORDS_FILE)] == [0, 2, 0, 2]


def test_features_are_extracted_once_per_analysis_epoch_whatever_the_groups(tmp_path, monkeypatch):
    model = tiny_model()
    calls = []
    original = model.features
    monkeypatch.setattr(model, "features", lambda x: calls.append(len(x)) or original(x))
    fit([make(epochs=[1, 3])], tmp_path, epochs=3, model=model)
    # eval_batch_size 1024: train 1437 rows = 2 batches, test 360 rows = 1 batch; 2 epochs
    assert calls == [1024, 413, 360] * 2
    records = read_records(tmp_path / RECORDS_FILE)
    assert [r["epoch"] for r in records] == [1, 3]
    assert all(set(DEFAULT_GROUPS) <= set(r) for r in records)


def test_leaving_a_group_out_removes_exactly_its_keys(tmp_path):
    fit([make()], tmp_path / "all")
    without = [g for g in DEFAULT_GROUPS if g != "gib"]
    fit([make(*without)], tmp_path / "no_gib")
    full, partial_ = (
        read_records(tmp_path / "all" / RECORDS_FILE),
        read_records(tmp_path / "no_gib" / RECORDS_FILE),
    )
    assert len(full) == len(partial_) == 2
    for a, b in zip(full, partial_, strict=True):
        assert set(a) - set(b) == {"gib"}
        for g in without:
            assert a[g]["scalars"].keys() == b[g]["scalars"].keys()
            torch.testing.assert_close(a[g]["scalars"], b[g]["scalars"])


def test_scalars_reach_the_loggers_under_analysis(tmp_path):
    from pytorch_lightning.loggers import CSVLogger

    logger = CSVLogger(tmp_path, name="csv", version="")
    fit([make("identifiability")], tmp_path, loggers=[logger])
    text = (tmp_path / "csv" / "metrics.csv").read_text()
    assert "analysis/cca/mean_k/raw" in text and "analysis/epoch" in text


def test_weights_are_kept_at_each_analysis_epoch_and_reload_safely(tmp_path):
    _, model = fit([make(epochs=[0, 3])], tmp_path, epochs=3)
    saved = list_analysis_checkpoints(tmp_path)
    assert [e for e, _ in saved] == [0, 3]
    last = load_weights(saved[-1][1])  # weights_only=True inside
    assert last["epoch"] == 3 and last["global_step"] == 6
    for name, value in model.state_dict().items():
        torch.testing.assert_close(last["state_dict"][name], value, atol=0, rtol=0)
    first = load_weights(saved[0][1])["state_dict"]
    assert not torch.equal(
        first["members.0.encoder.net.0.0.weight"],
        last["state_dict"]["members.0.encoder.net.0.0.weight"],
    )
    # analysis.checkpoints=false keeps none
    fit([make(checkpoints=False)], tmp_path / "none")
    assert list_analysis_checkpoints(tmp_path / "none") == []


def test_a_second_analysis_callback_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="2 analysis callbacks"):
        fit([make("identifiability"), make("gib", max_samples=100)], tmp_path)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"groups": ["gib", "nc"]}, "'nc' unknown"),
        ({"groups": []}, "non-empty list"),
        ({"epochs": None, "every_n_epochs": 0}, r"analysis.every_n_epochs=0 .*>= 1"),
        ({"epochs": [2, -1]}, r"analysis.epochs=\[2, -1\] .*\[0, trainer.max_epochs\]"),
        ({"ridge": -1.0}, r"analysis.ridge=-1.0 .*a number >= 0"),
        ({"k": 0}, "analysis.k must be an integer >= 1"),
    ],
)
def test_a_bad_plan_is_an_error_naming_the_key_and_value(change, match):
    with pytest.raises(ValueError, match=match):
        make(**change)
