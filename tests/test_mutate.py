"""The mutate proposer: which constants it sees, how it moves them, what it proposes."""

from __future__ import annotations

import ast
import random
from pathlib import Path

import pytest

from swarm.core.values import Cost
from workers.proposers.base import Proposal, ProposalContext, ProposalFailure
from workers.proposers.mutate import MutateProposer, Tunable, apply_value, find_tunables, perturb, step

__all__: list[str] = []

SOURCE = '''"""A fixture."""
import math

LR = 0.04  # learning rate
STEPS = 500
WARMUP: int = 10
BETA = -0.5
WEIGHT_DECAY = 3e-4
OPTIMIZER = "sgd"  # choices: sgd, 'adam', momentum
HEADS = 8  # model width; Choices: 4, 8, 16
lr = 0.1
DEBUG = True
TOTAL = 2**19
SCALE = 1e-3 * 4
NAME = "run"
X, Y = 1, 2
A = B = 3
ONLY = "a"  # choices: a
SEED = 42  # fixed: a lucky seed is noise
VOCAB = 256  # Fixed
WIDTH = 64  # not fixed, just a comment
TAG = "x # choices: x, y"
if math.pi > 3:
    INSIDE = 1
def f() -> None:
    NESTED = 2
class K:
    ATTR = 3
'''

EXPECTED = [
    Tunable("m.py", "LR", 4, 5, 9, 0.04, None),
    Tunable("m.py", "STEPS", 5, 8, 11, 500, None),
    Tunable("m.py", "WARMUP", 6, 14, 16, 10, None),
    Tunable("m.py", "BETA", 7, 7, 11, -0.5, None),
    Tunable("m.py", "WEIGHT_DECAY", 8, 15, 19, 3e-4, None),
    Tunable("m.py", "OPTIMIZER", 9, 12, 17, "sgd", ("sgd", "adam", "momentum")),
    Tunable("m.py", "HEADS", 10, 8, 9, 8, (4, 8, 16)),
    Tunable("m.py", "WIDTH", 21, 8, 10, 64, None),
]


def test_find_tunables_sees_exactly_the_top_level_upper_case_literals() -> None:
    assert find_tunables("m.py", SOURCE) == EXPECTED


def test_find_tunables_spans_are_utf8_byte_columns() -> None:
    source = 'K: "é" = -  2  # é\n'
    [t] = find_tunables("u.py", source)
    assert (t.col_start, t.col_end, t.value) == (10, 14, -2)
    assert apply_value(source, t, -4) == 'K: "é" = -4  # é\n'


def test_apply_value_changes_only_the_literal() -> None:
    beta, optimizer = EXPECTED[3], EXPECTED[5]
    source = apply_value(SOURCE, beta, -0.25)
    source = apply_value(source, optimizer, "adam")
    expected = SOURCE.replace("BETA = -0.5\n", "BETA = -0.25\n")
    expected = expected.replace('OPTIMIZER = "sgd"', 'OPTIMIZER = "adam"')
    assert source == expected


@pytest.mark.parametrize(
    ("index", "value", "line"),
    [
        (0, 0.05, "LR = 0.05  # learning rate"),
        (1, 1000, "STEPS = 1000"),
        (2, 20, "WARMUP: int = 20"),
        (4, 6e-4, "WEIGHT_DECAY = 6e-4"),
        (4, 3.75e-4, "WEIGHT_DECAY = 3.75e-4"),
        (6, 16, "HEADS = 16  # model width; Choices: 4, 8, 16"),
    ],
)
def test_apply_value_renders_in_the_original_style(index: int, value: float, line: str) -> None:
    t = EXPECTED[index]
    assert apply_value(SOURCE, t, value).splitlines()[t.line - 1] == line


def test_apply_value_keeps_line_endings_underscores_and_quotes() -> None:
    source = "X = 1\r\nN = 1_000_000\r\nS = 'a'  # choices: a, b\r\n"
    _, n, s = find_tunables("c.py", source)
    assert apply_value(source, n, 800000) == "X = 1\r\nN = 800_000\r\nS = 'a'  # choices: a, b\r\n"
    assert apply_value(source, s, "b") == "X = 1\r\nN = 1_000_000\r\nS = 'b'  # choices: a, b\r\n"


def test_apply_value_refuses_a_source_that_moved_on() -> None:
    with pytest.raises(ValueError, match="LR is no longer 0.04"):
        apply_value(SOURCE.replace("LR = 0.04", "LR = 0.07"), EXPECTED[0], 0.05)


EDGE = [
    Tunable("e.py", name, 1, 0, 1, value, None)
    for name, value in [("ONE", 1), ("TWO", 2), ("BIG", 4096), ("NEG", -1), ("ZERO", 0), ("ZF", 0.0), ("TINY", 1e-8)]
]


@pytest.mark.parametrize("t", EXPECTED + EDGE, ids=lambda t: t.name)
def test_perturb_always_moves_and_respects_choices_and_signs(t: Tunable) -> None:
    for seed in range(300):
        new = perturb(t, random.Random(seed))
        assert new != t.value
        assert type(new) is type(t.value) or t.choices is not None
        if t.choices is not None:
            assert new in t.choices
        if isinstance(t.value, int) and t.value >= 0:
            assert new >= 1
        if isinstance(t.value, int) and t.value < 0:
            assert new <= -1


