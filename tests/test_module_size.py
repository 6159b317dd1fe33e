"""Modules and functions a reader can hold in their head (issue 18): no module of ``ncib``
over 400 lines and no function over 80, outside ``ncib/analysis``, where a long numerical
routine may stay whole when it reads top to bottom (docs/design.md §1)."""

from __future__ import annotations

import ast
from pathlib import Path

import ncib

PACKAGE = Path(ncib.__file__).parent
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 80


def too_long(path: Path, source: str) -> list[str]:
    """What in one module breaks the limits: the module, or each long function (methods and
    nested functions included)."""
    found = []
    lines = len(source.splitlines())
    if lines > MAX_MODULE_LINES:
        found.append(f"{path}: {lines} lines")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1
            if length > MAX_FUNCTION_LINES:
                found.append(f"{path}:{node.lineno} {node.name}: {length} lines")
    return found


def test_no_module_or_function_outside_the_analysis_is_too_long():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] != "analysis":
            found += too_long(relative, path.read_text())
    assert not found, "split these (or move the numerics to ncib/analysis):\n" + "\n".join(found)


def test_a_planted_long_function_and_module_are_caught():
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    assert too_long(Path("m.py"), f"def f():\n{body}") == ["m.py:1 f: 81 lines"]
    assert too_long(Path("m.py"), f"def f():\n{body[: body.rindex('    x')]}") == []
    padding = "\n" * MAX_MODULE_LINES + "x = 1\n"
    assert too_long(Path("m.py"), padding) == ["m.py: 401 lines"]
