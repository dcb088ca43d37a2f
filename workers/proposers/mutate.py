"""The offline proposer: perturb one marked constant, population-based-training style."""

from __future__ import annotations

import ast
import io
import math
import random
import re
import tokenize
from dataclasses import dataclass

from workers.proposers.base import Proposal, ProposalContext, ProposalFailure

__all__ = ["FACTORS", "Tunable", "find_tunables", "perturb", "step", "apply_value", "MutateProposer"]

Value = int | float | str

FACTORS: tuple[float, ...] = (0.5, 0.8, 1.25, 2.0)
# Zero is usually an off switch (dropout, weight decay, warmup) whose useful size is
# unknown, so a zero float tries a few decades, and only upwards: such switches go negative rarely.
ZERO_FLOAT_STEPS: tuple[float, ...] = (1e-3, 1e-2, 1e-1)
# How moves are drawn: mostly a factor (PBT's), sometimes one unit of the leading digit added
# or taken away (a factor cannot reach 0.05 from 0.04), sometimes a float's sign flipped (a
# factor never does), and now and then two constants at once (for knobs that act together).
ADDITIVE_SHARE = 0.15
SIGN_SHARE = 0.05
TWO_AT_ONCE_SHARE = 0.05

_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
_CHOICES = re.compile(r"\bchoices:\s*(.*)$", re.IGNORECASE)
# `# fixed` pins a constant that looks tunable but must not move (a seed, a vocabulary size):
# a seed that "wins" is noise that got lucky.
_FIXED = re.compile(r"#\s*fixed\b", re.IGNORECASE)
_NOTHING_TUNABLE = (
    "nothing to mutate: none of the editable files ({paths}) has a top-level UPPER_CASE "
    "numeric constant or a constant with a `# choices: a, b, c` comment (only .py files are read)"
)


@dataclass(frozen=True)
class Tunable:
    """One top-level constant the mutate proposer may change."""

    path: str  # file it lives in
    name: str  # e.g. "LR"
    line: int  # 1-based line of the assignment (single-line statements only)
    col_start: int  # UTF-8 byte span of the literal on that line, as ast reports it
    col_end: int
    value: Value
    choices: tuple[Value, ...] | None  # from a trailing `# choices: a, b, c` comment


def find_tunables(path: str, source: str) -> list[Tunable]:
    """Every tunable constant of one Python source, in file order."""
    tree = ast.parse(source)  # first, so a broken file fails as SyntaxError, not in tokenize
    comments = _comments(source)
    found = (_tunable(path, node, comments) for node in tree.body)
    return [t for t in found if t is not None]


def perturb(t: Tunable, rng: random.Random, factors: tuple[float, ...] = FACTORS) -> Value:
    """A new value for t, never equal to t.value; choices, when given, are the only moves."""
    if t.choices:
        return rng.choice([c for c in t.choices if c != t.value])
    if isinstance(t.value, int):
        return _perturb_int(t.value, rng.choice(factors), rng)
    if isinstance(t.value, float):
        return _perturb_float(t.value, factors, rng)
    raise ValueError(f"{t.name}: a string without `# choices:` cannot be perturbed")


def step(t: Tunable, rng: random.Random, factors: tuple[float, ...] = FACTORS) -> Value:
    """A new value for t: a factor (`perturb`), an additive step or a sign flip (see the shares
    above); never t.value, and choices stay the only moves of a constant that has them."""
    draw = rng.random()
    if t.choices or isinstance(t.value, str) or t.value == 0:
        return perturb(t, rng, factors)
    if draw < SIGN_SHARE and isinstance(t.value, float):
        return -t.value  # an int is a count or a size: it keeps its sign
    if draw < SIGN_SHARE + ADDITIVE_SHARE:
        return _additive(t.value, rng)
    return perturb(t, rng, factors)


