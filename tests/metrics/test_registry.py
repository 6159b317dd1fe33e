"""The registry's and the key mapping's refusals: each names what was wrong and what is allowed."""

from __future__ import annotations

import re

import pytest

from ncib.metrics import key, keys
from ncib.metrics.outputs import check_outputs, group_outputs


def test_key_names_the_template_the_axes_and_the_allowed_values():
    assert key("cca/mean_k/{features}", features="raw") == "cca/mean_k/raw"
    with pytest.raises(
        KeyError,
        match=re.escape("'cca/nope' is not a registered metric (ncib/metrics/catalogue.py)"),
    ):
        key("cca/nope")
    with pytest.raises(
        ValueError,
        match=re.escape("'cca/mean_k/{features}' needs the axes ('features',), got ('member',)"),
    ):
        key("cca/mean_k/{features}", member="m0")
    with pytest.raises(
        ValueError,
        match=re.escape(
            "features='tk' is not one of ('raw', 'normal') (in 'cca/mean_k/{features}')"
        ),
    ):
        key("cca/mean_k/{features}", features="tk")


def test_unknown_groups_are_named_with_the_known_ones():
    known = "['classifier', 'gib', 'identifiability', 'linear_eval', 'simplex_etf', 'train', 'transfer']"
    with pytest.raises(ValueError, match=re.escape(f"unknown metric group 'cka'; known: {known}")):
        keys("cka")
    known = "['classifier', 'gib', 'identifiability', 'simplex_etf']"
    with pytest.raises(
        ValueError, match=re.escape(f"unknown analysis group 'cka'; known: {known}")
    ):
        group_outputs(None, "cka")


def test_check_outputs_names_the_keys_that_differ_from_the_registry():
    scalars = dict.fromkeys(keys("identifiability"), 0.0)
    entries = dict.fromkeys(keys("identifiability", scalars=False), [])
    assert check_outputs("identifiability", scalars, entries) == (scalars, entries)
    extra = scalars | {"cca/extra": 0.0}
    del extra["cca/mean_k/raw"]
    message = (
        "analysis group 'identifiability' made scalars ['cca/extra', 'cca/mean_k/raw'] that "
        "differ from ncib/metrics/catalogue.py; register them or stop making them"
    )
    with pytest.raises(RuntimeError, match=f"^{re.escape(message)}$"):
        check_outputs("identifiability", extra, entries)
    missing = dict(entries)
    del missing["cca/insample/rho/raw"]
    with pytest.raises(
        RuntimeError, match=re.escape("made record entries ['cca/insample/rho/raw'] that")
    ):
        check_outputs("identifiability", scalars, missing)
