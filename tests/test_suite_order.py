"""The suite's own scheduling (tests/conftest.py): the files it starts first exist."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import FILES_FIRST


def test_the_files_started_first_exist():
    tests = Path(__file__).parent
    assert [f for f in FILES_FIRST if not (tests / f).is_file()] == []
