"""``python -m ncib.analyse``: what it refuses, quickly and clearly (the full re-analysis of a
trained run is tested on the default run, tests/test_default_run.py)."""

from __future__ import annotations

import time

import pytest

from ncib.rundir.records import read_records
from tests.helpers.app import ncib


def analyse(*args, cwd):
    start = time.monotonic()
    proc = ncib("ncib.analyse", *args, cwd=cwd)
    return proc, time.monotonic() - start


def test_a_missing_run_directory_fails_in_seconds_naming_it(tmp_path):
    proc, elapsed = analyse(tmp_path / "nowhere", cwd=tmp_path)
    assert (
        proc.returncode == 2
        and str(tmp_path / "nowhere") in proc.stderr
        and "does not exist" in proc.stderr
    )
    assert elapsed < 15


def test_a_foreign_directory_fails_naming_what_was_expected(tmp_path):
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("hi")
    proc, elapsed = analyse(tmp_path / "foreign", cwd=tmp_path)
    assert proc.returncode == 2 and ".hydra/config.yaml" in proc.stderr and "foreign" in proc.stderr
    assert elapsed < 15


@pytest.fixture
def run_dir_without_checkpoints(tmp_path):
    from omegaconf import OmegaConf

    from tests.conftest import compose_config

    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    cfg = compose_config([], output_dir=run)
    (run / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    return run


def test_a_run_without_analysis_checkpoints_says_so(run_dir_without_checkpoints, tmp_path):
    proc, _ = analyse(run_dir_without_checkpoints, cwd=tmp_path)
    assert proc.returncode == 2 and "checkpoints/analysis" in proc.stderr


def test_an_override_of_a_key_the_run_does_not_have_is_an_error(
    run_dir_without_checkpoints, tmp_path
):
    proc, _ = analyse(run_dir_without_checkpoints, "analysis.kk=5", cwd=tmp_path)
    assert proc.returncode == 2 and "analysis.kk" in proc.stderr.replace("'", "")


@pytest.mark.parametrize("earlier", [False, True], ids=["this run", "a run before the key"])
def test_analysis_precision_is_an_override_that_reaches_the_settings(
    run_dir_without_checkpoints, earlier
):
    """What ``python -m ncib.analyse <run> analysis.precision=float64`` analyses with: the run's
    config with the override (:func:`ncib.rundir.load_run_config`), read by the plan; a run
    made before the key existed analysed in float32 and takes the override too."""
    import yaml

    from ncib.engine.plan import plan_of_run
    from ncib.rundir import RunDirError, load_run_config

    if earlier:
        path = run_dir_without_checkpoints / ".hydra" / "config.yaml"
        cfg = yaml.safe_load(path.read_text())
        del cfg["analysis"]["precision"]
        path.write_text(yaml.safe_dump(cfg))

    def settings(*overrides):
        return plan_of_run(load_run_config(run_dir_without_checkpoints, overrides)).settings

    assert settings().precision == "float32"
    assert settings("analysis.precision=float64").precision == "float64"
    with pytest.raises(ValueError, match="analysis.precision must be 'float32' or 'float64'"):
        settings("analysis.precision=float16")
    with pytest.raises(RunDirError, match="analysis.precisoin"):  # a typo is still an error
        settings("analysis.precisoin=float64")


@pytest.mark.slow
def test_under_torchrun_the_reanalysis_is_shared_and_gives_the_training_records(
    digits_run, tmp_path
):
    """``torchrun --nproc_per_node 2 -m ncib.analyse``: two gloo processes, each holding half
    of the training split (docs/design.md §3a), write the records training wrote (rank 0
    alone: one records file, one report)."""
    run_dir = digits_run.copy_to(tmp_path / "run")
    last = digits_run.max_epochs
    proc = ncib(
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        2,
        "-m",
        "ncib.analyse",
        run_dir,
        "--epochs",
        1,
        last,
        cwd=tmp_path,
        env={"OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("wrote ") == 1  # rank 0 alone
    (records,) = sorted(run_dir.glob("analysis-[0-9]*.jsonl"))
    trained = {r["epoch"]: r for r in read_records(run_dir / "analysis.jsonl")}
    shared = read_records(records)
    assert [r["epoch"] for r in shared] == [1, last]
    for record in shared:
        want = trained[record["epoch"]]
        for group in ("identifiability", "gib", "simplex_etf"):
            for name, value in want[group]["scalars"].items():
                got = record[group]["scalars"][name]
                if value is None:
                    assert got is None, (record["epoch"], group, name)
                    continue
                # float32 sums in another order: 1e-6 where float32 resolves the quantity that
                # well; NC1 in T_K of an early epoch moves by ~2e-6 (the engine's tests hold the
                # sharded record to the float64 analysis: tests/engine/test_sharded_epoch.py)
                assert abs(got - value) <= 1e-4 * max(1e-2, abs(value)), (
                    record["epoch"], group, name, value, got,
                )  # fmt: skip
    assert (run_dir / records.name.replace("analysis", "report").replace(".jsonl", ".md")).exists()


def test_a_reanalysis_that_would_not_fit_is_refused_before_any_file(
    digits_run, tmp_path, monkeypatch
):
    # the training run's memory check, for the re-analysis: in this process, with a budget
    # that holds the analysis of 700 of digits' 1437 training rows and not of all of them
    # (360 test rows, the ConvNet's d = 128 features, K = 10, 20 folds)
    from ncib.analyse import analyse_run
    from ncib.engine import memory
    from ncib.rundir import RunDirError

    run_dir = digits_run.copy_to(tmp_path / "run")
    before = sorted(p.name for p in run_dir.iterdir())
    budget = int(memory.analysis_bytes_per_rank(700, 360, 128, 10, 1, 20) / 0.9) + 1
    monkeypatch.setattr(
        memory, "available_memory", lambda *a, **kw: memory.MemoryBudget(budget, "the budget")
    )
    with pytest.raises(
        RunDirError, match=r"would not fit: .*d=128.*the budget allows.*max_samples=700 "
    ):
        analyse_run(run_dir)
    assert sorted(p.name for p in run_dir.iterdir()) == before  # no records, no overrides file
    # the subset it names fits
    fits = memory.MemoryBudget(budget, "the budget")
    memory.check_analysis_memory(1437, 360, 128, 10, 1, 20, fits, max_samples=700)


def test_the_reanalysis_checks_the_memory_of_its_precision(digits_run, tmp_path, monkeypatch):
    # analysis.precision=float64 as an override: the memory check of the re-analysis counts
    # 8 bytes a feature (ncib.engine.memory), and is refused as such before any file
    from ncib.analyse import analyse_run
    from ncib.engine import memory
    from ncib.rundir import RunDirError

    run_dir = digits_run.copy_to(tmp_path / "run")
    before = sorted(p.name for p in run_dir.iterdir())
    seen = []

    def check(**shape):
        seen.append(shape["precision"])
        raise MemoryError(f"{shape['precision']} checked")

    monkeypatch.setattr(memory, "check_analysis_memory", check)
    for precision in ("float32", "float64"):
        with pytest.raises(RunDirError, match=f"would not fit: {precision} checked"):
            analyse_run(run_dir, [f"analysis.precision={precision}"])
    assert seen == ["float32", "float64"]
    assert sorted(p.name for p in run_dir.iterdir()) == before
