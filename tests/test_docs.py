"""The documentation the code points at exists and says what the code does."""

from __future__ import annotations

import re

from ncib.metrics import markdown_table
from tests.conftest import REPO_ROOT
from tests.helpers.app import ncib

CITATION = re.compile(r"docs/([a-z_]+\.md)(?: §(\d+))?")


def _cited() -> set[tuple[str, str | None]]:
    found = set()
    for folder in ("ncib", "conf", "experiments", "tests"):
        for path in (REPO_ROOT / folder).rglob("*"):
            if path.suffix in {".py", ".yaml", ".sh"} and path.is_file():
                found |= set(CITATION.findall(path.read_text()))
    return found


def test_every_cited_doc_section_exists():
    cited = _cited()
    assert ("math.md", "5") in cited  # the scan finds the code's citations
    for name, section in sorted(cited, key=str):
        doc = REPO_ROOT / "docs" / name
        assert doc.is_file(), f"the code cites docs/{name}, which does not exist"
        if section:
            assert re.search(rf"^#+ §{section}\b", doc.read_text(), re.M), (
                f"docs/{name} has no §{section}"
            )


def test_metrics_reference_is_generated_from_the_registry():
    assert (REPO_ROOT / "docs" / "metrics.md").read_text() == markdown_table(), (
        "docs/metrics.md is stale: python -m ncib.metrics > docs/metrics.md"
    )
    out = ncib("ncib.metrics", cwd=REPO_ROOT, check=True)  # the ncib imported here
    assert out.stdout == markdown_table()


def test_readme_links_the_docs():
    readme = (REPO_ROOT / "README.md").read_text()
    for name in ("design.md", "math.md", "metrics.md", "configuration.md"):
        assert f"docs/{name}" in readme
