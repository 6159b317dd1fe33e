"""The report: tables and figures from records alone."""

from __future__ import annotations

import json

import pytest

from ncib.report import build_report, write_report
from ncib.report.tables import table2
from ncib.rundir.records import append_record
from tests.helpers.app import ncib


def synthetic_record(epoch, acc, with_gib=True):
    """A record shaped like the callbacks' (values made up, keys real, today's schema). The
    probe's training accuracy is 1 at every epoch: the terminal-phase marker must not read it."""
    etf = {}
    for kind in ("raw", "normal", "tk"):
        for i, m in enumerate(("m0", "m1")):
            etf[f"probe/test_acc/{kind}/{m}"] = acc - 0.01 * i - (0.02 if kind == "tk" else 0.0)
            etf[f"probe/train_acc/{kind}/{m}"] = 1.0
    for i, m in enumerate(("m0", "m1")):
        etf[f"ncc/loo_acc/raw/{m}"] = acc + 0.04 - 0.01 * i  # 0.98 for m1 at epoch 10
    for s in ("raw", "tk"):
        for m in ("m0", "m1"):
            etf |= {
                f"etf/equinorm/{s}/{m}": 0.3 / (1 + epoch),
                f"etf/angle_std_deg/{s}/{m}": 20.0 / (1 + epoch),
                f"etf/cos_mean/{s}/{m}": -0.1,
                f"nc1/{s}/{m}": 1.0 / (1 + epoch),
            }
    rec = {
        "schema": 2,
        "epoch": epoch,
        "global_step": 5 * epoch,
        "num_classes": 10,
        "k": 10,
        "feature_dim": 128,
        "num_train": 100,
        "num_test": 50,
        "warnings": ["a warning"] if epoch == 0 else [],
        "identifiability": {
            "scalars": {
                "cca/mean_k/raw": 0.85,
                "cca/mean_k_lo/raw": 0.8,
                "cca/mean_k_hi/raw": 0.9,
                "cca/var_k/raw": 0.01 / (1 + epoch),
                "cca/std_k/raw": 0.1 / (1 + epoch),
                "cca/mean_k/normal": 0.88,
                "cca/insample/mean_k/raw": 0.9,
            }
        },
        "simplex_etf": {"scalars": etf},
    }
    if with_gib:
        rec["gib"] = {
            "scalars": {
                "gib/i_tx_tk": 3.0,
                "gib/i_ty_tk": 2.0,
                "gib/insample/mi_xy": 40.0 + epoch,
                "gib/mi_xy": 20.0 + epoch,
                "gib/mi_xy_lo": 18.0 + epoch,
                "gib/mi_xy_hi": 23.0 + epoch,
                "gib/insample/i_ty_frac_tk": 0.9,
                "gib/i_ty_frac_tk": 0.5 + 0.01 * epoch,
            },
            "feature_scaling/m0": [1.0 + 0.01 * i for i in range(10)],
            "feature_scaling/m1": [1.0] * 10,
            "insample/information_curve": {
                "beta": [1, 2, 4],
                "i_tx": [0, 1, 3],
                "i_ty": [0, 0.8, 2.0],
                "i_xy": 2.2,
            },
            "information_curve": {
                "beta": [1, 2, 4],
                "i_tx": [0, 0.5, 1],
                "i_ty": [0, 0.4, 0.9],
                "i_xy": 1.0,
            },
        }
    return rec


@pytest.fixture
def run_dir(tmp_path):
    for epoch, acc in ((0, 0.5), (5, 0.8), (10, 0.95)):
        append_record(tmp_path / "analysis.jsonl", synthetic_record(epoch, acc))
    (tmp_path / "linear_eval.json").write_text(
        json.dumps(
            {
                "test_acc/m0": 0.95,
                "test_acc/m1": 0.96,
                "train_acc/m0": 1.0,
                "train_acc/m1": 1.0,
                "both_correct": 0.93,
                "num_test": 50,
            }
        )
    )
    return tmp_path


