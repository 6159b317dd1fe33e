"""The Hydra habits of lightning-hydra-template: named seed sets for multirun (``seeds=``), a
git-ignored ``local`` group, an Optuna search (``hparams_search=``, the value a run returns),
commands quoted for zsh, shell completion (docs/configuration.md)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from omegaconf import OmegaConf

from tests.conftest import REPO_ROOT, compose_config
from tests.helpers.app import run_app

SEED_SETS = {
    "paper": [[0, 1]],
    "three": [[0, 1], [2, 3], [4, 5]],
    "five": [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]],
}


def test_a_seed_set_sweeps_its_pairs_in_multirun(tmp_path):
    # trainer.max_epochs=0 stops each job at the validation, after Hydra has launched it with
    # its overrides and composed its config: what the sweep launched is all this test reads
    sweep = tmp_path / "sweep"
    proc = run_app(
        "-m", "seeds=three", "trainer.max_epochs=0", f"hydra.sweep.dir={sweep}", cwd=tmp_path
    )
    assert proc.returncode != 0 and "trainer.max_epochs=0" in proc.stderr
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    launched = [list(OmegaConf.load(j / ".hydra" / "config.yaml").seed_pair) for j in jobs]
    assert launched == SEED_SETS["three"]
    for job, pair in zip(jobs, SEED_SETS["three"], strict=True):
        overrides = OmegaConf.load(job / ".hydra" / "overrides.yaml")
        assert f"seed_pair=[{pair[0]},{pair[1]}]" in overrides and "seeds=three" in overrides


@pytest.mark.parametrize("name", sorted(SEED_SETS))
def test_each_seed_set_names_its_pairs_for_the_sweeper(name, tmp_path):
    cfg = compose_config([f"seeds={name}"], output_dir=tmp_path, hydra_config=True)
    params = str(cfg.hydra.sweeper.params.seed_pair)
    assert [[int(a), int(b)] for a, b in re.findall(r"\[(\d+),(\d+)\]", params)] == SEED_SETS[name]
    assert list(cfg.seed_pair) == SEED_SETS[name][0]  # the pair a plain run trains


def test_a_set_of_several_pairs_is_refused_without_multirun(tmp_path):
    proc = run_app("seeds=three", f"hydra.run.dir={tmp_path / 'a'}", cwd=tmp_path)
    assert proc.returncode != 0
    assert "seeds=three names 3 seed pairs" in proc.stderr and "-m" in proc.stderr
    # a pair chosen on the command line, or a set of one, passes this check (and stops at the
    # next one: no training here)
    for extra in (["seeds=three", "seed_pair=[2,3]"], ["seeds=paper"]):
        proc = run_app(
            *extra, "trainer.max_epochs=0", f"hydra.run.dir={tmp_path / 'b'}", cwd=tmp_path
        )
        assert proc.returncode != 0 and "names 3 seed pairs" not in proc.stderr
        assert "trainer.max_epochs=0 cannot be used" in proc.stderr


def test_a_command_line_seed_pair_replaces_the_set_in_multirun(tmp_path):
    sweep = tmp_path / "sweep"
    run_app(
        "-m",
        "seeds=five",
        "seed_pair=[6,7]",
        "trainer.max_epochs=0",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    jobs = [p for p in sweep.iterdir() if p.is_dir()]
    assert [list(OmegaConf.load(j / ".hydra" / "config.yaml").seed_pair) for j in jobs] == [[6, 7]]


def test_the_local_group_is_loaded_when_present_and_the_command_line_wins(tmp_path):
    folder = tmp_path / "my_conf"
    (folder / "local").mkdir(parents=True)
    (folder / "local" / "default.yaml").write_text(
        "# @package _global_\ncluster:\n  partition: mine\n  account: lab\n"
    )
    search = f"hydra.searchpath=[file://{folder}]"
    cfg = compose_config([search, "dataset=cifar10"], output_dir=tmp_path)
    assert cfg.cluster.partition == "mine" and cfg.cluster.account == "lab"
    cfg = compose_config([search, "cluster.partition=other"], output_dir=tmp_path)
    assert cfg.cluster.partition == "other" and cfg.cluster.account == "lab"
    # none present: the defaults
    assert compose_config([], output_dir=tmp_path).cluster.partition is None


def test_a_local_default_is_git_ignored_and_the_example_is_not():
    if shutil.which("git") is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("needs git and a checkout")
    ignored = subprocess.run(
        ["git", "check-ignore", "conf/local/default.yaml", "conf/local/example.yaml"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert ignored == ["conf/local/default.yaml"]


def test_a_run_returns_the_optimised_metric_and_names_what_it_has(tmp_path):
    from ncib.config import ConfigError, objective

    cfg = compose_config(["optimized_metric=linear_eval/test_acc/m1"], output_dir=tmp_path)
    metrics = {"linear_eval/test_acc/m1": 0.75, "train/loss/m0": 2.0}
    assert objective(cfg, metrics) == 0.75
    assert objective(compose_config([], output_dir=tmp_path), metrics) is None
    with pytest.raises(ConfigError, match=r"linear_eval/test_acc/m1.*train/loss/m0"):
        objective(cfg, {"train/loss/m0": 2.0})


@pytest.mark.parametrize(
    "overrides,allowed",
    [
        (["optimized_metric=analysis/nc1"], "train/loss/m1, linear_eval/train_acc/m0"),
        (["optimized_metric=linear_eval/test_acc/m0", "~linear_eval"], "train/loss/m1"),
    ],
)
def test_an_optimised_metric_the_run_cannot_return_is_refused_before_training(
    overrides, allowed, tmp_path
):
    from ncib.config import ConfigError, validate

    cfg = compose_config(overrides, output_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"optimized_metric=.*cannot be used") as err:
        validate(cfg)
    assert allowed in str(err.value)
    if "~linear_eval" in overrides:
        assert "linear_eval/" not in str(err.value).split("returns:")[1]


def test_an_optuna_search_optimises_the_linear_evaluation(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    sweep = tmp_path / "sweep"
    proc = run_app(
        "hparams_search=supcon_optuna",
        "debug=fast",
        "linear_eval=cached",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.sampler.n_startup_trials=2",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    best = OmegaConf.load(sweep / "optimization_results.yaml")
    tables = [json.loads((j / "linear_eval.json").read_text()) for j in sweep.glob("*_digits_*")]
    assert len(tables) == 2
    assert best.best_value == pytest.approx(max(t["test_acc/m0"] for t in tables))


@pytest.mark.parametrize(
    "target,fix",
    [
        ("lightning.pytorch.callbacks.EarlyStopping", "pytorch_lightning.callbacks.EarlyStopping"),
        (
            "lightning.fabric.plugins.environments.SLURMEnvironment",
            "lightning_fabric.plugins.environments.SLURMEnvironment",
        ),
    ],
)
def test_a_unified_lightning_target_is_refused_naming_the_standalone_one(target, fix, tmp_path):
    from ncib.config import ConfigError, validate

    cfg = compose_config([], output_dir=tmp_path)
    OmegaConf.update(cfg, "callbacks.stop", {"_target_": target, "monitor": "m"}, force_add=True)
    with pytest.raises(ConfigError, match=rf"callbacks\.stop\._target_='{target}'.*name it {fix}"):
        validate(cfg)
    OmegaConf.update(cfg, "callbacks.stop._target_", fix)
    validate(cfg)  # the standalone package's name passes


# --- the commands in the README and docs, as a user pastes them into bash or zsh ---

DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
SHELLS = {"", "bash", "sh", "shell", "console", "zsh"}
COMMAND = re.compile(r"^(?:\$ )?((?:python3? -m ncib|ncib )\S*.*)$")
INLINE = re.compile(r"`(python3? -m ncib[^`]*)`")


def _shell_blocks(text: str) -> list[str]:
    """The bodies of the fenced code blocks in a shell language (or none)."""
    blocks, lang, body = [], None, []
    for line in text.splitlines():
        fence = re.match(r"\s*```(\w*)", line)
        if fence and lang is None:
            lang, body = fence.group(1), []
        elif fence:
            if lang in SHELLS:
                blocks.append("\n".join(body))
            lang = None
        elif lang is not None:
            body.append(line)
    return blocks


def _commands() -> list[tuple[str, str]]:
    found = []
    for path in DOCS:
        text = path.read_text()
        for block in _shell_blocks(text):
            for line in re.sub(r"\\\n\s*", " ", block).splitlines():
                m = COMMAND.match(line.strip())
                if m:
                    found.append((path.name, m.group(1)))
        found += [(path.name, " ".join(c.split())) for c in INLINE.findall(text)]
    for path in sorted((REPO_ROOT / "conf").rglob("*.yaml")):
        for line in path.read_text().splitlines():
            m = re.match(r"\s*#\s*((?:python3? -m ncib|ncib )\S*.*)$", line)
            if m:
                found.append((str(path.relative_to(REPO_ROOT)), m.group(1)))
    return found


def _scan(command: str) -> tuple[str, str]:
    """``command`` up to its first unquoted comment or shell operator (``>``, ``|``, ``;``,
    ``&``), and the characters in it that zsh would expand outside quotes: ``[ ] * ?`` (globs)
    and a word-initial ``~name`` (a user's home: ``~callbacks.gib`` is an error in zsh; ``~/``
    is the user's own home, meant)."""
    quote, bad, i = None, "", 0
    while i < len(command):
        c = command[i]
        if quote:
            if c == quote:
                quote = None
            elif c == "\\" and quote == '"':
                i += 1
        elif c in "'\"":
            quote = c
        elif c == "\\":
            i += 1
        elif c in "#><|;&" and (c != "#" or i == 0 or command[i - 1].isspace()):
            return command[:i].rstrip(), bad
        elif c in "[]*?" or (
            c == "~" and (i == 0 or command[i - 1].isspace()) and command[i + 1 : i + 2].isalpha()
        ):
            bad += c
        i += 1
    return command, bad


def unquoted_globs(command: str) -> str:
    return _scan(command)[1]


def test_the_scanner_finds_an_unquoted_list_and_passes_a_quoted_one():
    assert unquoted_globs("python -m ncib.run seed_pair=[0,1]") == "[]"
    assert unquoted_globs("python -m ncib.run 'seed_pair=[0,1]'  # seed_pair=[0,1]") == ""
    assert unquoted_globs('python -m ncib.run "a=[1]" b=*') == "*"
    assert unquoted_globs("python -m ncib.run ~callbacks.gib a=b~c --config-dir ~/c") == "~"
    assert unquoted_globs("python -m ncib.run '~callbacks.gib' > out[1].txt") == ""


def test_every_documented_command_quotes_what_zsh_would_glob():
    commands = _commands()
    assert len(commands) > 30  # the scan found the docs' commands
    bad = [f"{where}: {cmd}" for where, cmd in commands if unquoted_globs(cmd)]
    assert not bad, "quote these for zsh (docs/configuration.md, Quoting):\n" + "\n".join(bad)


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh not installed")
def test_zsh_passes_every_documented_command_to_ncib_unchanged():
    # each command's words, as zsh hands them to the program (print instead of running it);
    # <placeholders> stand for a user's values and would be redirections in any shell
    failed = []
    for where, cmd in _commands():
        line = re.sub(r"<[^<>]*>", "PLACEHOLDER", _scan(cmd)[0])
        proc = subprocess.run(
            ["zsh", "-f", "-c", f"print -rl -- {line}"], capture_output=True, text=True, timeout=30
        )
        if proc.returncode != 0:
            failed.append(f"{where}: {cmd}: {proc.stderr.strip()}")
    assert not failed, "\n".join(failed)


def test_completion_offers_the_seed_sets(tmp_path):
    proc = run_app("-sc", "query=bash", cwd=tmp_path, timeout=120, env={"COMP_LINE": "ncib seeds="})
    assert proc.returncode == 0, proc.stderr
    assert set(proc.stdout.split()) == {f"seeds={name}" for name in SEED_SETS}
