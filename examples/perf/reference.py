"""The specification of `tokenize`, written for clarity, not speed: the guard's tests and the
score phase both compare the candidate with it. Readonly: the candidate cannot move the spec."""

import re

__all__ = ["KINDS", "tokenize", "render"]

KINDS = ("NAME", "NUMBER", "STRING", "OP", "NEWLINE")
_RULES = [
    ("NAME", r"[A-Za-z_][A-Za-z0-9_]*"),
    ("NUMBER", r"[0-9]+(?:\.[0-9]+)?"),
    ("STRING", r'"(?:[^"\\\n]|\\[^\n])*"'),  # one line; a backslash escapes the next character
    ("OP", r"==|!=|<=|>=|->|\*\*|//|[-+*/%<>=()\[\]{},.:;]"),  # two-character operators first
    ("NEWLINE", r"\n"),
    (None, r"[ \t]+|#[^\n]*"),  # spaces, tabs and comments make no token
]
_COMPILED = [(kind, re.compile(rule)) for kind, rule in _RULES]


def tokenize(text: str) -> list[tuple[str, str]]:
    """(kind, text) pairs; ValueError at the first character no rule matches."""
    out, pos = [], 0
    while pos < len(text):
        kind, match = next(((kind, m) for kind, rule in _COMPILED if (m := rule.match(text, pos))), (None, None))
        if match is None:
            raise ValueError(f"unexpected character {text[pos]!r} at {pos}")
        if kind is not None:
            out.append((kind, match.group()))
        pos = match.end()
    return out


def render(tokens: list[tuple[str, str]]) -> bytes:
    """The bytes the score phase compares: one `kind<TAB>text` per token, joined by NUL (a
    NEWLINE token's text is a line break, so lines cannot be the separator)."""
    return "\0".join(f"{kind}\t{text}" for kind, text in tokens).encode()
