"""Records of runs made before the held-out numbers became the headline keys are read under
today's names (ncib/metrics/legacy.py, docs/math.md §5.4)."""

from __future__ import annotations

import json

from ncib.metrics import keys
from ncib.metrics.legacy import RECORD_SCHEMA, upgrade_record
from ncib.rundir.records import read_records


def _old_record() -> dict:
    """A schema-1 record as ncib wrote it: in-sample unqualified, held out under heldout/."""
    return {
        "epoch": 3,
        "identifiability": {
            "scalars": {
                "cca/mean_k/raw": 0.91,  # in-sample
                "cca/heldout/mean_k/raw": 0.88,  # held out
                "cka/raw": 0.7,
            },
            "cca/rho/raw": [0.99, 0.9],
            "cca/heldout/rho_k/raw": [0.97],
        },
        "gib": {
            "scalars": {"gib/mi_xy": 40.0, "gib/heldout/mi_xy": 19.0, "gib/beta_tk": 6.0},
            "lambda": [0.1, 0.9],
            "heldout/lambda": [0.2, 1.0],
        },
    }


def test_old_names_move_to_their_new_places_at_once():
    new = upgrade_record(_old_record())
    ident, gib = new["identifiability"], new["gib"]
    assert ident["scalars"] == {
        "cca/insample/mean_k/raw": 0.91,
        "cca/mean_k/raw": 0.88,
        "cka/raw": 0.7,
    }
    assert ident["cca/insample/rho/raw"] == [0.99, 0.9] and ident["cca/rho_k/raw"] == [0.97]
    assert gib["scalars"] == {
        "gib/insample/mi_xy": 40.0,
        "gib/mi_xy": 19.0,  # the held-out number now has the unqualified name
        "gib/insample/beta_tk": 6.0,
    }
    assert gib["insample/lambda"] == [0.1, 0.9] and gib["lambda"] == [0.2, 1.0]
    assert new["schema"] == RECORD_SCHEMA and new["epoch"] == 3
    assert "schema" not in _old_record()  # a copy: the caller's record is untouched
    registered = set(keys("identifiability")) | set(keys("gib"))
    assert set(ident["scalars"]) | set(gib["scalars"]) <= registered
    registered_entries = set(keys("identifiability", False)) | set(keys("gib", False))
    assert {k for k in ident if k != "scalars"} | {k for k in gib if k != "scalars"} <= (
        registered_entries
    )


def test_a_current_record_is_left_as_it_is_and_files_are_read_upgraded(tmp_path):
    current = {"schema": RECORD_SCHEMA, "epoch": 4, "gib": {"scalars": {"gib/mi_xy": 19.0}}}
    assert upgrade_record(current) is current
    path = tmp_path / "analysis.jsonl"
    path.write_text(json.dumps(_old_record()) + "\n" + json.dumps(current) + "\n")
    old, new = read_records(path)
    assert old["gib"]["scalars"]["gib/mi_xy"] == 19.0 and new == current
