"""The ``classifier`` analysis group through the engine: the plan accepts it but does not
default to it, the engine reads ``classifier_rows()`` once and records NC2/NC3 per member, a
pair without a classifier is refused before any feature is extracted (at the callback's setup
in training), and ``python -m ncib.analyse`` re-analyses the checkpointed classifier."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

import ncib.engine.epoch as epoch_module
from ncib.engine import AnalysisSettings, PairEpochAnalysis
from ncib.engine.features import PairFeatures
from ncib.engine.plan import ANALYSIS_GROUPS, DEFAULT_GROUPS, analysis_plan
from ncib.metrics import keys
from ncib.models import PairedSupCon
from ncib.rundir.records import read_records
from tests.helpers.reference import classifier_collapse, discriminating_pair

K = 4
REFUSED = re.compile(
    r"analysis group 'classifier' \(NC2 of the classifier rows, NC3\) needs the members' linear "
    r"classifiers, but (?P<what>.+): only objective=ce or objective=mse trains one \(supcon and "
    r"simclr do not\); choose objective=ce or mse, or drop 'classifier' from analysis.groups"
)


class ClassifierPair(PairedSupCon):
    """A stand-in for the pair of an objective with a classifier (ce, mse): PairedSupCon plus one
    linear classifier per member on its encoder features, exposed by ``classifier_rows()``."""

    def __init__(self, *args, num_classes: int = 10, **kwargs):
        super().__init__(*args, **kwargs)
        self.classifiers = nn.ModuleList(
            nn.Linear(m.encoder.feature_dim, num_classes) for m in self.members
        )

    def classifier_rows(self) -> list[torch.Tensor]:
        return [c.weight for c in self.classifiers]


@pytest.fixture
def features(monkeypatch):
    """The discriminating pair's features in place of an extraction; ``calls`` counts them."""
    train, test, y, y_test = discriminating_pair()
    feats = PairFeatures(
        train, test, y, y_test, {"train": torch.arange(len(y)), "test": torch.arange(len(y_test))}
    )
    calls = []
    monkeypatch.setattr(
        epoch_module, "extract_pair_features", lambda *a, **kw: calls.append(1) or feats
    )
    return SimpleNamespace(train=train, y=y, calls=calls)


def engine(tmp_path):
    return PairEpochAnalysis(tmp_path, AnalysisSettings(progress=False, intervals=None))


DATA = SimpleNamespace(num_classes=K, setup=lambda stage: None)


def test_the_plan_knows_the_group_but_does_not_default_to_it():
    assert ANALYSIS_GROUPS[-1] == "classifier" and "classifier" not in DEFAULT_GROUPS
    assert analysis_plan({"every_n_epochs": 1}).groups == DEFAULT_GROUPS
    plan = analysis_plan({"every_n_epochs": 1, "groups": ["classifier", "simplex_etf"]})
    assert plan.groups == ("simplex_etf", "classifier")


def test_the_record_holds_each_members_nc2_and_nc3_from_rows_read_once(tmp_path, features):
    g = torch.Generator().manual_seed(3)
    rows = [torch.randn(K, z.shape[1], generator=g, requires_grad=True) for z in features.train]
    reads = []
    pair = SimpleNamespace(
        members=[None, None], classifier_rows=lambda: reads.append(1) or list(rows)
    )
    record = engine(tmp_path).run(pair, DATA, 2, 20, ["classifier"], device="cpu")
    assert reads == [1] and features.calls == [1]
    part = record["classifier"]
    assert set(part) == {"scalars"} and set(part["scalars"]) == set(keys("classifier"))
    assert set(record) & set(ANALYSIS_GROUPS) == {"classifier"}
    for m, name in enumerate(("m0", "m1")):
        want = classifier_collapse(
            features.train[m].numpy(), features.y.numpy(), K, rows[m].detach().double().numpy()
        )
        for template, field in (
            ("classifier/equinorm/{m}", "equinorm"),
            ("classifier/cos_mean/{m}", "cos_mean"),
            ("classifier/cos_std/{m}", "cos_std"),
            ("classifier/cos_dev/{m}", "cos_dev"),
            ("nc3/{m}", "nc3"),
            ("nc3/cos_mean/{m}", "nc3_cos"),
        ):
            got = part["scalars"][template.format(m=name)]
            assert got == pytest.approx(want[field], rel=1e-10), template
    (stored,) = read_records(tmp_path / "analysis.jsonl")
    assert stored["classifier"]["scalars"] == pytest.approx(part["scalars"], rel=1e-15)


