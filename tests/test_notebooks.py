"""The notebooks: committed without outputs, and they run (slow) against tiny runs made here."""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO_ROOT
from tests.helpers.app import run_app

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))


def test_notebooks_exist_and_carry_no_outputs():
    assert {p.name for p in NOTEBOOKS} >= {"paper_figures.ipynb", "transfer.ipynb"}
    for path in NOTEBOOKS:
        for cell in json.loads(path.read_text())["cells"]:
            assert not cell.get("outputs") and not cell.get("execution_count"), path.name


def _run(*overrides, cwd):
    proc = run_app(*overrides, cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
def test_the_notebooks_execute_against_tiny_runs(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    train, transfer = tmp_path / "train", tmp_path / "transfer"
    _run(
        "trainer.max_epochs=3",
        "analysis.epochs=[1,3]",
        "linear_eval.epochs=2",
        "logger=csv",
        f"hydra.run.dir={train}",
        cwd=tmp_path,
    )
    _run(
        "experiment=zero_shot_transfer",
        f"transfer.source={train}",
        "transfer.grid=[10,20,40]",
        "logger=csv",
        f"hydra.run.dir={transfer}",
        cwd=tmp_path,
    )
    monkeypatch.setenv("NCIB_RUN_DIR", str(train))
    monkeypatch.setenv("NCIB_TRANSFER_DIR", str(transfer))
    for name, made in (
        ("paper_figures.ipynb", train / "notebook_figures"),
        ("transfer.ipynb", transfer / "notebook_figures"),
    ):
        nb = nbformat.read(REPO_ROOT / "notebooks" / name, as_version=4)
        NotebookClient(
            nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
        ).execute()
        images = [
            o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})
        ]
        assert images, f"{name} drew nothing"
        assert any(made.glob("*.png")), name
    assert (train / "notebook_figures" / "fig3.png").exists() and (
        transfer / "notebook_figures" / "fig4a.png"
    ).exists()
