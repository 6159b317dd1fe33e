"""experiments/gpu_checks.sh fails when it should: here, on a machine without CUDA, every GPU
test skips and every GPU benchmark fails, and the script must say so and exit non-zero."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO_ROOT


@pytest.mark.slow  # about a minute: the script collects every test and starts each benchmark
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA behaviour")
def test_gpu_checks_fail_without_cuda_and_say_why(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "nvidia-smi"  # the script prints the GPU first; pretend there is a driver
    stub.write_text("#!/bin/sh\necho 'name, memory.total, driver_version'\necho 'stub, 0 MiB, 0'\n")
    stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHON": sys.executable}
    proc = subprocess.run(
        ["bash", str(REPO_ROOT / "experiments" / "gpu_checks.sh"), str(tmp_path / "out")],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode != 0
    summary = (tmp_path / "out" / "summary.txt").read_text()
    assert "no GPU test ran" in summary
    assert "FAILED: training benchmark" in summary and "FAILED: analysis benchmark" in summary
