"""The SEARCH/REPLACE reply format: what parses, what applies, and the errors a model sees."""

from __future__ import annotations

import pytest

from workers.proposers.edits import Edit, EditError, apply_edits, parse_reply

__all__: list[str] = []

FILES = {"train.py": "import math\n\nLR = 0.04\n\nSTEPS = 500\n", "model.py": "X = 1\nX = 1\n"}

GOOD = """Hypothesis: a lower LR suits the shorter run
Some prose the model adds.

train.py
```python
<<<<<<< SEARCH
LR = 0.04
=======
LR = 0.03
>>>>>>> REPLACE
```
"""


def test_a_good_reply_parses_into_its_hypothesis_and_edit() -> None:
    reply = parse_reply(GOOD)
    assert reply.hypothesis == "a lower LR suits the shorter run"
    assert reply.edits == [Edit("train.py", "LR = 0.04\n", "LR = 0.03\n")]
    assert apply_edits(FILES, reply.edits) == {"train.py": "import math\n\nLR = 0.03\n\nSTEPS = 500\n"}


def test_several_blocks_apply_in_order_and_may_create_a_file() -> None:
    reply = parse_reply("**Hypothesis:** two things\n\n`train.py`:\n<<<<<<< SEARCH\nLR = 0.04\n=======\n"
                        "LR = 0.05\n>>>>>>> REPLACE\n\ntrain.py\n<<<<<<< SEARCH\nLR = 0.05\n\nSTEPS = 500\n"
                        "=======\nSTEPS = 400\n>>>>>>> REPLACE\nnotes/new.md\n<<<<<<< SEARCH\n=======\nhi\n"
                        ">>>>>>> REPLACE\n")
    assert reply.hypothesis == "two things"
    assert apply_edits(FILES, reply.edits) == {"train.py": "import math\n\nSTEPS = 400\n",
                                              "notes/new.md": "hi\n"}


def test_trailing_whitespace_differences_still_match_one_place() -> None:
    edits = [Edit("train.py", "LR = 0.04   \n", "LR = 0.02\n")]
    assert apply_edits(FILES, edits)["train.py"] == "import math\n\nLR = 0.02\n\nSTEPS = 500\n"


@pytest.mark.parametrize(("reply", "message"), [
    ("train.py\n<<<<<<< SEARCH\nLR = 0.04\n=======\nLR = 0.03\n>>>>>>> REPLACE\n",
     "the reply has no `Hypothesis: <one line>` line; start with one"),
    ("Hypothesis: x\nI would lower the LR.",
     "the reply has no edit: give the file path, then a `<<<<<<< SEARCH` / `=======` / "
     "`>>>>>>> REPLACE` block"),
    ("Hypothesis: x\ntrain.py\n<<<<<<< SEARCH\nLR = 0.04\n>>>>>>> REPLACE\n",
     "the block opened at line 3 has no `=======` line"),
    ("Hypothesis: x\ntrain.py\n<<<<<<< SEARCH\nLR = 0.04\n=======\nLR = 1\n",
     "the block opened at line 3 has no `>>>>>>> REPLACE` line"),
    ("Hypothesis: x\n\n<<<<<<< SEARCH\nLR = 0.04\n=======\nLR = 1\n>>>>>>> REPLACE\n",
     "line 3: put the file's path on the line before `<<<<<<< SEARCH`"),
    ("Hypothesis: x\n=======\n", "line 2: `=======` without a `<<<<<<< SEARCH` before it"),
], ids=["no-hypothesis", "no-edit", "no-divider", "no-end", "no-path", "stray-divider"])
def test_a_malformed_reply_says_what_is_wrong(reply: str, message: str) -> None:
    with pytest.raises(EditError) as caught:
        parse_reply(reply)
    assert str(caught.value) == message


@pytest.mark.parametrize(("edit", "message"), [
    (Edit("train.py", "LR = 0.4\n", "LR = 1\n"),
     "edit 1: the SEARCH text is not in train.py (it begins 'LR = 0.4'); copy the lines exactly as "
     "they are in the file"),
    (Edit("model.py", "X = 1\n", "X = 2\n"),
     "edit 1: the SEARCH text occurs 2 times in model.py; include more lines so it matches one place"),
    (Edit("missing.py", "A = 1\n", "A = 2\n"),
     "edit 1: missing.py does not exist; to create it, leave SEARCH empty"),
    (Edit("train.py", "", "A = 2\n"),
     "edit 1: SEARCH is empty but train.py exists; copy the lines to replace"),
    (Edit("train.py", "LR = 0.04\n", "LR = 0.04\n"), "the edits change nothing"),
    (Edit("../outside.py", "", "x\n"), "edit 1: ../outside.py is not a path inside the repository"),
    (Edit("/etc/passwd", "", "x\n"), "edit 1: /etc/passwd is not a path inside the repository"),
], ids=["absent", "ambiguous", "missing-file", "empty-search-on-existing", "no-op", "parent-dir",
        "absolute"])
def test_an_edit_that_cannot_apply_says_why(edit: Edit, message: str) -> None:
    with pytest.raises(EditError) as caught:
        apply_edits(FILES, [edit])
    assert str(caught.value) == message