def test_the_default_groups_never_touch_classifier_rows(tmp_path, features):
    def refuse():
        raise AssertionError("classifier_rows() read although 'classifier' was not asked for")

    pair = SimpleNamespace(members=[None, None], classifier_rows=refuse)
    record = engine(tmp_path).run(pair, DATA, 0, 0, ["simplex_etf"], device="cpu")
    assert "classifier" not in record


@pytest.mark.parametrize(
    ("pair", "what"),
    [
        (SimpleNamespace(members=[None, None]), "SimpleNamespace has no classifier_rows()"),
        (
            SimpleNamespace(members=[None, None], classifier_rows=lambda: None),
            "SimpleNamespace.classifier_rows() returned None",
        ),
    ],
    ids=["no method", "returns None"],
)
def test_a_pair_without_a_classifier_is_refused_before_extraction(tmp_path, features, pair, what):
    with pytest.raises(ValueError, match=REFUSED) as err:
        engine(tmp_path).run(pair, DATA, 0, 0, ["simplex_etf", "classifier"], device="cpu")
    assert REFUSED.search(str(err.value))["what"] == what
    assert features.calls == [] and not (tmp_path / "analysis.jsonl").exists()


def test_rows_of_the_wrong_kind_are_named(tmp_path, features):
    one = SimpleNamespace(members=[None, None], classifier_rows=lambda: [torch.ones(K, 8)])
    with pytest.raises(ValueError, match=r"returned \[\(4, 8\)\]: it must return a list of one"):
        engine(tmp_path).run(one, DATA, 0, 0, ["classifier"], device="cpu")
    wrong_k = SimpleNamespace(
        members=[None, None], classifier_rows=lambda: [torch.ones(K + 1, 8), torch.ones(K, 10)]
    )
    with pytest.raises(ValueError, match=r"member 0: classifier rows have shape \(5, 8\)"):
        engine(tmp_path).run(wrong_k, DATA, 0, 0, ["classifier"], device="cpu")


def test_training_with_the_group_and_no_classifier_is_refused_at_setup(tmp_path):
    from ncib.callbacks import PairAnalysisCallback
    from tests.helpers.builders import tiny_pair

    callback = PairAnalysisCallback({"epochs": [0], "groups": ["classifier"], "progress": False})
    trainer = SimpleNamespace(callbacks=[callback], default_root_dir=str(tmp_path))
    with pytest.raises(ValueError, match=REFUSED):
        callback.setup(trainer, tiny_pair(), "fit")


def test_python_m_ncib_analyse_re_analyses_the_checkpointed_classifier(tmp_path, monkeypatch):
    """A run directory of a pair with classifiers and ``analysis.groups=[classifier]``: the
    re-analysis loads the saved weights (not a fresh classifier) and records NC2/NC3 of them."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from ncib.analyse import analyse_run
    from ncib.engine.checkpoints import analysis_checkpoint_path, save_weights
    from tests.conftest import compose_config

    monkeypatch.setenv("NCIB_TRUSTED_TARGETS", f"{__name__}.ClassifierPair")  # a test's class
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    overrides = [
        f"model._target_={__name__}.ClassifierPair",
        "+model.num_classes=10",
        "model.compile=false",
        "model.channels_last=false",
        "analysis.groups=[classifier]",
        "analysis.max_samples=400",
        "analysis.progress=false",
    ]
    cfg = compose_config(overrides, output_dir=run)
    (run / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    model = instantiate(cfg.model)
    with torch.no_grad():
        for c in model.classifiers:
            c.weight.mul_(torch.linspace(0.2, 3.0, 10)[:, None])  # unlike any fresh init
    save_weights(analysis_checkpoint_path(run, 4), model, epoch=4, global_step=40)

    path = analyse_run(run, name="nc3", device="cpu")
    (record,) = read_records(path)
    assert record["epoch"] == 4 and set(record) & set(ANALYSIS_GROUPS) == {"classifier"}
    # the saved rows, against the class means of the rows the engine analysed
    datamodule = instantiate(cfg.dataset.datamodule)
    datamodule.setup("fit")
    from ncib.engine import extract_pair_features

    feats = extract_pair_features(model.eval(), datamodule, torch.device("cpu"), 400)
    for m, name in enumerate(("m0", "m1")):
        want = classifier_collapse(
            feats.train[m].double().numpy(),
            feats.y_train.numpy(),
            10,
            model.classifiers[m].weight.detach().double().numpy(),
        )
        got = record["classifier"]["scalars"]
        assert got[f"nc3/{name}"] == pytest.approx(want["nc3"], rel=1e-6)
        assert got[f"classifier/equinorm/{name}"] == pytest.approx(want["equinorm"], rel=1e-9)
        assert np.isfinite(got[f"nc3/cos_mean/{name}"])
