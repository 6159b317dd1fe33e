"""What a run prints: one headline line per analysis epoch, progress as plain lines where the
output is not a terminal (a SLURM ``.out`` file, a pipe), and less of the libraries' noise
(docs/design.md §2, "The console"). Nothing here imports Lightning: ``ncib.run`` imports this
module before Hydra sets up logging, and Lightning, imported that early, would attach its own
handler and bypass ``run.log``.

* :func:`headline` — the numbers a researcher looks at first, from a record: the held-out mean of
  the K leading CCA coefficients and its interval, NC1 of both members, the held-out I(X;Y) and
  its interval, the analysis probe's test accuracy on raw features and on T_K, the terminal-phase
  marker. :data:`HEADLINE` names them through the metric registry.
* :class:`ncib.callbacks.ProgressLines` — a Lightning callback that logs ``epoch 3/400: 50% (98/196 batches),
  loss m0 5.81 m1 5.90`` every ``every_percent`` of an epoch (and at its end) when stderr is
  not a terminal; Lightning's own bar, which redraws with cursor codes, is turned off there
  (``trainer.enable_progress_bar: ${ncib.interactive:}``).
* :func:`quiet_libraries` — drops Lightning's and PyTorch's messages that carry nothing for a
  run of ncib (a marketing tip, a logging-interval warning on small data sets, a deprecation in
  Lightning's own code); real warnings stay.
"""

from __future__ import annotations

import logging
import math
import sys
import warnings

from ncib.metrics import MEMBERS, key

__all__ = ["HEADLINE", "headline", "interactive", "quiet_libraries"]
log = logging.getLogger("ncib")

TERMINAL_ACC = 0.98  # the terminal-phase marker (docs/math.md, "terminal phase")

# (label, template, axes, percent): the headline numbers, each a registered metric; a template
# with a member axis is shown for both members
HEADLINE = (
    ("mean ρ_K", "cca/mean_k/{features}", {"features": "raw"}, False),
    ("NC1", "nc1/{space}/{member}", {"space": "raw"}, False),
    ("I(X;Y)", "gib/mi_xy", {}, False),
    ("probe raw", "probe/{split}_acc/{probe_input}/{member}", {"split": "test", "probe_input": "raw"}, True),
    ("probe T_K", "probe/{split}_acc/{probe_input}/{member}", {"split": "test", "probe_input": "tk"}, True),
)  # fmt: skip


def interactive() -> bool:
    """Whether stderr is a terminal (progress bars may redraw) rather than a file or a pipe."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _scalar(record: dict, name: str):
    for part in record.values():
        if isinstance(part, dict) and name in part.get("scalars", {}):
            value = part["scalars"][name]
            return None if value is None else float(value)
    return None


def _number(value: float | None, percent: bool) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{100 * value:.1f}%" if percent else f"{value:.3g}"


def _bounds(record: dict, name: str) -> str:
    """`` [lo, hi]`` of a held-out headline key when the record has its interval."""
    stat, _, rest = name.partition("/")
    if stat == "cca":  # cca/mean_k/raw → cca/mean_k_lo/raw
        head, _, features = rest.partition("/")
        lo, hi = (f"cca/{head}_{b}/{features}" for b in ("lo", "hi"))
    else:
        lo, hi = f"{name}_lo", f"{name}_hi"
    lo, hi = _scalar(record, lo), _scalar(record, hi)
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return ""
    return f" [{lo:.3g}, {hi:.3g}]"


def headline(record: dict) -> str:
    """One line of a record's headline numbers (:data:`HEADLINE`); missing ones are left out."""
    parts = [f"epoch {record.get('epoch')}"]
    for label, template, axes, percent in HEADLINE:
        if "member" in template:
            values = [_scalar(record, key(template, member=m, **axes)) for m in MEMBERS]
            if all(v is None for v in values):
                continue
            shown = " ".join(f"{m} {_number(v, percent)}" for m, v in zip(MEMBERS, values))
            parts.append(f"{label} {shown}")
        else:
            name = key(template, **axes)
            value = _scalar(record, name)
            if value is None:
                continue
            unit = " nats" if name.startswith("gib/mi_xy") else ""
            parts.append(f"{label} {_number(value, percent)}{unit}{_bounds(record, name)}")
    loo = [
        _scalar(record, key("ncc/loo_acc/{space}/{member}", space="raw", member=m)) for m in MEMBERS
    ]
    if all(v is not None for v in loo):
        parts.append("terminal" if min(loo) >= TERMINAL_ACC else "not terminal")
    return " | ".join(parts)


class _DropMessages(logging.Filter):
    def __init__(self, *fragments: str):
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(f in record.getMessage() for f in self.fragments)


def quiet_libraries() -> None:
    """Drop library messages that say nothing about an ncib run (see the module docstring)."""
    logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(
        _DropMessages("litlogger", "💡 Tip")
    )
    warnings.filterwarnings(
        "ignore", message=r"The number of training batches .* is smaller than the logging interval"
    )
    warnings.filterwarnings(
        "ignore", message=r".*isinstance\(treespec, LeafSpec\)` is deprecated", category=Warning
    )
