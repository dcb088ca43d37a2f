"""The plain-text reply format every LLM proposer must accept: a hypothesis, then SEARCH/REPLACE.

    Hypothesis: a lower learning rate suits the shorter run
    train.py
    <<<<<<< SEARCH
    LR = 0.04
    =======
    LR = 0.03
    >>>>>>> REPLACE

The file's path is the last non-empty line before `<<<<<<< SEARCH` (Markdown fences and
emphasis around it are ignored). An empty SEARCH creates the file. Pure functions: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["EditError", "Edit", "Reply", "parse_reply", "apply_edits"]

_HYPOTHESIS = re.compile(r"^\W*hypothesis\W*:\s*(.+?)\s*$", re.IGNORECASE)
_SEARCH = re.compile(r"^\s*<{5,9} ?SEARCH\s*$")
_DIVIDER = re.compile(r"^\s*={5,9}\s*$")
_REPLACE = re.compile(r"^\s*>{5,9} ?REPLACE\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


class EditError(ValueError):
    """The reply cannot be turned into a change; the message is shown to the model on retry."""


@dataclass(frozen=True)
class Edit:
    path: str
    search: str
    replace: str


@dataclass(frozen=True)
class Reply:
    hypothesis: str
    edits: list[Edit]


def parse_reply(text: str) -> Reply:
    """The hypothesis and the edits of a model's reply, or EditError saying what is wrong."""
    lines = text.splitlines()
    found = next((m.group(1) for line in lines if (m := _HYPOTHESIS.match(line))), "")
    hypothesis = found.strip(" *_`")  # Markdown emphasis around the line is common
    if not hypothesis:
        raise EditError("the reply has no `Hypothesis: <one line>` line; start with one")
    edits: list[Edit] = []
    i = 0
    while i < len(lines):
        if not _SEARCH.match(lines[i]):
            if _DIVIDER.match(lines[i]) or _REPLACE.match(lines[i]):
                raise EditError(f"line {i + 1}: `{lines[i].strip()}` without a `<<<<<<< SEARCH` before it")
            i += 1
            continue
        path = _path_before(lines, i)
        divider = _find(lines, i + 1, _DIVIDER, "=======", i)
        end = _find(lines, divider + 1, _REPLACE, ">>>>>>> REPLACE", i)
        edits.append(Edit(path, _joined(lines[i + 1:divider]), _joined(lines[divider + 1:end])))
        i = end + 1
    if not edits:
        raise EditError("the reply has no edit: give the file path, then a "
                        "`<<<<<<< SEARCH` / `=======` / `>>>>>>> REPLACE` block")
    return Reply(hypothesis, edits)


def apply_edits(files: dict[str, str], edits: list[Edit]) -> dict[str, str]:
    """The new full text of every file the edits change; EditError if one cannot apply."""
    changed: dict[str, str] = {}
    for n, edit in enumerate(edits, 1):
        if edit.path.startswith(("/", "~")) or ".." in edit.path.replace("\\", "/").split("/"):
            raise EditError(f"edit {n}: {edit.path} is not a path inside the repository")
        current = changed.get(edit.path, files.get(edit.path))
        if current is None:
            if edit.search:
                raise EditError(f"edit {n}: {edit.path} does not exist; to create it, leave SEARCH empty")
            changed[edit.path] = edit.replace
            continue
        changed[edit.path] = _replace_once(current, edit, n)
    changed = {path: text for path, text in changed.items() if text != files.get(path)}
    if not changed:
        raise EditError("the edits change nothing")
    return changed


def _replace_once(text: str, edit: Edit, n: int) -> str:
    if not edit.search:
        raise EditError(f"edit {n}: SEARCH is empty but {edit.path} exists; copy the lines to replace")
    count = text.count(edit.search)
    if count == 1:
        return text.replace(edit.search, edit.replace, 1)
    if count > 1:
        raise EditError(f"edit {n}: the SEARCH text occurs {count} times in {edit.path}; "
                        f"include more lines so it matches one place")
    loose = _loose_match(text, edit.search)
    if loose is None:
        first = edit.search.strip().splitlines()[0] if edit.search.strip() else ""
        raise EditError(f"edit {n}: the SEARCH text is not in {edit.path} (it begins {first[:80]!r}); "
                        f"copy the lines exactly as they are in the file")
    start, end = loose
    return text[:start] + edit.replace + text[end:]


def _loose_match(text: str, search: str) -> tuple[int, int] | None:
    """The one span of text whose lines equal search's lines up to trailing whitespace."""
    want = [line.rstrip() for line in search.splitlines()]
    have = text.splitlines(keepends=True)
    offsets = [0]
    for line in have:
        offsets.append(offsets[-1] + len(line))
    spans = [(offsets[i], offsets[i + len(want)]) for i in range(len(have) - len(want) + 1)
             if [line.rstrip() for line in have[i:i + len(want)]] == want]
    return spans[0] if len(spans) == 1 else None


def _path_before(lines: list[str], search_at: int) -> str:
    for line in reversed(lines[:search_at]):
        if not line.strip() or _FENCE.match(line):
            continue
        path = line.strip().strip("`*:# ").strip()
        if path and " " not in path:
            return path
        break
    raise EditError(f"line {search_at + 1}: put the file's path on the line before `<<<<<<< SEARCH`")


def _find(lines: list[str], start: int, marker: re.Pattern[str], name: str, opened: int) -> int:
    for j in range(start, len(lines)):
        if marker.match(lines[j]):
            return j
        if _SEARCH.match(lines[j]):
            break
    raise EditError(f"the block opened at line {opened + 1} has no `{name}` line")


def _joined(lines: list[str]) -> str:
    """Block lines as file text: every line ends with a newline, as in the file."""
    return "".join(line + "\n" for line in lines)
