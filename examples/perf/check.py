"""The guard: the tokenizer's tests (`python check.py`, standard library only). A faster
tokenizer that breaks any of them is refused before it is timed (status guard_failed).

They test `solution.tokenize` as it is configured (its METHOD and CHUNK_LINES), against
hand-written answers and against reference.py on a generated corpus. They run in the guard's
own jail, in the candidate's process, so they keep honest code honest; the score phase checks
every held-out answer again where the candidate cannot reach.
"""

import random
import sys
import unittest

import reference
import solution


def corpus(seed: int, lines: int) -> str:
    """Lines mixing every kind, the edge cases among them (escapes, `//` and `**`, comments
    right after code, blank lines, no final newline)."""
    rng = random.Random(seed)
    atoms = ["x", "_y2", "total", "0", "42", "3.14", "7.", '""', '"a b"', r'"q\"q"', r'"back\\"', r'"t\tn\n"',
             "==", "!=", "<=", ">=", "->", "**", "//", "+", "-", "*", "/", "%", "<", ">", "=", "(", ")", "[",
             "]", "{", "}", ",", ".", ":", ";", "# note", "#", " ", "\t", "a1.b2", "1.2.3", "x==y", "**=//"]
    text = "\n".join("".join(rng.choice(atoms) for _ in range(rng.randrange(0, 12))) for _ in range(lines))
    # a comment eats the rest of its line, so one drawn mid-line hides the atoms after it: fine
    return text


class Kinds(unittest.TestCase):
    def test_each_kind(self) -> None:
        self.assertEqual(solution.tokenize('f(x1, 2.5) -> "s"\n'), [
            ("NAME", "f"), ("OP", "("), ("NAME", "x1"), ("OP", ","), ("NUMBER", "2.5"), ("OP", ")"),
            ("OP", "->"), ("STRING", '"s"'), ("NEWLINE", "\n")])

    def test_two_character_operators_win_over_one(self) -> None:
        self.assertEqual([t for _, t in solution.tokenize("a**b//c==d!=e<=f>=g")],
                         ["a", "**", "b", "//", "c", "==", "d", "!=", "e", "<=", "f", ">=", "g"])

    def test_a_number_takes_a_dot_only_before_a_digit(self) -> None:
        self.assertEqual(solution.tokenize("7.x 1.25"), [
            ("NUMBER", "7"), ("OP", "."), ("NAME", "x"), ("NUMBER", "1.25")])

    def test_strings_keep_their_quotes_and_escapes(self) -> None:
        self.assertEqual(solution.tokenize(r'"a \"b\" \\" x'), [("STRING", r'"a \"b\" \\"'), ("NAME", "x")])

    def test_comments_spaces_and_tabs_make_no_token_but_line_breaks_do(self) -> None:
        self.assertEqual(solution.tokenize("a # b c\n\n\tb  # x"), [
            ("NAME", "a"), ("NEWLINE", "\n"), ("NEWLINE", "\n"), ("NAME", "b")])

    def test_empty(self) -> None:
        self.assertEqual(solution.tokenize(""), [])

    def test_tokens_are_tuples_of_str(self) -> None:
        tokens = solution.tokenize("a = 1\n")
        self.assertIsInstance(tokens, list)
        self.assertTrue(all(type(t) is tuple and len(t) == 2 and all(type(s) is str for s in t) for t in tokens))


class Errors(unittest.TestCase):
    def test_unknown_characters_are_refused(self) -> None:
        for text in ["a $ b", "x = 'q'", "é", "a\rb", "1 ! 2", "\x0c"]:
            with self.subTest(text=text), self.assertRaises(ValueError):
                solution.tokenize(text)

    def test_a_string_ends_on_its_line(self) -> None:
        for text in ['"open', '"open\n"', '"ends in a backslash\\', '"a\\\nb"']:
            with self.subTest(text=text), self.assertRaises(ValueError):
                solution.tokenize(text)


class AgreesWithTheReference(unittest.TestCase):
    def agrees(self, text: str) -> None:
        """The first difference only: unittest's diff of two long lists takes minutes."""
        got, want = solution.tokenize(text), reference.tokenize(text)
        if got != want:
            at = next((i for i, (g, w) in enumerate(zip(got, want, strict=False)) if g != w), min(len(got), len(want)))
            self.fail(f"token {at}: got {got[at:at + 3]}, the reference has {want[at:at + 3]}")

    def test_a_generated_corpus(self) -> None:
        for seed in range(20):
            with self.subTest(seed=seed):
                self.agrees(corpus(seed, 60))

    def test_long_lines_and_many_lines(self) -> None:
        self.agrees(corpus(99, 3) * 50 + "\n" * 300 + corpus(7, 400) + "\n")


if __name__ == "__main__":
    sys.exit(0 if unittest.main(exit=False, verbosity=1).result.wasSuccessful() else 1)
