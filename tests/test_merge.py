"""Merging winners: the line-by-line three-way merge (swarm/core/merge.py) and the pool's unions
and replays on real git repositories (coordinator/pool.py), on a file whose constants stand on
adjacent lines, as real targets keep them (where `git merge` and `git cherry-pick` conflict)."""

from __future__ import annotations

from pathlib import Path

import git
import pytest

from coordinator.pool import Pool, merge_file
from swarm.core import gitops
from swarm.core.merge import merge_lines

__all__: list[str] = []

BASE = "LR = 0.04\nWARMUP = 100\nDEPTH = 4\nWIDTH = 256\n"


def edit(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new)


# -- merge_lines ---------------------------------------------------------------------------


def test_changes_to_adjacent_lines_combine() -> None:
    ours, theirs = edit(BASE, "LR = 0.04", "LR = 0.03"), edit(BASE, "WARMUP = 100", "WARMUP = 50")
    assert merge_lines(BASE, ours, theirs) == "LR = 0.03\nWARMUP = 50\nDEPTH = 4\nWIDTH = 256\n"


def test_git_calls_the_same_adjacent_changes_a_conflict(tmp_path: Path) -> None:
    # the reason merge_lines exists: git's own three-way merge refuses this pair
    for name, text in (("base", BASE), ("ours", edit(BASE, "LR = 0.04", "LR = 0.03")),
                       ("theirs", edit(BASE, "WARMUP = 100", "WARMUP = 50"))):
        (tmp_path / name).write_text(text)
    merged = git.Git(tmp_path).execute(["git", "merge-file", "-p", "ours", "base", "theirs"],
                                       with_extended_output=True, with_exceptions=False)
    assert merged[0] != 0 and "<<<<<<<" in merged[1]


def test_two_different_changes_to_one_line_conflict() -> None:
    assert merge_lines(BASE, edit(BASE, "LR = 0.04", "LR = 0.03"), edit(BASE, "LR = 0.04", "LR = 0.05")) is None


def test_the_same_change_on_both_sides_counts_once() -> None:
    ours = edit(BASE, "LR = 0.04", "LR = 0.03")
    theirs = edit(ours, "WIDTH = 256", "WIDTH = 512")
    assert merge_lines(BASE, ours, theirs) == theirs


def test_a_deleted_line_and_a_change_to_its_neighbour_combine() -> None:
    ours, theirs = edit(BASE, "WARMUP = 100\n", ""), edit(BASE, "DEPTH = 4", "DEPTH = 6")
    assert merge_lines(BASE, ours, theirs) == "LR = 0.04\nDEPTH = 6\nWIDTH = 256\n"


def test_touching_changes_around_a_repeated_line_conflict_rather_than_apply_one_twice() -> None:
    # each side deletes one of the two "x" lines; the two diffs place it on different copies
    assert merge_lines("a\nx\nx\nb\n", "A\nx\nb\n", "a\nx\nB\n") is None


def test_insertions_at_one_place_conflict_and_at_two_places_combine() -> None:
    first, second = BASE + "A = 1\n", BASE + "B = 2\n"
    assert merge_lines(BASE, first, second) is None
    assert merge_lines(BASE, "X = 0\n" + BASE, second) == "X = 0\n" + BASE + "B = 2\n"


def test_a_side_unchanged_gives_the_other() -> None:
    changed = edit(BASE, "DEPTH = 4", "DEPTH = 8")
    assert merge_lines(BASE, BASE, changed) == changed
    assert merge_lines(BASE, changed, BASE) == changed


@pytest.mark.parametrize(("base", "changed", "current", "merged"), [
    (None, b"new\n", None, b"new\n"),  # added by the change
    (None, b"new\n", b"new\n", b"new\n"),  # added on both sides alike
    (b"old\n", None, b"old\n", None),  # deleted by the change
    (b"old\n", b"old\n", None, None),  # untouched by the change, deleted on best
    (b"\x00\x01", b"\x00\x02", b"\x00\x01", b"\x00\x02"),  # binary, changed on one side
])
def test_a_file_merges_when_one_side_alone_changed_it(base: bytes | None, changed: bytes | None,
                                                       current: bytes | None, merged: bytes | None) -> None:
    assert merge_file(base, changed, current) == merged


