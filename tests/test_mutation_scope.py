"""mutmut (experiments/mutation.sh) does not mutate decorated functions: the parts it tests use
``with no_tf32():`` / ``with torch.no_grad():`` in function bodies instead (docs/testing.md)."""

from __future__ import annotations

import ast

from tests.conftest import REPO_ROOT

MUTATED = [
    "ncib/analysis",
    "ncib/losses",
    "ncib/metrics",
    "ncib/rundir/records.py",
    "ncib/data/base.py",
]
MUTATED += ["ncib/data/counter_rng.py"]
# mutmut mutates static and class methods; it skips the others, which are allowed here: the
# context managers themselves and one-line properties (listed in docs/testing.md)
ALLOWED = {"staticmethod", "classmethod", "contextlib.contextmanager", "property"}


def _decorated_functions(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            names = {ast.unparse(d) for d in node.decorator_list}
            if names - ALLOWED:
                yield f"{path.relative_to(REPO_ROOT)}:{node.lineno} {node.name} {sorted(names)}"


def test_no_function_that_mutation_testing_covers_is_decorated():
    paths = []
    for part in MUTATED:
        p = REPO_ROOT / part
        paths += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    assert len(paths) > 10
    found = [f for p in paths for f in _decorated_functions(p)]
    assert not found, "decorated functions are skipped by mutmut:\n" + "\n".join(found)