def _additive(value: int | float, rng: random.Random) -> int | float:
    """value plus or minus one unit of its leading digit (an int: at least 1), keeping its sign."""
    unit = 10 ** math.floor(math.log10(abs(value)))
    if isinstance(value, int):
        counted = value + rng.choice((-1, 1)) * max(1, int(unit))
        return counted if counted * value > 0 else value + (1 if value > 0 else -1) * max(1, int(unit))
    moved = float(f"{value + rng.choice((-1.0, 1.0)) * unit:.4g}")
    return moved if moved * value > 0 and moved != value else float(f"{value + math.copysign(unit, value):.4g}")


def apply_value(source: str, t: Tunable, new_value: Value) -> str:
    """source with only t's literal replaced by new_value; every other byte kept."""
    lines = io.StringIO(source, newline="").readlines()  # keeps each line's own ending
    raw = lines[t.line - 1].encode()
    new = _render(new_value, _literal_text(source, t)).encode()
    lines[t.line - 1] = (raw[: t.col_start] + new + raw[t.col_end :]).decode()
    return "".join(lines)


class MutateProposer:
    """Picks one tunable constant of the editable files at random and perturbs it."""

    def __init__(self, seed: int | None = None, factors: tuple[float, ...] = FACTORS) -> None:
        if not factors or any(f <= 0 or f == 1 for f in factors):
            raise ValueError(f"factors must be positive and not 1, got {factors!r}")
        self._rng = random.Random(seed)
        self._factors = factors

    def propose(self, context: ProposalContext) -> Proposal | ProposalFailure:
        """One constant changed (now and then two), with a hypothesis like `LR 0.04 -> 0.05`."""
        tunables = _collect(context.files)
        if not tunables:
            return ProposalFailure(_NOTHING_TUNABLE.format(paths=", ".join(sorted(context.files)) or "none"))
        count = 2 if len(tunables) > 1 and self._rng.random() < TWO_AT_ONCE_SHARE else 1
        files, moves = dict(context.files), []
        # the later place first (`A = 1; B = 2` share a line), so the earlier byte span still holds
        for t in sorted(self._rng.sample(tunables, count), key=lambda t: (t.path, -t.line, -t.col_start)):
            value = step(t, self._rng, self._factors)
            old = _literal_text(files[t.path], t)
            files[t.path] = apply_value(files[t.path], t, value)
            moves.append(f"{t.name} {old} -> {_render(value, old)}")
        changed = {path: text for path, text in files.items() if text != context.files[path]}
        return Proposal(files=changed, hypothesis="; ".join(sorted(moves)))


def _collect(files: dict[str, str]) -> list[Tunable]:
    """Tunables of every parseable Python file, sorted by path so a seed replays."""
    found: list[Tunable] = []
    for path in sorted(p for p in files if p.endswith(".py")):
        try:
            found += find_tunables(path, files[path])
        except (SyntaxError, ValueError):  # a broken baseline file offers nothing to tune
            continue
    return found


def _literal_text(source: str, t: Tunable) -> str:
    """The literal as written; refuses a source where t no longer holds its value."""
    raw = io.StringIO(source, newline="").readlines()[t.line - 1].encode()
    text = raw[t.col_start : t.col_end].decode()
    if _literal(text) != t.value:
        raise ValueError(f"{t.path}:{t.line}: {t.name} is no longer {t.value!r} (found {text!r})")
    return text


def _render(value: Value, like: str) -> str:
    """value as a literal in the style of like, the literal it replaces."""
    if isinstance(value, str):
        return _render_str(value, like)
    if isinstance(value, float) and "e" in like.lower() and isinstance(_literal(like), float):
        return _render_sci(value)
    if isinstance(value, int) and "_" in like:
        return f"{value:_}"  # 1_000_000 stays grouped
    return repr(value)