@pytest.mark.parametrize(("base", "changed", "current"), [
    (None, b"one\n", b"two\n"),  # added twice, differently
    (b"old\n", None, b"changed\n"),  # deleted by the change, changed on best
    (b"\x00\x01", b"\x00\x02", b"\x00\x03"),  # binary, changed on both sides
])
def test_a_file_changed_on_both_sides_beyond_a_line_merge_conflicts(base: bytes | None, changed: bytes | None,
                                                                    current: bytes | None) -> None:
    assert type(merge_file(base, changed, current)).__name__ == "Conflict"


# -- the pool's unions and replays, on real git ----------------------------------------------


class Repository:
    """A run's repo/ with train.py at BASE on swarm/best, and a way to commit changes on it."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "repo"
        self.git = gitops.init_repo(self.dir)
        (self.dir / "train.py").write_text(BASE)
        self.base = gitops.commit_all(self.git, "the target as given")[0]
        self.pool = Pool(self.dir)

    def change(self, parent: str, old: str, new: str) -> str:
        text = self.git.git.show(f"{parent}:train.py", strip_newline_in_stdout=False)
        self.git.git.checkout("-q", "--force", "--detach", parent)
        (self.dir / "train.py").write_text(edit(text, old, new))
        return gitops.commit_all(self.git, f"{old} -> {new}")[0]

    def text(self, commit: str) -> str:
        return str(self.git.git.show(f"{commit}:train.py", strip_newline_in_stdout=False))


@pytest.fixture
def repository(tmp_path: Path) -> Repository:
    return Repository(tmp_path)


def test_a_union_combines_winners_on_adjacent_lines_and_leaves_out_a_conflicting_one(
        repository: Repository) -> None:
    base = repository.base
    lr = repository.change(base, "LR = 0.04", "LR = 0.03")
    warmup = repository.change(base, "WARMUP = 100", "WARMUP = 50")
    depth = repository.change(base, "DEPTH = 4", "DEPTH = 6")
    other_lr = repository.change(base, "LR = 0.04", "LR = 0.05")  # the same line as the first part
    union = repository.pool.union([(lr, base), (warmup, base), (other_lr, base), (depth, base)], base,
                                  "union of 1, 2, 4", "refs/swarm/unions/00009")
    assert (union.included, union.conflicted, union.clashed) == ((0, 1, 3), (), (2,))  # with part 0, not best
    assert union.commit is not None
    assert repository.text(union.commit) == "LR = 0.03\nWARMUP = 50\nDEPTH = 6\nWIDTH = 256\n"
    assert repository.git.commit(union.commit).parents[0].hexsha == base
    assert repository.git.commit("refs/swarm/unions/00009").hexsha == union.commit
    assert gitops.tree_of(repository.git, union.commit) == union.tree


def test_a_union_takes_a_winner_proposed_on_an_older_best(repository: Repository) -> None:
    base = repository.base
    newer = repository.change(base, "WIDTH = 256", "WIDTH = 512")  # best moved since
    stale = repository.change(base, "DEPTH = 4", "DEPTH = 3")  # the line next to the moved one
    fresh = repository.change(newer, "LR = 0.04", "LR = 0.02")
    union = repository.pool.union([(stale, base), (fresh, newer)], newer, "union", "refs/swarm/unions/1")
    assert union.included == (0, 1) and union.commit is not None
    assert repository.text(union.commit) == "LR = 0.02\nWARMUP = 100\nDEPTH = 3\nWIDTH = 512\n"


def test_a_union_whose_parts_all_conflict_makes_no_commit(repository: Repository) -> None:
    base = repository.base
    newer = repository.change(base, "LR = 0.04", "LR = 0.01")
    stale = repository.change(base, "LR = 0.04", "LR = 0.09")
    union = repository.pool.union([(stale, base)], newer, "union", "refs/swarm/unions/2")
    assert (union.commit, union.tree, union.included, union.conflicted) == (None, None, (), (0,))  # with best
    with pytest.raises(git.BadName):
        repository.git.commit("refs/swarm/unions/2")


def test_a_stale_winner_replays_onto_a_best_that_changed_the_next_line(repository: Repository) -> None:
    base = repository.base
    newer = repository.change(base, "WARMUP = 100", "WARMUP = 200")
    stale = repository.change(base, "LR = 0.04", "LR = 0.06")
    replayed = repository.pool.replay(stale, newer, "LR up, rebased", "refs/swarm/rebased/00004")
    assert replayed.commit is not None
    assert repository.text(replayed.commit) == "LR = 0.06\nWARMUP = 200\nDEPTH = 4\nWIDTH = 256\n"
    assert repository.git.commit(replayed.commit).parents[0].hexsha == newer
    assert gitops.cherry_pick(gitops.open_repo(repository.dir), stale, newer) is None  # git alone: conflict


def _commit_files(repository: Repository, parent: str, edit_tree) -> str:  # noqa: ANN001
    repository.git.git.checkout("-q", "--force", "--detach", parent)
    edit_tree(repository.dir)
    return gitops.commit_all(repository.git, "a change to files")[0]


def test_a_union_keeps_modes_and_symbolic_links(repository: Repository) -> None:
    base = repository.base

    def executable_and_link(root: Path) -> None:
        (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
        (root / "run.sh").chmod(0o755)
        (root / "train.link").symlink_to("train.py")
    part = _commit_files(repository, base, executable_and_link)
    other = repository.change(base, "DEPTH = 4", "DEPTH = 5")
    union = repository.pool.union([(part, base), (other, base)], base, "union", "refs/swarm/unions/3")
    assert union.included == (0, 1) and union.commit is not None
    tree = repository.git.commit(union.commit).tree
    assert (tree / "run.sh").mode == 0o100755
    assert (tree / "train.link").mode == 0o120000
    assert (tree / "train.link").data_stream.read() == b"train.py"


def test_a_file_that_becomes_a_directory_merges_or_conflicts_but_never_fails(repository: Repository) -> None:
    base = repository.base

    def file_to_directory(root: Path) -> None:
        (root / "train.py").unlink()
        (root / "train.py").mkdir()
        (root / "train.py" / "model.py").write_text("X = 1\n")
    part = _commit_files(repository, base, file_to_directory)
    union = repository.pool.union([(part, base)], base, "union", "refs/swarm/unions/4")
    assert union.included == (0,) and union.commit is not None
    assert repository.git.git.show(f"{union.commit}:train.py/model.py") == "X = 1"
    # onto a best that changed train.py meanwhile: a conflict, not an exception
    newer = repository.change(base, "LR = 0.04", "LR = 0.01")
    union = repository.pool.union([(part, base)], newer, "union", "refs/swarm/unions/5")
    assert (union.included, union.conflicted) == ((), (0,))


def test_a_part_that_best_s_layout_cannot_take_is_a_conflict_not_left_waiting(repository: Repository) -> None:
    base = repository.base

    def adds_a_file(root: Path) -> None:
        (root / "notes").write_text("a file on best\n")

    def adds_under_a_folder(root: Path) -> None:
        (root / "notes").mkdir()
        (root / "notes" / "x.md").write_text("a file in a folder\n")
    best = _commit_files(repository, base, adds_a_file)
    part = _commit_files(repository, base, adds_under_a_folder)
    union = repository.pool.union([(part, base)], best, "union", "refs/swarm/unions/6")
    assert (union.commit, union.included, union.conflicted, union.clashed) == (None, (), (0,), ())
