"""The structured-config schema (``ncib/config.py``, first in ``conf/config.yaml``'s defaults)
rejects ill-typed values when the config is composed, naming the key; values the schema leaves
open (the trainer's ``_target_`` kwargs) are rejected by :func:`ncib.config.validate`, naming
the key. Without the schema, ``report=maybe`` or ``seed_pair=7`` would compose and run."""

from __future__ import annotations

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf
from omegaconf.errors import ValidationError

from ncib.config import AnalysisConfig, ConfigError, RunConfig, validate
from tests.conftest import compose_config
from tests.helpers.app import run_app

# override → the key the error must name
AT_COMPOSE = {
    "analysis.every_n_epochs=abc": "analysis.every_n_epochs",
    "report=maybe": "report",
    "seed_pair=7": "seed_pair",
    "seed_pair=[0,x]": "seed_pair",
    "analysis.k=1.5": "analysis.k",
    "analysis.max_samples=many": "analysis.max_samples",
    "analysis.at_init=maybe": "analysis.at_init",
    "analysis.ridge=small": "analysis.ridge",
    "analysis.epochs=[1,two]": "analysis.epochs",
    "resume=perhaps": "resume",
    "cluster.nodes=two": "cluster.nodes",
}


def _message(err: BaseException) -> str:
    parts = []
    while err is not None:
        parts.append(str(err))
        err = err.__cause__
    return "\n".join(parts)


@pytest.mark.parametrize("override,key", AT_COMPOSE.items(), ids=list(AT_COMPOSE))
def test_ill_typed_values_are_rejected_when_composing_and_the_key_is_named(tmp_path, override, key):
    with pytest.raises(ConfigCompositionException) as info:
        compose_config([override], output_dir=tmp_path)
    assert isinstance(info.value.__cause__, ValidationError), _message(info.value)
    assert f"full_key: {key}" in _message(info.value)


@pytest.mark.parametrize(
    "override,key",
    [
        ("trainer.max_epochs=ten", "trainer.max_epochs"),
        ("trainer.max_epochs=0", "trainer.max_epochs"),
        ("dataset.datamodule.batch_size=one", "dataset.datamodule.batch_size"),
    ],
)
def test_values_outside_the_schema_are_rejected_by_validate_and_the_key_is_named(
    tmp_path, override, key
):
    cfg = compose_config([override], output_dir=tmp_path)  # the trainer's kwargs are free-form
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as info:
        validate(cfg)
    assert "cannot be used" in str(info.value)


def test_the_composed_config_is_typed_by_the_schema(tmp_path):
    cfg = compose_config([], output_dir=tmp_path)
    assert OmegaConf.get_type(cfg) is RunConfig
    assert OmegaConf.get_type(cfg.analysis) is AnalysisConfig
    # and well-typed strings are converted, not kept as strings
    typed = compose_config(
        ["analysis.every_n_epochs=5", "report=false", "seed_pair=[3,4]"], output_dir=tmp_path
    )
    assert (
        typed.analysis.every_n_epochs == 5
        and typed.report is False
        and list(typed.seed_pair) == [3, 4]
    )
    validate(typed)


@pytest.mark.parametrize(
    "overrides,key",
    [
        (["report=maybe", "--cfg", "job"], "report"),  # composing only: never trains
        (["trainer.max_epochs=ten"], "trainer.max_epochs"),
    ],
    ids=["report", "max_epochs"],
)
def test_the_app_refuses_them_before_any_work(tmp_path, overrides, key):
    proc = run_app(f"hydra.run.dir={tmp_path / 'run'}", *overrides, cwd=tmp_path)
    assert proc.returncode != 0
    assert key in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize(
    "override,message",
    [
        ("analysis.intervals.folds=1", "analysis.intervals.folds=1 must be an integer >= 2"),
        ("analysis.intervals.level=high", "analysis.intervals.level='high' must be a number"),
        ("+analysis.intervals.fold=3", "analysis.intervals has no key ['fold']"),
    ],
)
def test_interval_settings_are_checked_by_validate(tmp_path, override, message):
    cfg = compose_config([override], output_dir=tmp_path)
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    assert message in str(info.value)


def test_intervals_null_turns_them_off_and_the_callbacks_read_the_settings(tmp_path):
    from hydra.utils import instantiate

    from ncib.analysis import IntervalSettings

    cfg = compose_config(["analysis.intervals.refits=3"], output_dir=tmp_path)
    validate(cfg)
    callbacks = [instantiate(c) for c in cfg.callbacks.values() if "_target_" in c]
    assert callbacks and all(
        c.settings.intervals == IntervalSettings(refits=3)
        for c in callbacks
        if hasattr(c, "settings")
    )
    off = compose_config(["analysis.intervals=null"], output_dir=tmp_path)
    validate(off)
    callbacks = [instantiate(c) for c in off.callbacks.values() if "_target_" in c]
    assert all(c.settings.intervals is None for c in callbacks if hasattr(c, "settings"))


def test_analysis_precision_is_float32_unless_set_and_reaches_the_callbacks_settings(tmp_path):
    from hydra.utils import instantiate

    from tests.conftest import REPO_ROOT

    cfg = compose_config([], output_dir=tmp_path)
    assert cfg.analysis.precision == "float32" == AnalysisConfig().precision
    # conf/config.yaml lists it with the other analysis keys (what a user reads and edits)
    assert OmegaConf.load(REPO_ROOT / "conf" / "config.yaml").analysis.precision == "float32"
    for precision in ("float32", "float64"):
        cfg = compose_config([f"analysis.precision={precision}"], output_dir=tmp_path)
        validate(cfg)
        callback = instantiate(cfg.callbacks.analysis)
        assert callback.plan.settings.precision == precision
    bad = compose_config(["analysis.precision=float16"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match="analysis.precision must be 'float32' or 'float64'"):
        validate(bad)
