"""The container's promises (Dockerfile, .dockerignore, apptainer.def, docs/cluster.md
"Containers"), read statically; the slow test builds the image with podman and trains in it."""

from __future__ import annotations

import re
import shlex
import subprocess

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tests.conftest import REPO_ROOT

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest's own dependency
    import tomli as tomllib

ENTRYPOINT = REPO_ROOT / "containers" / "entrypoint.sh"


def instructions(text: str) -> list[tuple[str, str]]:
    """The Dockerfile's instructions in order, as (KEYWORD, arguments): comments dropped,
    backslash continuations joined."""
    joined = re.sub(r"\\\n(?:\s*#[^\n]*\n)*", " ", text)
    found = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, args = line.partition(" ")
            found.append((keyword.upper(), args.strip()))
    return found


def env_values(steps: list[tuple[str, str]]) -> dict[str, str]:
    """What the ENV instructions set (both ``ENV K=V K2=V2`` and ``ENV K V``)."""
    values = {}
    for keyword, args in steps:
        if keyword != "ENV":
            continue
        words = shlex.split(args)
        if words and "=" not in words[0]:
            values[words[0]] = " ".join(words[1:])
        else:
            values.update(word.split("=", 1) for word in words)
    return values


def arg_defaults(steps: list[tuple[str, str]]) -> dict[str, str]:
    return dict(args.split("=", 1) for keyword, args in steps if keyword == "ARG" and "=" in args)


def copy_sources(args: str) -> list[str]:
    words = [w for w in shlex.split(args) if not w.startswith("--")]
    return [w.rstrip("/") for w in words[:-1]]


def dependency_bounds() -> dict[str, Requirement]:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    requirements = map(Requirement, pyproject["project"]["dependencies"])
    return {r.name: r for r in requirements}


@pytest.fixture
def dockerfile() -> list[tuple[str, str]]:
    return instructions((REPO_ROOT / "Dockerfile").read_text())


def test_the_image_runs_as_a_non_root_user(dockerfile):
    users = [args.split(":")[0] for keyword, args in dockerfile if keyword == "USER"]
    assert users, "the Dockerfile has no USER: the image would run as root"
    assert users[-1] not in {"root", "0"}, f"the image runs as {users[-1]}"


def test_dependencies_are_installed_before_the_code_is_copied(dockerfile):
    """A code edit rebuilds only the layers after ``COPY ncib``: the dependencies are installed
    from pyproject.toml alone before it, and the code's own install adds none."""
    copies = [(i, copy_sources(args)) for i, (keyword, args) in enumerate(dockerfile)]
    copies = [(i, sources) for i, sources in copies if dockerfile[i][0] in {"COPY", "ADD"}]
    code = [i for i, sources in copies if {"ncib", "conf", "."} & set(sources)]
    assert code, "the Dockerfile copies neither ncib/ nor conf/"
    first_code = min(code)
    project = [i for i, sources in copies if "pyproject.toml" in sources]
    assert project and project[0] < first_code, "pyproject.toml must be copied before the code"
    runs = [(i, args) for i, (keyword, args) in enumerate(dockerfile) if keyword == "RUN"]
    deps = [i for i, args in runs if "pip install" in args and " -r " in args]
    assert any(project[0] < i < first_code for i in deps), (
        "no `pip install -r <pyproject's dependencies>` between COPY pyproject.toml and the code"
    )
    after = [args for i, args in runs if i > first_code and "pip install" in args]
    assert after and all("--no-deps" in args for args in after), (
        "the code's install after COPY ncib must not resolve dependencies (--no-deps)"
    )


def test_torch_pin_is_a_supported_matching_pair(dockerfile):
    bounds = dependency_bounds()
    pins = arg_defaults(dockerfile)
    torch, vision = Version(pins["TORCH_VERSION"]), Version(pins["TORCHVISION_VERSION"])
    assert torch in bounds["torch"].specifier, f"torch {torch} outside {bounds['torch']}"
    assert vision in bounds["torchvision"].specifier, f"torchvision {vision} outside the bounds"
    # torchvision 0.(m + 15) is built for torch 2.m (0.19 for 2.4, ..., 0.29 for 2.14)
    assert (torch.major, torch.minor) == (2, vision.minor - 15), (
        f"{vision} is not for torch {torch}"
    )
    for name, arg in (("torch", "TORCH_VERSION"), ("torchvision", "TORCHVISION_VERSION")):
        installs = [a for k, a in dockerfile if k == "RUN" and f'"{name}==${arg}"' in a]
        assert len(installs) == 2, f"{name}==${arg} must pin both dependency installs"


def test_output_is_unbuffered_and_no_secret_is_baked_in(dockerfile):
    assert env_values(dockerfile).get("PYTHONUNBUFFERED") == "1"
    baked = [args for keyword, args in dockerfile if keyword in {"ENV", "ARG"}]
    assert not any("WANDB_API_KEY" in args for args in baked), "the W&B key is passed at run time"


def test_every_ncib_command_is_reachable_from_the_entry_point(dockerfile, tmp_path):
    """The entry script, run with a stand-in ``python`` that prints its arguments."""
    assert any(keyword == "ENTRYPOINT" and "ncib-entrypoint" in a for keyword, a in dockerfile)
    fake = tmp_path / "python"
    fake.write_text('#!/bin/sh\necho "$@"\n')
    fake.chmod(0o755)

    def dispatch(*argv: str) -> str:
        env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
        out = subprocess.run(
            ["bash", str(ENTRYPOINT), *argv], capture_output=True, text=True, env=env
        )
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    assert dispatch() == "-m ncib.run"
    for command in ("run", "analyse", "report", "linear_eval"):
        assert dispatch(command, "a b", "k=1") == f"-m ncib.{command} a b k=1"
    for overrides in (["dataset=cifar10", "seed_pair=[0,1]"], ["-m", "x=1,2"], ["~linear_eval"]):
        assert dispatch(*overrides) == "-m ncib.run " + " ".join(overrides)
    assert dispatch("echo", "any program") == "any program"


def test_the_build_context_is_an_allow_list_of_what_the_dockerfile_copies(dockerfile):
    patterns = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert patterns[0] == "*", "the context must start from nothing (data, outputs, .git, .venv)"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = {s for keyword, args in dockerfile if keyword == "COPY" for s in copy_sources(args)}
    assert copied <= allowed, f"copied but ignored: {sorted(copied - allowed)}"
    assert not allowed & {"data", "outputs", "multirun", "wandb", ".venv", ".git"}


def test_apptainer_definition_runs_the_same_entry_point():
    definition = (REPO_ROOT / "apptainer.def").read_text()
    assert re.search(r"^%runscript\s*\n\s*exec ncib-entrypoint \"\$@\"", definition, re.M)
    cluster = (REPO_ROOT / "docs" / "cluster.md").read_text()
    for needed in ("--gpus all", "--ipc=host", "WANDB_API_KEY", "--nv", "apptainer build"):
        assert needed in cluster, f"docs/cluster.md does not say {needed}"
