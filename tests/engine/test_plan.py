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
