"""The analysis plan: built once from ``analysis.*``, read from run configs of this layout and of
the earlier one (one callback per metric group), and a resume across the change of layout."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from ncib.engine.plan import (
    DEFAULT_GROUPS,
    AnalysisSchedule,
    analysis_plan,
    plan_of_run,
)
from ncib.rundir.resume import _config_changes
from tests.conftest import compose_config

EARLIER = {
    "identifiability": "ncib.callbacks.IdentifiabilityCallback",
    "gib": "ncib.callbacks.GIBCallback",
    "simplex_etf": "ncib.callbacks.SimplexETFCallback",
}
SHARED = ("epochs", "every_n_epochs", "at_init", "k", "max_samples", "ridge", "progress")


def earlier_layout(cfg, groups=DEFAULT_GROUPS):
    """``cfg`` as a run started before the one analysis callback saved it: one callback per
    metric group, each repeating the analysis settings, and no ``analysis.groups``."""
    old = OmegaConf.to_container(cfg, resolve=False)
    del old["callbacks"]["analysis"], old["analysis"]["groups"]
    for group in groups:
        old["callbacks"][group] = {"_target_": EARLIER[group]} | {
            key: f"${{analysis.{key}}}" for key in (*SHARED, "checkpoints", "intervals")
        }
    return OmegaConf.create(old)


def test_the_default_run_plans_every_group_at_its_epochs(tmp_path):
    cfg = compose_config([], output_dir=tmp_path)
    plan = plan_of_run(cfg)
    assert plan.groups == DEFAULT_GROUPS  # not classifier: it needs objective=ce|mse
    assert plan.schedule == AnalysisSchedule(
        cfg.analysis.epochs, cfg.analysis.every_n_epochs, cfg.analysis.at_init
    )
    assert plan.planned(int(cfg.trainer.max_epochs))[0] in (0, 1)
    assert plan.due(-1) == []
    assert plan_of_run(compose_config(["~callbacks.analysis"], output_dir=tmp_path)) is None


def test_an_earlier_run_config_gives_the_same_plan(tmp_path):
    cfg = compose_config([], output_dir=tmp_path)
    assert plan_of_run(earlier_layout(cfg)) == plan_of_run(cfg)
    two = plan_of_run(earlier_layout(cfg, ["simplex_etf", "identifiability"]))
    assert two.groups == ("identifiability", "simplex_etf")


@pytest.mark.parametrize("groups", [DEFAULT_GROUPS, ("identifiability", "simplex_etf")])
def test_a_run_started_in_the_earlier_layout_resumes_with_this_one(tmp_path, groups):
    now = compose_config([f"analysis.groups=[{','.join(groups)}]"], output_dir=tmp_path)
    first = earlier_layout(now, groups)
    assert _config_changes(first, now) == []
    # a real change is still one
    other = compose_config(
        ["analysis.groups=[identifiability]", "analysis.k=3"], output_dir=tmp_path
    )
    changes = _config_changes(first, other)
    assert any(c.startswith("analysis.k:") for c in changes)
    assert any(c.startswith("analysis.groups") for c in changes) == (len(groups) > 1)


def test_analysis_plan_defaults_and_order():
    plan = analysis_plan({"every_n_epochs": 2, "groups": ["simplex_etf", "gib", "gib"]})
    assert plan.groups == ("gib", "simplex_etf")
    assert plan.settings.intervals is not None  # absent: the default intervals
    assert analysis_plan({"every_n_epochs": 2, "intervals": None}).settings.intervals is None
    assert plan.due(4, 5) == ["gib", "simplex_etf"] and plan.due(3, 5) == []
    assert plan.due(5, 5) == ["gib", "simplex_etf"]  # the last epoch


def test_the_plans_groups_are_the_outputs_groups():
    from ncib.engine import plan
    from ncib.metrics import outputs

    assert plan.ANALYSIS_GROUPS == tuple(outputs.ANALYSIS_GROUPS)
    assert plan.DEFAULT_GROUPS == tuple(outputs.DEFAULT_GROUPS)


def test_analysis_precision_is_float32_or_float64_and_part_of_the_analysis():
    import torch

    from ncib.engine.settings import AnalysisSettings

    default = analysis_plan({"every_n_epochs": 2}).settings
    wide = analysis_plan({"every_n_epochs": 2, "precision": "float64"}).settings
    assert (default.precision, default.dtype) == ("float32", torch.float32)
    assert (wide.precision, wide.dtype) == ("float64", torch.float64)
    for bad in ("float16", "double", None, 64):
        with pytest.raises(ValueError) as err:
            AnalysisSettings(precision=bad)
        assert str(err.value) == f"analysis.precision must be 'float32' or 'float64'; got {bad!r}"
    # another precision gives other numbers; progress does not
    assert default.same_analysis(AnalysisSettings(progress=False))
    assert not default.same_analysis(wide) and not wide.same_analysis(default)
    assert wide.same_analysis(AnalysisSettings(precision="float64", progress=False))


def test_a_run_started_before_analysis_precision_resumes_as_float32(tmp_path):
    now = compose_config([], output_dir=tmp_path)
    first = OmegaConf.to_container(now, resolve=False)
    del first["analysis"]["precision"]  # the key did not exist yet: the run analysed in float32
    first = OmegaConf.create(first)
    assert _config_changes(first, now) == []
    wide = compose_config(["analysis.precision=float64"], output_dir=tmp_path)
    assert _config_changes(first, wide) == ["analysis.precision: 'float32' → 'float64'"]
