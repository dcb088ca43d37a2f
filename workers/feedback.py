"""What a trial tells the proposer besides its metric: the text its commands wrote to
SWARM_FEEDBACK_FILE (which cases and checks failed, and why), capped, and kept clear of the
held-out metric, which no prompt may ever show."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable
from pathlib import Path

__all__ = ["FEEDBACK_BYTES", "read_feedback", "without_heldout"]

# What one phase's feedback may hold; the coordinator keeps this much with the trial.
FEEDBACK_BYTES = 8192


def read_feedback(path: Path) -> str:
    """The feedback a phase left at `path` (a regular file, not followed if a link), capped;
    "" when there is none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return ""
        return os.read(fd, FEEDBACK_BYTES).decode("utf-8", errors="replace")
    finally:
        os.close(fd)


def without_heldout(text: str, names: Iterable[str]) -> str:
    """`text` without the lines that name a held-out metric (a result block's
    `pass_rate_heldout: 0.7`, a log line quoting it): what a proposer may be shown."""
    words = [re.escape(n) for n in names if n]
    if not words or not text:
        return text
    naming = re.compile(r"(?<![A-Za-z0-9_])(" + "|".join(words) + r")(?![A-Za-z0-9_])")
    return "".join(line for line in text.splitlines(keepends=True) if not naming.search(line))
