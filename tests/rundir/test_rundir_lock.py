"""One process per run directory: a second live process is refused naming the holder, a
killed holder's lock is taken over, and two real commands in one directory never duplicate a
record (ncib/rundir/lock.py)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ncib.rundir.lock import LOCK_FILE, RunDirBusyError, holder_of, holding_run_dir
from ncib.rundir.records import read_records
from tests.helpers.app import in_process, run_app, start
from tests.helpers.processes import ncib_process

HOLD = """
import sys, time
from ncib.rundir.lock import holding_run_dir
with holding_run_dir(sys.argv[1], "a test holder"):
    print("held", flush=True)
    time.sleep(120)
"""


def _holder(run_dir) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run_dir)],
        stdout=subprocess.PIPE,
        text=True,
        **ncib_process(),
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_process_is_refused_naming_the_holder(tmp_path):
    holder = _holder(tmp_path)
    try:
        with pytest.raises(RunDirBusyError) as err:
            with holding_run_dir(tmp_path, "the second"):
                pass
        message = str(err.value)
        assert f"process {holder.pid} on " in message and "(a test holder)" in message
        assert str(tmp_path) in message and "another directory" in message
        assert holder_of(tmp_path)["pid"] == holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_a_killed_holders_lock_is_taken_over(tmp_path):
    holder = _holder(tmp_path)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert holder_of(tmp_path)["pid"] == holder.pid  # its note is left, its lock is not
    with holding_run_dir(tmp_path, "the requeued job"):
        assert holder_of(tmp_path)["pid"] == os.getpid()
        assert holder_of(tmp_path)["command"] == "the requeued job"
    assert holder_of(tmp_path) is None  # released: nothing left to name
    with holding_run_dir(tmp_path):  # and free again
        pass


# the run below builds a test callback: admitted for analyse
TRUSTED = {"NCIB_TRUSTED_TARGETS": "tests.helpers.signals"}


def _wait_for(predicate, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.2)


def test_two_real_commands_in_one_run_directory(tmp_path, monkeypatch):
    from ncib.analyse import main as analyse

    run_dir, go = tmp_path / "run", tmp_path / "go"
    command = [
        "trainer.max_epochs=2", "analysis.epochs=[1,2]", "analysis.intervals=null",
        "~linear_eval", "report=false", "logger=csv",
        # the first run waits at the start of its second epoch until the test says go
        "+callbacks.hold._target_=tests.helpers.signals.WaitForFile", "+callbacks.hold.epoch=1",
        f"+callbacks.hold.flag={go}", f"hydra.run.dir={run_dir}",
    ]  # fmt: skip
    first = start(
        "ncib.run",
        *command,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(lambda: (holder_of(run_dir) or {}).get("pid") == first.pid)
        config = (run_dir / ".hydra" / "config.yaml").read_text()
        started = time.monotonic()
        second = run_app(
            *command[:-1], "model.temperature=0.3", command[-1], cwd=tmp_path, timeout=300
        )
        assert second.returncode != 0
        assert f"process {first.pid} on " in second.stderr and "still training" in second.stderr
        assert time.monotonic() - started < 60  # refused at once, not after training
        assert (run_dir / ".hydra" / "config.yaml").read_text() == config  # the run's, kept
        for name, value in TRUSTED.items():
            monkeypatch.setenv(name, value)
        analyse = in_process(analyse, run_dir, "--name", "early")  # this process: a third one
        assert analyse.returncode == 2 and "still training" in analyse.stderr
        assert not (run_dir / "analysis-early.jsonl").exists()
        assert first.poll() is None  # all the while
        go.touch()
        out, err = first.communicate(timeout=600)
    finally:
        first.kill()
    assert first.returncode == 0, err[-3000:]
    assert [r["epoch"] for r in read_records(run_dir / "analysis.jsonl")] == [1, 2]
    assert json.loads((run_dir / ".ncib" / "process.json").read_text())["pid"] == first.pid
    assert holder_of(run_dir) is None and (run_dir / LOCK_FILE).exists()


def test_a_fresh_run_with_resume_false_is_not_refused_for_its_own_lock(tmp_path):
    """The lock is taken before the run directory is prepared: ``resume=false`` on an empty
    directory must not read the lock's folder as an earlier run's leftovers."""
    from omegaconf import OmegaConf

    from ncib.config import ConfigError
    from ncib.rundir.resume import prepare_run_dir
    from tests.conftest import compose_config

    run_dir = tmp_path / "run"
    cfg = compose_config(["resume=false"], output_dir=run_dir)
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    with holding_run_dir(run_dir):
        prepare_run_dir(cfg, run_dir)  # no error: the lock is not a run
    (run_dir / "analysis.jsonl").write_text('{"epoch": 1}\n')
    with holding_run_dir(run_dir), pytest.raises(ConfigError, match="already holds one"):
        prepare_run_dir(cfg, run_dir)  # a real leftover still is