def test_perturb_floats_keep_four_significant_digits() -> None:
    t = Tunable("f.py", "LR", 1, 0, 1, 0.0123456, None)
    moved = {perturb(t, random.Random(seed)) for seed in range(100)}
    assert moved == {0.006173, 0.009876, 0.01543, 0.02469}


def test_perturb_moves_zero_off_its_switch() -> None:
    zeros = {perturb(EDGE[5], random.Random(seed)) for seed in range(100)}
    assert zeros == {1e-3, 1e-2, 1e-1}
    assert perturb(EDGE[4], random.Random(0)) == 1


def test_proposer_is_deterministic_with_a_seed() -> None:
    context = ProposalContext(program="", files={"train.py": "LR = 0.04  # lr\n"})
    proposal = MutateProposer(seed=0).propose(context)
    assert proposal == Proposal(files={"train.py": "LR = 0.08  # lr\n"}, hypothesis="LR 0.04 -> 0.08")
    many = ProposalContext(program="", files={"b.py": SOURCE, "a.py": SOURCE.replace("m", "n")})
    first, second = MutateProposer(seed=7), MutateProposer(seed=7)
    assert [first.propose(many) for _ in range(20)] == [second.propose(many) for _ in range(20)]


def test_proposer_hypothesis_shows_the_literals_as_written() -> None:
    files = {"t.py": 'OPTIMIZER = "sgd"  # choices: sgd, adam\n'}
    proposal = MutateProposer(seed=0).propose(ProposalContext(program="", files=files))
    assert isinstance(proposal, Proposal)
    assert proposal.hypothesis == 'OPTIMIZER "sgd" -> "adam"'
    assert proposal.cost == Cost()


def test_proposer_fails_with_a_reason_when_nothing_is_tunable() -> None:
    files = {"train.py": "lr = 0.1\nDEBUG = True\n", "broken.py": "X = (", "notes.md": "LR = 0.1\n"}
    result = MutateProposer(seed=0).propose(ProposalContext(program="", files=files))
    assert result == ProposalFailure(
        "nothing to mutate: none of the editable files (broken.py, notes.md, train.py) has a "
        "top-level UPPER_CASE numeric constant or a constant with a `# choices: a, b, c` comment "
        "(only .py files are read)"
    )


def test_proposer_refuses_factors_that_cannot_move() -> None:
    with pytest.raises(ValueError, match="factors must be positive and not 1"):
        MutateProposer(factors=(1.0, 2.0))


def test_quadratic_example_has_exactly_its_four_knobs() -> None:
    path = Path(__file__).resolve().parents[1] / "examples" / "quadratic" / "train.py"
    tunables = find_tunables("train.py", path.read_text())
    assert [(t.name, t.value, t.choices) for t in tunables] == [
        ("A", 1.0, None),
        ("B", 1.0, None),
        ("C", 1.0, None),
        ("OPTIMIZER", "sgd", ("sgd", "momentum", "adam")),
    ]


def test_steps_add_a_unit_of_the_leading_digit_flip_a_floats_sign_or_scale() -> None:
    lr = Tunable("t.py", "LR", 1, 0, 1, 0.04, None)
    moved = {step(lr, random.Random(seed)) for seed in range(400)}
    assert {0.03, 0.05} <= moved  # additive: a factor reaches neither from 0.04
    assert -0.04 in moved  # the sign: a factor never flips it
    assert {0.02, 0.032, 0.05, 0.08} <= moved  # and the factors as before
    assert 0.04 not in moved


@pytest.mark.parametrize("t", EXPECTED + EDGE, ids=lambda t: t.name)
def test_a_step_always_moves_keeps_an_ints_sign_and_a_choices_list(t: Tunable) -> None:
    for seed in range(300):
        new = step(t, random.Random(seed))
        assert new != t.value
        if t.choices is not None:
            assert new in t.choices
        elif isinstance(t.value, int):
            assert type(new) is int and (new >= 1 if t.value >= 0 else new <= -1)


def test_now_and_then_two_constants_move_together() -> None:
    source = "A = 1.0\nB = 2.0\nC = 3.0\n"
    proposals = [MutateProposer(seed=seed).propose(ProposalContext(program="", files={"t.py": source}))
                 for seed in range(200)]
    pairs = [p for p in proposals if isinstance(p, Proposal) and "; " in p.hypothesis]
    assert 1 <= len(pairs) <= 30  # about one in twenty
    for pair in pairs:
        text = pair.files["t.py"]
        changed = [a for a, b in zip(source.splitlines(), text.splitlines(), strict=True) if a != b]
        assert len(changed) == 2 and len(pair.hypothesis.split("; ")) == 2


def test_two_constants_on_one_line_move_together_without_breaking_each_other() -> None:
    source = "A = 10; B = 20000\n"
    proposals = [MutateProposer(seed=seed).propose(ProposalContext(program="", files={"t.py": source}))
                 for seed in range(400)]
    pairs = [p for p in proposals if isinstance(p, Proposal) and "; " in p.hypothesis]
    assert pairs and all(isinstance(p, Proposal) for p in proposals)
    for pair in pairs:
        tree = ast.parse(pair.files["t.py"])
        values = {node.targets[0].id: node.value.value for node in tree.body  # type: ignore[attr-defined]
                  if isinstance(node, ast.Assign)}
        assert values["A"] != 10 and values["B"] != 20000, pair
