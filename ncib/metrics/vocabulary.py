"""The vocabulary of the metric registry (:mod:`ncib.metrics.registry`): the members' names,
the axes a key template ranges over, the groups that own keys, and :class:`Metric`, one family
of keys. Standard library only."""

from __future__ import annotations

import itertools
import string
from dataclasses import dataclass

__all__ = ["AXES", "GROUPS", "MEMBERS", "Metric", "member_name"]

MEMBERS = ("m0", "m1")
"""Names of the two members of a seed pair: member ``i`` has seed ``seed_pair[i]``."""


def member_name(index: int) -> str:
    """``"m0"``, ``"m1"``, … for the member at ``index`` of the pair."""
    return f"m{int(index)}"


AXES: dict[str, tuple[str, ...]] = {
    "member": MEMBERS,
    # the two kinds of encoder features: raw Z, and its normal scores (the "ranked" features)
    "features": ("raw", "normal"),
    # inputs of the analysis probe (Table 2): raw Z, normal scores, and T_K
    "probe_input": ("raw", "normal", "tk"),
    # where neural collapse is measured: raw Z, and T_K
    "space": ("raw", "tk"),
    "split": ("train", "test"),
    # the two ends of an interval of a held-out number (docs/math.md §5.5)
    "bound": ("lo", "hi"),
}

# owner → what it is and the prefix its keys carry when logged
GROUPS: dict[str, tuple[str, str]] = {
    "identifiability": ("the analysis: CCA and CKA between the members", "analysis/"),
    "gib": ("the analysis: Gaussian information bottleneck between the members", "analysis/"),
    "simplex_etf": ("the analysis: neural collapse and the analysis probe", "analysis/"),
    "classifier": (
        "the analysis: the classifier side of neural collapse, NC2 of the classifier rows and "
        "NC3 (only for objectives that train a classifier: objective=ce or mse)",
        "analysis/",
    ),
    "transfer": ("the zero-shot transfer experiment: T_k across dimensions k, and K′", "analysis/"),
    "linear_eval": ("offline linear evaluation at the end of training (Table 1)", "linear_eval/"),
    "train": ("the training loop", ""),
}


@dataclass(frozen=True)
class Metric:
    """One family of keys.

    Attributes:
        template: key with ``{axis}`` placeholders (see :data:`AXES`), without the group prefix.
        meaning: what the value is, in one line.
        group: the owner (a key of :data:`GROUPS`).
        shape: ``"scalar"`` for logged scalars; otherwise the shape of a record entry
            (``"(r,)"``: one value per canonical pair …), stored in the records file only.
    """

    template: str
    meaning: str
    group: str
    shape: str = "scalar"

    @property
    def axes(self) -> tuple[str, ...]:
        return tuple(f for _, f, _, _ in string.Formatter().parse(self.template) if f)

    def keys(self) -> list[str]:
        """Every concrete key of the family, in axis order."""
        values = [AXES[a] for a in self.axes]
        return [
            self.template.format(**dict(zip(self.axes, combo)))
            for combo in itertools.product(*values)
        ]
