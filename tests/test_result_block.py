"""Exact-value tests of the `---` / `key: value` result contract."""

from __future__ import annotations

import math

from workers.result_block import metric_value, numeric_metrics, parse_summary


def test_padded_values_become_floats() -> None:
    text = "step 10 loss 3.2\n---\nval_bpb:          0.997900\ntraining_seconds: 300.1\n"
    assert parse_summary(text) == {"val_bpb": 0.9979, "training_seconds": 300.1}


def test_last_block_wins() -> None:
    text = "---\nval_bpb: 0.1\nfake: 1\n  ---  \nval_bpb: 0.9979\n"
    assert parse_summary(text) == {"val_bpb": 0.9979}


def test_no_block_is_empty() -> None:
    assert parse_summary("val_bpb: 0.5\n-- \n----\n") == {}


def test_empty_block_is_empty() -> None:
    assert parse_summary("val_bpb: 0.5\n---\n") == {}


def test_non_numeric_value_stays_stripped_string() -> None:
    summary = parse_summary("---\nstatus:   ok  \nnote: a: b\nval_bpb: 1\n")
    assert summary == {"status": "ok", "note": "a: b", "val_bpb": 1.0}
    assert metric_value(summary, "status") is None
    assert metric_value(summary, "val_bpb") == 1.0


def test_nan_and_inf_parse_but_are_not_metrics() -> None:
    summary = parse_summary("---\na: nan\nb: inf\nc: -Infinity\nd: 2.5\n")
    nan = summary["a"]
    assert isinstance(nan, float) and math.isnan(nan)
    assert summary["b"] == math.inf and summary["c"] == -math.inf
    assert [metric_value(summary, k) for k in "abcd"] == [None, None, None, 2.5]
    assert numeric_metrics(summary) == {"d": 2.5}


def test_missing_metric_is_none() -> None:
    assert metric_value({"val_bpb": 0.5}, "loss") is None


def test_junk_lines_skipped() -> None:
    text = "---\nno colon here\n: empty key\n9lives: 1\nbad key: 2\n\nok.key-1_x : 3\n_p: x\n"
    assert parse_summary(text) == {"ok.key-1_x": 3.0, "_p": "x"}


def test_numeric_metrics_keeps_only_finite_floats() -> None:
    summary: dict[str, float | str] = {"a": 1.0, "b": "text", "c": math.nan, "d": -2.0}
    assert numeric_metrics(summary) == {"a": 1.0, "d": -2.0}
