"""The console of a run: one headline line per analysis epoch, progress as plain lines and no
cursor codes where the output is a file, the libraries' noise quieted (ncib/console.py)."""

from __future__ import annotations

import re
import warnings

import pytest

from ncib.console import HEADLINE, headline
from ncib.metrics import key
from tests.report.test_report import synthetic_record

CURSOR = re.compile(r"\x1b\[|\r(?!\n)")  # ANSI escapes, carriage returns that redraw a line


def test_a_captured_run_has_no_cursor_codes_and_a_headline_per_analysis_epoch(digits_run):
    # the shared run's output, captured through pipes: bytes, decoded without newline
    # translation (a bar's "\r" redraws stay visible)
    out = digits_run.output.decode("utf-8", errors="replace")
    assert not CURSOR.search(out), CURSOR.search(out)
    heads = [line for line in out.splitlines() if re.search(r"\] - epoch \d+ \| mean ρ_K ", line)]
    analysed = [str(e) for e in digits_run.analysed]
    assert [re.search(r"- epoch (\d+) \|", h).group(1) for h in heads] == analysed
    assert all("NC1 m0 " in h and "I(X;Y) " in h and "probe raw m0 " in h for h in heads)
    last = digits_run.max_epochs
    for n in range(1, last + 1):  # every epoch's progress as a plain line, with the losses
        assert re.search(rf"epoch {n}/{last}: 100% \(6/6 batches\), loss m0 \d", out), n
    assert "members: " in out and "parameters" in out  # instead of Lightning's table
    for noise in ("litlogger", "Total Flops", "smaller than the logging interval", "LeafSpec"):
        assert noise not in out, noise
    log = (digits_run.path / "run.log").read_text()
    # the log file has them too
    assert len(re.findall(r"- epoch \d+ \| mean ρ_K ", log)) == len(analysed)


def test_the_headline_names_registered_metrics_with_their_intervals():
    for _, template, axes, _ in HEADLINE:  # every headline number is a registered metric
        if "member" in template:
            key(template, member="m0", **axes)
        else:
            key(template, **axes)
    line = headline(synthetic_record(10, 0.95))
    assert line.startswith("epoch 10 | mean ρ_K 0.85 [0.8, 0.9] | NC1 m0 0.0909 m1 0.0909")
    assert "I(X;Y) 30 nats [28, 33]" in line
    assert "probe raw m0 95.0% m1 94.0%" in line and "probe T_K m0 93.0% m1 92.0%" in line
    assert line.endswith("| terminal")  # leave-one-out NCC 0.99 and 0.98
    assert headline(synthetic_record(0, 0.5)).endswith("| not terminal")


def test_the_headline_leaves_out_what_a_record_lacks():
    record = synthetic_record(3, 0.9, with_gib=False)
    del record["identifiability"]
    line = headline(record)
    assert "mean ρ_K" not in line and "I(X;Y)" not in line and line.startswith("epoch 3 | NC1 ")


def test_refits_warn_once_for_all_not_once_each(make_collapsed_pair):
    from ncib.analysis import PairAnalysis

    train, test, y, y_test = make_collapsed_pair(0, k=4)
    for a in (train[1], test[1]):  # a duplicated column: every CCA (fit or refit) warns
        a[:, -1] = a[:, 0]
    pa = PairAnalysis(train, test, y, y_test, num_classes=4)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        iv = pa.intervals("raw")
    refits = [str(w.message) for w in caught if "heldout_intervals:" in str(w.message)]
    assert iv.refits == 20 and len(refits) == 1 and "in 20 CCA refits" in refits[0]
    assert "rank deficient" in refits[0]
    assert len(caught) < iv.refits  # not one warning per refit


@pytest.fixture
def make_collapsed_pair():
    from tests.analysis.conftest import collapsed_pair

    return collapsed_pair
