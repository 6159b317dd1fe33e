"""ncib installs as a real package: the wheel carries the config and runs from any directory."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

from tests.conftest import REPO_ROOT


def test_every_package_under_ncib_is_listed_for_the_wheel():
    block = re.search(
        r"^packages = \[(.*?)\]", (REPO_ROOT / "pyproject.toml").read_text(), re.M | re.S
    )
    listed = set(re.findall(r'"([\w.]+)"', block.group(1)))
    found = {
        ".".join(p.parent.relative_to(REPO_ROOT).parts)
        for p in (REPO_ROOT / "ncib").rglob("__init__.py")
    }
    assert found | {"ncib.conf"} == listed


def test_the_wheel_installed_without_editable_mode_runs_from_any_directory(tmp_path):
    # build from a copy of the sources, so the build leaves nothing in the repository
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, src / name)
    for name in ("ncib", "conf"):
        shutil.copytree(REPO_ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run(
        [
            *pip,
            "wheel",
            str(src),
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
        ],
        check=True,
    )
    wheel = next((tmp_path / "dist").glob("ncib-*.whl"))
    target = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True)
    assert (target / "ncib" / "conf" / "config.yaml").is_file()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(target), "WANDB_MODE": "offline"}
    where = subprocess.run(
        [sys.executable, "-c", "import ncib, ncib.conf; print(ncib.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.strip().startswith(str(target)), where.stdout  # not the repository's copy
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "ncib.run",
            "trainer.max_epochs=1",
            "analysis.epochs=[1]",
            "analysis.intervals=null",  # the test reads no interval
            "logger=csv",
            "linear_eval.epochs=1",
            "hydra.run.dir=run",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert (elsewhere / "run" / "analysis.jsonl").is_file() and (
        elsewhere / "run" / "report.md"
    ).is_file()
    # the console script too
    script = target / "bin" / "ncib"
    help_ = subprocess.run(
        [str(script), "--help"], cwd=elsewhere, env=env, capture_output=True, text=True
    )
    assert (
        help_.returncode == 0 and "dataset: cifar10, cifar100, digits, imagenet32" in help_.stdout
    )
