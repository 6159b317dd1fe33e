"""Records written before the held-out numbers became the headline keys (docs/math.md §5.4).

Records without a ``schema`` entry (schema 1) named the in-sample numbers without a qualifier
(``gib/mi_xy``, ``cca/mean_k/raw``, ``lambda``, …) and the held-out ones ``…/heldout/…``.
:func:`upgrade_record` returns such a record under today's names (schema 2), so reports, sweep
reports and notebooks read old run directories unchanged; a record that already has a schema
is returned as it is. Standard library only, like the registry.
"""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["RECORD_SCHEMA", "upgrade_record"]

RECORD_SCHEMA = 2
"""The schema of the records ncib writes (the ``schema`` entry of each record)."""

# schema 1 → 2, per group: old scalar name → new scalar name
_SCALARS = {
    "identifiability": {
        **{
            f"cca/{stat}/{f}": f"cca/insample/{stat}/{f}"
            for stat in ("mean_k", "var_k", "std_k", "min_k")
            for f in ("raw", "normal")
        },
        **{
            f"cca/heldout/{stat}/{f}": f"cca/{stat}/{f}"
            for stat in ("mean_k", "var_k", "std_k")
            for f in ("raw", "normal")
        },
    },
    "gib": {
        **{
            f"gib/{name}": f"gib/insample/{name}"
            for name in (
                "mi_xy",
                "beta_crit/k",
                "beta_crit/k_next",
                "beta_tk",
                "i_tx_tk",
                "i_ty_tk",
                "i_ty_frac_tk",
            )
        },
        **{
            f"gib/heldout/{name}": f"gib/{name}"
            for name in ("mi_xy", "beta_crit/k", "beta_crit/k_next", "i_ty_frac_tk")
        },
    },
}
# old record entry → new record entry
_ENTRIES = {
    "identifiability": {
        **{f"cca/rho/{f}": f"cca/insample/rho/{f}" for f in ("raw", "normal")},
        **{f"cca/heldout/rho_k/{f}": f"cca/rho_k/{f}" for f in ("raw", "normal")},
    },
    "gib": {
        "lambda": "insample/lambda",
        "beta_crit": "insample/beta_crit",
        "information_curve": "insample/information_curve",
        "heldout/lambda": "lambda",
        "heldout/information_curve": "information_curve",
    },
}


def _renamed(mapping: dict[str, str], values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with every old name replaced at once (a name may be both old and new)."""
    return {mapping.get(name, name): value for name, value in values.items()}


def upgrade_record(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` under today's names (a copy; unchanged when it already has a ``schema``)."""
    if "schema" in record:
        return record
    out = copy.deepcopy(record)
    for group, scalars in _SCALARS.items():
        block = out.get(group)
        if not isinstance(block, dict):
            continue
        entries = {k: v for k, v in block.items() if k != "scalars"}
        new = _renamed(_ENTRIES[group], entries)
        if isinstance(block.get("scalars"), dict):
            new["scalars"] = _renamed(scalars, block["scalars"])
        out[group] = new
    out["schema"] = RECORD_SCHEMA
    return out
