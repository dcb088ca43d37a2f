"""autoresearch's result contract: a `---` line, then `key: value` lines."""

from __future__ import annotations

import math
import re

__all__ = ["parse_summary", "has_block", "metric_value", "numeric_metrics", "missing_metric"]

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def parse_summary(text: str) -> dict[str, float | str]:
    """Returns the key: value lines after the LAST line that is exactly '---' (stripped)."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == "---"]
    if not starts:
        return {}
    # The last block wins: a candidate may print fake blocks, the trusted harness prints last.
    summary: dict[str, float | str] = {}
    for line in lines[starts[-1] + 1 :]:
        key, sep, value = line.partition(":")
        key = key.strip()
        if sep and _KEY.fullmatch(key):
            summary[key] = _number_or_text(value.strip())
    return summary


def has_block(text: str) -> bool:
    """Whether the output has a '---' line at all (a result block may follow it)."""
    return any(line.strip() == "---" for line in text.splitlines())


def missing_metric(text: str, name: str) -> str:
    """Why `name` has no finite value in the output's result block, naming what the block did
    have: the first thing to read when a metric name is misspelt."""
    if not has_block(text):
        return f"no '---' line in the output, so no result block to read '{name}:' from"
    summary = parse_summary(text)
    if name in summary:
        return f"'{name}: {summary[name]}' after the last '---' line is not a finite number"
    keys = ", ".join(list(summary)[:12]) or "no 'key: value' lines"
    return f"no finite '{name}:' after the last '---' line; the block has: {keys}"


def _number_or_text(value: str) -> float | str:
    """A float where `float()` accepts the text, else the text itself."""
    try:
        return float(value)
    except ValueError:
        return value


def metric_value(summary: dict[str, float | str], name: str) -> float | None:
    """The finite float under `name`, or None (missing, not numeric, nan or inf)."""
    value = summary.get(name)
    if isinstance(value, float) and math.isfinite(value):
        return value
    return None


def numeric_metrics(summary: dict[str, float | str]) -> dict[str, float]:
    """Only the finite numeric entries (recorded with each trial)."""
    return {k: v for k in summary if (v := metric_value(summary, k)) is not None}
