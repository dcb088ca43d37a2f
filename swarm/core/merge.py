"""A three-way merge of text, line by line, that combines changes to different lines even when
the lines are adjacent. Pure.

git's merge calls two changes to neighbouring lines a conflict, and real targets keep their
constants on adjacent lines (karpathy's train.py does): `LR = 3e-4` raised by one worker and
`WARMUP = 100` on the next line lowered by another must combine. Here a conflict is two
different changes to the same lines of the base (or two insertions at the same place), or two
touching changes that share a line (which a repeated line makes ambiguous).
"""

from __future__ import annotations

from dataclasses import dataclass
from difflib import SequenceMatcher

__all__ = ["Hunk", "hunks", "merge_lines"]


@dataclass(frozen=True)
class Hunk:
    """Lines start..end of the base (end excluded; start == end for an insertion) replaced."""

    start: int
    end: int
    lines: tuple[str, ...]


def hunks(base: list[str], changed: list[str]) -> list[Hunk]:
    """The edits that turn `base` into `changed`, in order."""
    matcher = SequenceMatcher(None, base, changed, autojunk=False)
    return [Hunk(i1, i2, tuple(changed[j1:j2])) for tag, i1, i2, j1, j2 in matcher.get_opcodes() if tag != "equal"]


def _overlap(a: Hunk, b: Hunk) -> bool:
    if a.start == a.end and b.start == b.end:
        return a.start == b.start  # two insertions at one place: which goes first is a guess
    if a.start == a.end:
        return b.start < a.start < b.end
    if b.start == b.end:
        return a.start < b.start < a.end
    return a.start < b.end and b.start < a.end


def _in_place(h: Hunk) -> bool:
    return h.end > h.start and len(h.lines) == h.end - h.start


def _clash(a: Hunk, b: Hunk, base: list[str]) -> bool:
    """Overlapping edits clash. Touching ones combine when each rewrites its own lines one for
    one (the adjacent-constants case) or when they share no line: where a line repeats, the two
    diffs may place one edit on different copies (each side deleting "one" of two equal lines),
    and their touching regions would apply it twice."""
    if _overlap(a, b):
        return True
    if not (a.end == b.start or b.end == a.start) or (_in_place(a) and _in_place(b)):
        return False
    seen_a = {*base[a.start:a.end], *a.lines}
    return any(line in seen_a for line in (*base[b.start:b.end], *b.lines))


def merge_lines(base: str, ours: str, theirs: str) -> str | None:
    """`ours`' and `theirs`' changes to `base` together; None where they touch the same lines
    differently. Identical changes on both sides count once."""
    if ours in (theirs, base):
        return theirs
    if theirs == base:
        return ours
    lines = base.splitlines(keepends=True)
    mine, other = hunks(lines, ours.splitlines(keepends=True)), hunks(lines, theirs.splitlines(keepends=True))
    shared = set(mine) & set(other)
    mine, other = [h for h in mine if h not in shared], [h for h in other if h not in shared]
    if any(_clash(a, b, lines) for a in mine for b in other):
        return None
    merged, at = [], 0
    for hunk in sorted([*mine, *other, *shared], key=lambda h: (h.start, h.end)):
        merged += lines[at:hunk.start]
        merged += hunk.lines
        at = hunk.end
    return "".join(merged + lines[at:])