def _render_sci(value: float) -> str:
    """A float in the short scientific style people write: 3e-4, 2.5e-4, 1.25e3."""
    mantissa, exponent = f"{value:.3e}".split("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def _render_str(value: str, like: str) -> str:
    """value in like's quotes when it needs no escaping there, else Python's repr."""
    body = like.lstrip("rRuU")
    quote = body[:3] if body[:3] in ('"""', "'''") else body[:1]
    if quote not in ('"', "'", '"""', "'''") or quote[0] in value or "\\" in value:
        return repr(value)
    return f"{quote}{value}{quote}" if value.isprintable() else repr(value)


def _comments(source: str) -> dict[int, str]:
    """Line number -> comment text; tokenize, so a `#` inside a string is not a comment."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return {tok.start[0]: tok.string for tok in tokens if tok.type == tokenize.COMMENT}


def _tunable(path: str, node: ast.stmt, comments: dict[int, str]) -> Tunable | None:
    """The Tunable this top-level statement defines, or None."""
    target, value = _target_and_value(node)
    if target is None or value is None or not _NAME.fullmatch(target):
        return None
    if node.lineno != node.end_lineno:  # a span across lines is not worth the edge cases
        return None
    literal = _node_literal(value)
    if literal is None or value.end_col_offset is None:
        return None
    if _FIXED.match(comments.get(node.lineno, "")):
        return None
    choices = _choices(comments.get(node.lineno, ""), literal)
    if not _is_tunable(literal, choices):
        return None
    return Tunable(path, target, node.lineno, value.col_offset, value.end_col_offset, literal, choices)


def _target_and_value(node: ast.stmt) -> tuple[str | None, ast.expr | None]:
    """`NAME = v` or `NAME: T = v` as (NAME, v); anything else as (None, None)."""
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        return node.targets[0].id, node.value
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.simple:
        return node.target.id, node.value
    return None, None


def _node_literal(node: ast.expr) -> Value | None:
    """The value of an int, float or str constant, or of a negated number."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        operand = node.operand
        if isinstance(operand, ast.Constant) and isinstance(operand.value, int | float) and _is_number(operand.value):
            return -operand.value
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float | str) \
            and (_is_number(node.value) or isinstance(node.value, str)):
        return node.value
    return None


def _is_number(value: object) -> bool:
    """int or finite float, but not bool: True is an int to Python, not a knob to us."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)


def _is_tunable(value: Value, choices: tuple[Value, ...] | None) -> bool:
    """A number may move freely; a string only within choices; choices need another value."""
    if choices is not None:
        return any(c != value for c in choices)
    return _is_number(value)


def _choices(comment: str, value: Value) -> tuple[Value, ...] | None:
    """The values a `# choices: a, b, c` comment allows, or None without one."""
    match = _CHOICES.search(comment)
    items = [s.strip() for s in match.group(1).split(",")] if match else []
    parsed = [_choice(s, isinstance(value, str)) for s in items if s]
    return tuple(dict.fromkeys(parsed)) or None


def _choice(text: str, want_str: bool) -> Value:
    """One choice: a Python literal if it reads as one, else the bare word."""
    value = _literal(text)
    if value is None or (want_str and not isinstance(value, str)):
        return text  # a string constant keeps string choices: `1` stays "1"
    return value


def _literal(text: str) -> Value | None:
    """text as an int, float or str literal, or None."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return value if _is_number(value) or isinstance(value, str) else None


def _perturb_int(value: int, factor: float, rng: random.Random) -> int:
    """round(value * factor), or one step when that rounds back; a nonzero int keeps its sign."""
    if value == 0:
        return 1  # zero is usually a count or an off switch: only upwards makes sense
    sign, size = (1 if value > 0 else -1), abs(value)
    new = max(1, round(size * factor))
    if new == size:
        new = size + rng.choice((-1, 1)) if size > 1 else 2
    return sign * new


def _perturb_float(value: float, factors: tuple[float, ...], rng: random.Random) -> float:
    """value times a random factor, to 4 significant digits, different from value."""
    if value == 0.0:
        return rng.choice(ZERO_FLOAT_STEPS)
    for factor in rng.sample(factors, len(factors)):
        new = float(f"{value * factor:.4g}")
        if new != value:
            return new
    return value * max(factors, key=lambda f: abs(math.log(f)))  # factors too close to 1 to show in 4 digits
