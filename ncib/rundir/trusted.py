"""Which ``_target_`` s of a run directory's config ncib instantiates.

``python -m ncib.analyse``, ``python -m ncib.linear_eval`` and the transfer experiment build the
model and the data from a run directory's ``.hydra/config.yaml`` with Hydra's ``instantiate``,
which imports and calls whatever a ``_target_`` names. Run directories are shared between
people and clusters, so before anything is built every ``_target_`` of such a config must be
admitted here (:func:`check_targets`); otherwise the command fails naming the file, the key and
the target, and nothing is built. Admitted:

* ncib's own classes, and the builder functions of ``ncib.models`` (backbones, schedules);
* torch modules and optimisers: classes under ``torch.nn`` and ``torch.optim`` (learning-rate
  schedulers included); torchvision's model classes and model builders;
* the Lightning ``Trainer`` and Lightning's loggers, callbacks and strategies
  (``pytorch_lightning.*`` or ``lightning.pytorch.*``);
* whatever ``NCIB_TRUSTED_TARGETS`` lists, comma-separated: a dotted name admits itself and
  everything under it (``NCIB_TRUSTED_TARGETS=mylab.models,other.pkg.Net``), for users who
  extend ncib with their own classes (docs/configuration.md). Only the environment can widen
  the list: a config cannot admit its own targets.

Every ``_target_`` of the shipped ``conf/`` is admitted (tests/rundir/test_untrusted_files.py composes
every option and checks). Why: docs/design.md §9.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["ENV_VAR", "UntrustedTargetError", "check_targets", "is_admitted", "targets_of"]

ENV_VAR = "NCIB_TRUSTED_TARGETS"
_LIGHTNING = ("pytorch_lightning", "lightning.pytorch")
# where a class must be defined (and its target start), and where functions may be
_CLASS_FAMILIES = (
    "ncib.",
    "torch.nn.",
    "torch.optim.",
    "torchvision.models.",
    *(f"{pl}.{part}." for pl in _LIGHTNING for part in ("loggers", "callbacks", "strategies")),
)
_FUNCTION_FAMILIES = ("ncib.models.",)


class UntrustedTargetError(ValueError):
    """A config asked to instantiate something outside the allow-list; nothing was built."""


def _user_entries() -> list[str]:
    return [e.strip() for e in os.environ.get(ENV_VAR, "").split(",") if e.strip()]


def _under(name: str, prefixes) -> bool:
    return any(name == p.rstrip(".") or name.startswith(p) for p in prefixes)


def _torchvision_builders() -> set:
    try:
        import torchvision.models as tvm
    except ImportError:  # pragma: no cover - torchvision is a dependency
        return set()
    return {tvm.get_model_builder(name) for name in tvm.list_models()}


def is_admitted(target: str) -> bool:
    """Whether ``target`` (a dotted name, as in ``_target_``) may be instantiated.

    Only names under an admitted family are imported to look at them (importing ncib, torch,
    torchvision or Lightning runs nothing but their own code); the object must then be a class
    defined in that family — or a builder function of ``ncib.models`` or torchvision — and
    reached under its own public name (no ``_private`` step)."""
    if not isinstance(target, str) or not target:
        return False
    if _under(target, [f"{e}." for e in _user_entries()]):
        return True
    if any(part.startswith("_") for part in target.split(".")):
        return False
    if target in (f"{pl}.Trainer" for pl in _LIGHTNING):
        return True
    if not _under(target, _CLASS_FAMILIES):
        return False
    from hydra._internal.utils import _locate

    try:
        obj = _locate(target)
    except Exception:
        return False
    module = getattr(obj, "__module__", "") or ""
    if inspect.isclass(obj):  # defined in an admitted family, wherever it was reached from
        return _under(module, _CLASS_FAMILIES)
    if inspect.isfunction(obj):
        return (_under(target, _FUNCTION_FAMILIES) and _under(module, _FUNCTION_FAMILIES)) or (
            target.startswith("torchvision.models.") and obj in _torchvision_builders()
        )
    return False


def targets_of(cfg) -> Iterator[tuple[str, object]]:
    """``(key, target)`` of every ``_target_`` in an OmegaConf config, with interpolations
    resolved (so a resolver that builds a node, ``${oc.create:...}``, is seen too); a value
    that cannot be resolved holds no target and is skipped, a ``_target_`` that cannot be
    resolved is yielded as written."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    def child(node, key):
        try:
            return node[key]
        except Exception:
            return None

    def walk(node, path: str):
        if isinstance(node, DictConfig):
            for key in node.keys():
                where = f"{path}.{key}" if path else str(key)
                if OmegaConf.is_missing(node, key):
                    continue
                if key == "_target_":
                    value = child(node, key)
                    yield where, value if value is not None else node._get_node(key)._value()
                else:
                    yield from walk(child(node, key), where)
        elif isinstance(node, ListConfig):
            for i in range(len(node)):
                yield from walk(child(node, i), f"{path}[{i}]")

    yield from walk(cfg, "")


def check_targets(cfg, source: str | Path) -> None:
    """Raise :class:`UntrustedTargetError` naming ``source`` (the config file), the key and the
    target of every ``_target_`` of ``cfg`` that :func:`is_admitted` refuses."""
    refused = [(key, target) for key, target in targets_of(cfg) if not is_admitted(target)]
    if refused:
        listed = "; ".join(f"{key}: {target!r}" for key, target in refused[:5])
        raise UntrustedTargetError(
            f"{source} asks to build {listed}, which ncib does not instantiate from a run "
            "directory: only ncib's classes, torch/torchvision modules and optimisers and "
            "Lightning's trainer, loggers, callbacks and strategies are admitted (nothing was "
            f"built). If you wrote that class and trust this directory, admit it with "
            f"{ENV_VAR}=<module or class>[,...] (docs/configuration.md)"
        )
