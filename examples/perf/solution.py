"""A tokenizer for a small code-like language: agents make it faster, its tests keep it right.

`tokenize(text)` returns (kind, text) pairs: NAME, NUMBER, STRING (quotes and escapes kept as
written), OP, and NEWLINE for every line break; spaces, tabs and `#` comments are dropped, and
any other character raises ValueError. `reference.py` (readonly) is the specification,
`check.py` the guard's tests, and `harness.py` times `tokenize` from outside this process.
The UPPER_CASE constants are what `mutate` moves; any faster correct code counts.
"""

import re

METHOD = "rules"  # choices: rules, scan, regex, findall
CHUNK_LINES = 1  # lines tokenized per call of the method: bounds the memory of one pass

OPERATORS_2 = frozenset(["==", "!=", "<=", ">=", "->", "**", "//"])
OPERATORS_1 = frozenset("+-*/%<>=()[]{},.:;")
_RULES = [(kind, re.compile(rule)) for kind, rule in [
    ("NAME", r"[A-Za-z_][A-Za-z0-9_]*"),
    ("NUMBER", r"[0-9]+(?:\.[0-9]+)?"),
    ("STRING", r'"(?:[^"\\\n]|\\.)*"'),
    ("OP", r"==|!=|<=|>=|->|\*\*|//|[-+*/%<>=()\[\]{},.:;]"),
    ("NEWLINE", r"\n"),
    (None, r"[ \t]+|#[^\n]*"),
]]
# findall's groups, in this order: name, number, string, operator, newline, error (skips: none)
_GROUPS = re.compile(r"""([A-Za-z_][A-Za-z0-9_]*)|([0-9]+(?:\.[0-9]+)?)|("(?:[^"\\\n]|\\.)*")"""
                     r"""|(==|!=|<=|>=|->|\*\*|//|[-+*/%<>=()\[\]{},.:;])|(\n)|[ \t]+|\#[^\n]*|(.)""")
_TOKEN = re.compile(r"""
    (?P<NAME>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<NUMBER>[0-9]+(?:\.[0-9]+)?)
  | (?P<STRING>"(?:[^"\\\n]|\\.)*")
  | (?P<OP>==|!=|<=|>=|->|\*\*|//|[-+*/%<>=()\[\]{},.:;])
  | (?P<NEWLINE>\n)
  | (?P<SKIP>[ \t]+|\#[^\n]*)
  | (?P<ERROR>.)
""", re.VERBOSE)


def _rules(text: str) -> list[tuple[str, str]]:
    """Each rule tried in turn at each position, as the specification reads: many regex calls
    per token."""
    out, pos = [], 0
    while pos < len(text):
        kind, match = next(((kind, m) for kind, rule in _RULES if (m := rule.match(text, pos))), (None, None))
        if match is None:
            raise ValueError(f"unexpected character {text[pos]!r} at {pos}")
        if kind is not None:
            out.append((kind, match.group()))
        pos = match.end()
    return out


def _scan(text: str) -> list[tuple[str, str]]:
    """One character at a time: the plain way, and the slow one in CPython."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if c == " " or c == "\t":
            i += 1
        elif c == "\n":
            out.append(("NEWLINE", c))
            i += 1
        elif c == "#":
            while i < n and text[i] != "\n":
                i += 1
        elif c.isascii() and (c.isalpha() or c == "_"):
            j = i + 1
            while j < n and text[j].isascii() and (text[j].isalnum() or text[j] == "_"):
                j += 1
            out.append(("NAME", text[i:j]))
            i = j
        elif "0" <= c <= "9":
            i = _number(text, i, out)
        elif c == '"':
            i = _string(text, i, out)
        elif text[i:i + 2] in OPERATORS_2:
            out.append(("OP", text[i:i + 2]))
            i += 2
        elif c in OPERATORS_1:
            out.append(("OP", c))
            i += 1
        else:
            raise ValueError(f"unexpected character {c!r} at {i}")
    return out


def _number(text: str, i: int, out: list[tuple[str, str]]) -> int:
    j, n = i, len(text)
    while j < n and "0" <= text[j] <= "9":
        j += 1
    if j + 1 < n and text[j] == "." and "0" <= text[j + 1] <= "9":
        j += 1
        while j < n and "0" <= text[j] <= "9":
            j += 1
    out.append(("NUMBER", text[i:j]))
    return j


def _string(text: str, i: int, out: list[tuple[str, str]]) -> int:
    j, n = i + 1, len(text)
    while j < n and text[j] != '"':
        if text[j] == "\n":
            break
        j += 2 if text[j] == "\\" and j + 1 < n and text[j + 1] != "\n" else 1
    if j >= n or text[j] != '"':
        raise ValueError(f"unterminated string at {i}")
    out.append(("STRING", text[i:j + 1]))
    return j + 1


def _regex(text: str) -> list[tuple[str, str]]:
    """One compiled alternation: the scanning loop runs in C, only each match costs Python."""
    out = []
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup
        if kind == "SKIP":
            continue
        if kind == "ERROR":
            raise ValueError(f"unexpected character {m.group()!r} at {m.start()}")
        out.append((kind, m.group()))
    return out


def _findall(text: str) -> list[tuple[str, str]]:
    """findall builds every match's groups in C; the loop only picks the group that is set,
    the commonest kinds first."""
    out = []
    for name, number, string, op, newline, error in _GROUPS.findall(text):
        if name:
            out.append(("NAME", name))
        elif op:
            out.append(("OP", op))
        elif number:
            out.append(("NUMBER", number))
        elif newline:
            out.append(("NEWLINE", newline))
        elif string:
            out.append(("STRING", string))
        elif error:
            raise ValueError(f"unexpected character {error!r}")
    return out


METHODS = {"rules": _rules, "scan": _scan, "regex": _regex, "findall": _findall}


def tokenize(text: str) -> list[tuple[str, str]]:
    method = METHODS[METHOD]
    # split on "\n" only: str.splitlines also breaks at \f or \x1c, which may sit in a string
    lines = text.split("\n")
    size = max(1, int(CHUNK_LINES))
    out: list[tuple[str, str]] = []
    for start in range(0, len(lines), size):
        chunk = "\n".join(lines[start:start + size])
        out += method(chunk + "\n" if start + size < len(lines) else chunk)
    return out
