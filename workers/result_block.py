"""autoresearch's result contract: a `---` line, then `key: value` lines."""

from __future__ import annotations

import math
import re

__all__ = ["parse_summary", "metric_value", "numeric_metrics"]

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
