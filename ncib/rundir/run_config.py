"""A run directory as the commands that come after training see it (``ncib.analyse``,
``ncib.linear_eval``, ``ncib.report``, the transfer experiment): its composed config, checked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = [
    "ADDED_KEYS",
    "CONFIG_FILE",
    "SWEEP_FILE",
    "RunDirError",
    "check_run_dir",
    "fill_added_keys",
    "flat_config",
    "load_run_config",
]

CONFIG_FILE = ".hydra/config.yaml"
SWEEP_FILE = "multirun.yaml"  # Hydra writes it into a sweep directory before any job starts
# keys added to the config after runs were made, with the value that gives what such a run did:
# filled into an earlier run's config where it lacks them (a re-analysis can override them, a
# resume sees no change) and, at that value, no part of a recipe (ncib.recipe)
ADDED_KEYS = {"analysis.precision": "float32"}


class RunDirError(ValueError):
    """A path that is not a run directory of ``python -m ncib.run``."""


def check_run_dir(run_dir: str | Path) -> Path:
    """``run_dir`` as a Path if it holds a composed config; else :class:`RunDirError` naming the
    path and what was expected."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise RunDirError(f"run directory {run_dir} does not exist")
    if not run_dir.is_dir():
        raise RunDirError(
            f"{run_dir} is a file; expected a run directory written by python -m ncib.run"
        )
    if not (run_dir / CONFIG_FILE).is_file():
        raise RunDirError(
            f"{run_dir} is not an ncib run directory: expected {run_dir / CONFIG_FILE} (the composed "
            "config that python -m ncib.run writes there)"
        )
    return run_dir


def fill_added_keys(cfg):
    """``cfg`` (a config container or a ``DictConfig`` not in struct mode) with each of
    :data:`ADDED_KEYS` it lacks set to its earlier value, where the key's parent exists; in
    place, and returned."""
    for key, value in ADDED_KEYS.items():
        *parents, leaf = key.split(".")
        node = cfg
        for name in parents:
            node = node.get(name) if hasattr(node, "get") else None
        if hasattr(node, "get") and leaf not in node:
            node[leaf] = value
    return cfg


def load_run_config(
    run_dir: str | Path,
    overrides: Sequence[str] = (),
    error: Callable[[str], None] | None = None,
    to_instantiate: bool = True,
):
    """The composed config a run used, with ``paths.output_dir`` pointing at ``run_dir`` and
    ``key=value`` ``overrides`` merged in (a key the run's config does not have is an error).

    ``to_instantiate``: the caller will build things from it, so every ``_target_`` must be
    admitted (:func:`ncib.rundir.trusted.check_targets`, else ``UntrustedTargetError``); pass
    False to only read values. ``error`` (e.g. ``argparse.ArgumentParser.error``) is called
    with the message instead of raising.
    """
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    # here, not at the top: ncib.config imports the analysis plan, whose engine imports this
    # package (its records); and a command's wrong path fails before torch loads
    from ncib.config import register
    from ncib.rundir.trusted import UntrustedTargetError, check_targets

    try:
        run_dir = check_run_dir(run_dir)
        register()
        try:  # YAML as data: OmegaConf's loader builds no Python objects
            cfg = OmegaConf.load(run_dir / CONFIG_FILE)
        except Exception as err:
            raise RunDirError(f"{run_dir / CONFIG_FILE} is not a readable config: {err}") from err
        fill_added_keys(cfg)  # a run made before a key: overridable, and read as it ran
        OmegaConf.set_struct(cfg, True)
        cfg.paths.output_dir = str(run_dir)
        bad = [o for o in overrides if "=" not in o or o.startswith(("+", "~"))]
        if bad:
            raise RunDirError(f"overrides must be key=value pairs of the run's config; got {bad}")
        try:
            cfg.merge_with(OmegaConf.from_dotlist(list(overrides)))
        except OmegaConfBaseException as err:
            raise RunDirError(f"override not applicable to the config of {run_dir}: {err}") from err
        if to_instantiate:
            check_targets(cfg, run_dir / CONFIG_FILE)
    except (RunDirError, UntrustedTargetError) as err:
        if error is None:
            raise
        error(str(err))
        raise
    return cfg


def flat_config(node, keep_empty: bool = False, prefix: str = "") -> dict[str, object]:
    """A config container (``OmegaConf.to_container``) as ``{dotted key: value}``; an empty
    mapping is a key of its own with ``keep_empty`` (a resume compares it), else it vanishes
    (a recipe's identity, which W&B group names hash, was defined that way)."""
    if isinstance(node, dict):
        out: dict[str, object] = {}
        for k, v in node.items():
            out |= flat_config(v, keep_empty, f"{prefix}{k}.")
        return out or ({prefix[:-1]: {}} if keep_empty else {})
    return {prefix[:-1]: node}