def test_tables_come_from_the_records(run_dir):
    report = write_report(run_dir)
    t1 = report.tables["table1"].rows[0]
    assert t1[1:] == pytest.approx([95.0, 96.0, 93.0])
    t2 = report.tables["table2"]
    assert "epoch 10" in t2.title
    assert [row[0].split(" ")[0] for row in t2.rows] == ["raw", "normal", "T_K"]
    assert "(128D)" in t2.rows[1][0] and "(10D)" in t2.rows[2][0]
    assert t2.rows[2][1:] == pytest.approx([93.0, 92.0, 92.5])
    per_epoch = report.tables["table2_per_epoch"].rows
    assert [r[0] for r in per_epoch] == [0, 5, 10]
    # the marker: min LOO-NCC 0.53, 0.83, 0.98 (the probe's training accuracy is 1 throughout)
    assert [r[-1] for r in per_epoch] == ["no", "no", "yes"]
    assert per_epoch[-1][-2] == pytest.approx(98.0)
    text = (run_dir / "report.md").read_text()
    assert "| digits" not in text and "Table 1" in text and "a warning" in text
    info = report.tables["information"].rows
    # held out with its interval, then in-sample
    assert [r[0] for r in info] == [0, 5, 10] and info[-1][1:3] == ["30 [28, 33]", 50.0]
    ident = report.tables["identifiability"].rows
    assert ident[-1][1] == "0.85 [0.8, 0.9]" and ident[-1][4] == 0.9  # held out, in-sample
    assert ident[-1][3] == "0.88"  # no interval recorded: the estimate alone
    cg = report.tables["compression_generalisation"].rows
    assert cg[-1][:3] == [10, "0.6", 0.9] and cg[-1][3:5] == pytest.approx([95.0, 94.0])
    assert "95 % interval" in text and "not the spread over seed pairs" in text
    for name in (
        "fig2_nc1_vs_identifiability",
        "fig3_etf_in_tk",
        "fig4b_feature_scaling",
        "information_curve",
        "compression_generalisation",
    ):
        path = report.figures[name]
        assert path.exists() and path.stat().st_size > 5000 and path.read_bytes()[:4] == b"\x89PNG"
        assert f"figures/{path.name}" in text


def test_missing_callbacks_drop_only_their_parts(tmp_path):
    append_record(tmp_path / "analysis.jsonl", synthetic_record(3, 0.9, with_gib=False))
    report = build_report(tmp_path)
    assert (
        "fig4b_feature_scaling" not in report.figures and "information_curve" not in report.figures
    )
    assert "fig3_etf_in_tk" in report.figures and "table1" not in report.tables


def test_table2_needs_every_probe():
    rec = synthetic_record(1, 0.9)
    del rec["simplex_etf"]["scalars"]["probe/test_acc/tk/m1"]
    assert table2(rec, 128, 10) is None


def test_cli_regenerates_the_same_report(run_dir):
    first = write_report(run_dir).markdown
    (run_dir / "report.md").unlink()
    proc = ncib("ncib.report", run_dir, cwd=run_dir)
    assert proc.returncode == 0, proc.stderr
    assert (run_dir / "report.md").read_text() == first


def test_cli_on_an_empty_directory_says_what_is_missing(tmp_path):
    proc = ncib("ncib.report", tmp_path, cwd=tmp_path)
    assert proc.returncode == 2 and "analysis.jsonl" in proc.stderr


def test_a_reanalysis_records_file_gets_its_own_report(run_dir):
    append_record(run_dir / "analysis-k5.jsonl", synthetic_record(10, 0.7))
    (run_dir / "analysis-k5.overrides").write_text("analysis.k=5\n")
    main = write_report(run_dir)
    other = write_report(run_dir, "analysis-k5.jsonl")
    assert other.path == run_dir / "report-k5.md" and main.path == run_dir / "report.md"
    assert all(p.parent.name == "figures-k5" for p in other.figures.values())
    text = other.path.read_text()
    assert "analysis.k=5" in text and "figures-k5/" in text
    assert "Re-analysis" not in main.path.read_text()


def test_the_cli_reads_a_real_run_config_in_a_fresh_process(run_dir, tmp_path):
    # the composed config holds ncib's own resolvers (dataset.num_classes is derived)
    from omegaconf import OmegaConf

    from tests.conftest import compose_config

    (run_dir / ".hydra").mkdir()
    (run_dir / ".hydra" / "config.yaml").write_text(
        OmegaConf.to_yaml(compose_config(["dataset.classes=[0,1,2]"]))
    )
    proc = ncib("ncib.report", run_dir, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "K = 3" in (run_dir / "report.md").read_text()
