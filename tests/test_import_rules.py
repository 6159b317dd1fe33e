"""The rooms of the package and which may import which (docs/design.md §1).

Each room is a sub-package of ``ncib``; the modules at the top are the commands and the app's
configuration. A room may import only the rooms listed for it (any import, at module top or
inside a function), so that the science stays free of the periphery: ``analysis`` imports no
other room, the analysis engine knows nothing of Lightning's callbacks, the report nothing of
the engine's internals but the plan, W&B code lives in ``tracking`` alone.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ncib

PACKAGE = Path(ncib.__file__).parent

# room → the rooms and top-level modules it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "analysis": set(),
    "metrics": {"analysis"},
    "data": set(),
    "losses": set(),
    "models": {"losses", "metrics", "data"},
    "rundir": {"metrics", "config"},  # config: a run directory's composed config
    "engine": {"analysis", "data", "metrics", "rundir", "console"},
    "callbacks": {"engine", "metrics", "rundir", "console"},
    # engine: the analysis plan only; objectives: which objectives train a classifier
    "report": {"metrics", "rundir", "engine", "recipe", "objectives"},
    "tracking": {"metrics", "rundir", "report", "recipe", "objectives"},  # objectives: the names
}
# single modules allowed more than their room, and why
EXCEPTIONS: dict[str, set[str]] = {
    # a restart checks the checkpoint and compares configs across the analysis plan's layouts
    "ncib.rundir.resume": {"engine"},
    # the command sends a sweep's tables to W&B after writing its report
    "ncib.report.__main__": {"tracking"},
}


def _target(module: str) -> str | None:
    """The room (sub-package) or top-level module of ``ncib`` that ``module`` names."""
    parts = module.split(".")
    if parts[0] != "ncib" or len(parts) == 1:
        return None
    return parts[1]


def imports_by_module() -> dict[str, set[str]]:
    """``{module: the ncib rooms and top-level modules it imports}`` for every module."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
        out[module] = {t for t in map(_target, names) if t is not None}
    return out


def violations(imports: dict[str, set[str]]) -> list[str]:
    bad = []
    for module, targets in sorted(imports.items()):
        room = _target(module)
        if room not in ALLOWED:
            continue  # the top-level modules: commands and the app's configuration
        allowed = ALLOWED[room] | {room} | EXCEPTIONS.get(module, set())
        bad += [f"{module} imports ncib.{t}" for t in sorted(targets - allowed)]
    return bad


def test_every_room_imports_only_what_it_may():
    imports = imports_by_module()
    assert {_target(m) for m in imports} >= set(ALLOWED)  # every room is checked
    assert violations(imports) == []


def test_analysis_is_pure():
    imports = imports_by_module()
    assert all(not t - {"analysis"} for m, t in imports.items() if m.startswith("ncib.analysis"))


@pytest.mark.parametrize(
    ("module", "planted"),
    [
        ("ncib.analysis.cca", "engine"),
        ("ncib.engine.epoch", "callbacks"),
        ("ncib.report.report", "tracking"),
    ],
)
def test_a_planted_import_is_caught(module, planted):
    imports = imports_by_module()
    imports[module] = imports[module] | {planted}
    assert violations(imports) == [f"{module} imports ncib.{planted}"]


def test_the_config_checks_import_no_lightning():
    """``ncib.config`` (the checks before any work) and the analysis plan import neither
    Lightning nor the engine's feature extraction: a bad command line fails in seconds."""
    import subprocess
    import sys

    code = (
        "import sys, ncib.config, ncib.engine.plan, ncib.objectives; "
        "print(sorted(m for m in sys.modules if m.startswith(('pytorch_lightning', "
        "'lightning', 'ncib.engine.epoch', 'ncib.engine.features', 'ncib.data'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
