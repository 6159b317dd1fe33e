"""The Dockerfile builds, caches its dependency layers across a code edit, and the image trains
the digits on the CPU as its non-root user (``-m slow``; needs podman, run as root).

Without Docker Hub the base is a stand-in for ``python:3.11-slim-bookworm`` made from Debian's
packages: ``mmdebstrap`` writes a bookworm root with python3 (3.11), its venv module and headers,
and ``podman import`` makes it ``localhost/ncib-base:bookworm``. The build reaches the package
indexes the way this machine's pip does: its pip settings (index URLs, find-links, CA bundle) go
into the build as ``/etc/pip.conf`` with the local folders they name mounted read-only.
A first build from nothing takes about 10 minutes and 7 GB (torch's CUDA wheels).
"""

from __future__ import annotations

import re
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.test_container import arg_defaults, instructions

pytestmark = pytest.mark.slow

BASE = "localhost/ncib-base:bookworm"
IMAGE = "localhost/ncib:pytest"
CONTEXT = (
    "Dockerfile",
    ".dockerignore",
    "pyproject.toml",
    "README.md",
    "ncib",
    "conf",
    "containers",
)


def podman(*args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    """``podman ARGS`` with what this kind of machine needs: runc where crun cannot drive cgroup
    v1, and for build and run rlimits no higher than this process's (podman raises them for
    root, which needs CAP_SYS_RESOURCE)."""
    command = ["podman", *(["--runtime", "runc"] if shutil.which("runc") else []), *args]
    if args[0] in {"build", "run"}:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        command[command.index(args[0]) + 1 : command.index(args[0]) + 1] = [
            "--ulimit", f"nofile={soft}:{hard}", "--ulimit", "nproc=4096:4096",
        ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if check:
        assert out.returncode == 0, f"{command} failed:\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
    return out


def pip_settings(folder: Path) -> list[str]:
    """``-v`` flags that give the build this machine's pip settings as ``/etc/pip.conf``, with the
    local folders and the CA bundle they name mounted read-only at the same paths."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True
    ).stdout
    settings = dict(re.findall(r"^[^.\n]*\.([\w-]+)='(.*)'$", listed, re.M))
    kept = {
        k: settings[k]
        for k in ("index-url", "extra-index-url", "find-links", "cert")
        if k in settings
    }
    mounts = set()
    for item in " ".join(kept.values()).split():
        if item.startswith("file://"):
            mounts.add(Path(item.removeprefix("file://")).parent)  # its pages link to ../files
        elif Path(item).exists():
            mounts.add(Path(item))
    conf = folder / "pip.conf"
    conf.write_text("[global]\n" + "".join(f"{k} = {v}\n" for k, v in kept.items()))
    volumes = [f"{conf}:/etc/pip.conf:ro", *(f"{p}:{p}:ro" for p in sorted(mounts) if p.exists())]
    return [flag for volume in volumes for flag in ("-v", volume)]


def ensure_base(folder: Path) -> None:
    if podman("image", "exists", BASE, check=False).returncode == 0:
        return
    if not shutil.which("mmdebstrap"):
        pytest.skip(f"no {BASE} and no mmdebstrap to make it (apt-get install mmdebstrap)")
    tarball = folder / "base.tar"
    subprocess.run(
        ["mmdebstrap", "--variant=minbase", "--include=python3,python3-venv,python3-dev,ca-certificates",
         "bookworm", str(tarball)],
        check=True, capture_output=True, timeout=1200,
    )  # fmt: skip
    subprocess.run(["podman", "import", str(tarball), BASE], check=True, capture_output=True)
    tarball.unlink()


def build(context: Path, folder: Path) -> str:
    out = podman(
        "build", "--network", "host", *pip_settings(folder),
        "--build-arg", f"BASE_IMAGE={BASE}", "-t", IMAGE, str(context),
        timeout=3600,
    )  # fmt: skip
    return out.stdout


def cached_steps(log: str) -> dict[str, bool]:
    """Each RUN step of a podman build log → whether it came from the cache."""
    steps = re.split(r"^STEP \d+/\d+: ", log, flags=re.M)[1:]
    return {s.splitlines()[0]: "--> Using cache" in s for s in steps if s.startswith("RUN ")}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, bool]:
    """Builds the image from a copy of the repository, then again after a code edit; returns the
    second build's cache use per RUN step."""
    if not shutil.which("podman"):
        pytest.skip("no podman (apt-get install podman runc mmdebstrap)")
    folder = tmp_path_factory.mktemp("container")
    ensure_base(folder)
    probe = podman("run", "--rm", "--network", "none", BASE, "true", check=False)
    if probe.returncode != 0:
        pytest.skip(f"podman cannot run a container here: {probe.stderr.strip()[-300:]}")
    context = folder / "context"
    for name in CONTEXT:
        source = REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, context / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            context.mkdir(exist_ok=True)
            shutil.copy2(source, context / name)
    build(context, folder)
    with (context / "ncib" / "__init__.py").open("a") as code:
        code.write("# an edit of the code\n")
    return cached_steps(build(context, folder))


def test_a_code_edit_reuses_the_dependency_layers(built):
    dependencies = [step for step in built if "pip install" in step and "--no-deps" not in step]
    assert len(dependencies) == 2 and all(built[step] for step in dependencies), built
    code = [step for step in built if "--no-deps" in step]
    assert code and not any(built[step] for step in code), "the edited code was not reinstalled"


def test_the_image_trains_the_digits_as_its_user_and_runs_every_command(built, tmp_path):
    outputs = tmp_path / "outputs"
    outputs.mkdir(mode=0o777)
    outputs.chmod(0o777)
    run = ["run", "--rm", "--network", "none", "-e", "WANDB_MODE=offline",
           "-v", f"{outputs}:/workspace/outputs", IMAGE]  # fmt: skip
    podman(*run, "debug=fast", timeout=1800)
    (report,) = outputs.glob("digits/*/report.md")
    assert report.stat().st_uid == 1000, "the run wrote its files as root"
    run_dir = f"/workspace/outputs/{report.parent.relative_to(outputs)}"
    podman(*run, "analyse", run_dir, timeout=1800)
    assert (report.parent / "analysis-1.jsonl").is_file()

    pins = arg_defaults(instructions((REPO_ROOT / "Dockerfile").read_text()))
    versions = podman(
        *run,
        "python",
        "-c",
        "import torch, torchvision; print(torch.__version__, torchvision.__version__)",
    ).stdout.split()
    assert [v.split("+")[0] for v in versions] == [
        pins["TORCH_VERSION"],
        pins["TORCHVISION_VERSION"],
    ]
