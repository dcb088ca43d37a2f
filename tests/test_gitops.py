"""Git plumbing against real repositories in tmp_path (real git subprocesses, no mocks)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import git
import pytest

from swarm.core import gitops
from swarm.core.errors import GitError

LINES = [f"line {i}\n" for i in range(1, 11)]  # ten lines: edits to 2 and 9 merge cleanly


def _repo(path: Path, files: dict[str, str]) -> tuple[git.Repo, str]:
    """A fresh repository on swarm/best with `files` committed; (repo, commit)."""
    repo = gitops.init_repo(path)
    _write(path, files)
    commit, _ = gitops.commit_all(repo, "base")
    return repo, commit


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def _commit_on(repo: git.Repo, parent: str, files: dict[str, str], message: str) -> str:
    """A commit on top of `parent` with `files` rewritten (the repo's checkout is moved)."""
    repo.git.checkout("--force", "--detach", parent)
    _write(Path(repo.working_tree_dir), files)
    return gitops.commit_all(repo, message)[0]


def _edit_line(number: int, text: str) -> str:
    lines = list(LINES)
    lines[number - 1] = text + "\n"
    return "".join(lines)


def _show(repo: git.Repo, rev: str, path: str) -> str:
    return repo.git.show(f"{rev}:{path}", strip_newline_in_stdout=False)


# -- import_target -------------------------------------------------------------------------


def test_import_target_from_a_directory_copies_files_and_commits_once(tmp_path: Path) -> None:
    source = tmp_path / "source"
    _write(source, {"train.py": "A = 1\n", "sub/model.py": "X = 2\n", "program.md": "# rules\n",
                    ".git/marker": "not a repository of ours\n", "__pycache__/train.cpython-311.pyc": "x",
                    "sub/__pycache__/model.cpython-311.pyc": "x", "stray.pyc": "x",
                    ".venv/bin/python": "x", "runs/old/ledger.jsonl": "{}\n"})

    repo = gitops.import_target(str(source), tmp_path / "dest")

    assert repo.active_branch.name == gitops.BEST_BRANCH == "swarm/best"
    assert len(list(repo.iter_commits(gitops.BEST_BRANCH))) == 1
    assert repo.head.commit.message.strip() == "swarm: the target as given"
    assert sorted(repo.git.ls_files().splitlines()) == ["program.md", "sub/model.py", "train.py"]
    assert (tmp_path / "dest" / "sub" / "model.py").read_text() == "X = 2\n"
    assert not (tmp_path / "dest" / ".git" / "marker").exists()  # the source's .git is not copied
    assert not (tmp_path / "dest" / "__pycache__").exists()
    assert not (tmp_path / "dest" / "runs").exists()
    assert not repo.is_dirty(untracked_files=True)


def test_import_target_from_a_directory_that_is_a_git_repo_copies_only_the_tree(tmp_path: Path) -> None:
    source, first = _repo(tmp_path / "source", {"train.py": "A = 1\n"})
    _commit_on(source, first, {"train.py": "A = 2\n"}, "second")

    repo = gitops.import_target(str(tmp_path / "source"), tmp_path / "dest")

    assert len(list(repo.iter_commits(gitops.BEST_BRANCH))) == 1  # history is not copied
    assert _show(repo, "HEAD", "train.py") == "A = 2\n"


def _bare_remote(tmp_path: Path) -> tuple[Path, str, str]:
    """A bare repository with two commits on `main`; (path, first, second)."""
    work = tmp_path / "upstream"
    repo = git.Repo.init(work, initial_branch="main")
    repo.git.update_environment(GIT_AUTHOR_NAME="u", GIT_AUTHOR_EMAIL="u@x",
                                GIT_COMMITTER_NAME="u", GIT_COMMITTER_EMAIL="u@x")
    _write(work, {"train.py": "A = 1\n"})
    repo.git.add("--all")
    repo.git.commit("-q", "-m", "one")
    first = repo.head.commit.hexsha
    _write(work, {"train.py": "A = 2\n", "prepare.py": "fixed\n"})
    repo.git.add("--all")
    repo.git.commit("-q", "-m", "two")
    bare = tmp_path / "upstream.git"
    git.Repo.clone_from(str(work), str(bare), bare=True)
    return bare, first, repo.head.commit.hexsha


def test_import_target_from_a_file_url_clones_with_history_onto_swarm_best(tmp_path: Path) -> None:
    bare, first, second = _bare_remote(tmp_path)

    repo = gitops.import_target(f"file://{bare}", tmp_path / "dest")

    assert repo.active_branch.name == gitops.BEST_BRANCH
    assert repo.head.commit.hexsha == second
    assert [c.hexsha for c in repo.iter_commits(gitops.BEST_BRANCH)] == [second, first]
    assert (tmp_path / "dest" / "prepare.py").read_text() == "fixed\n"
    # commits made later by the coordinator carry the swarm identity
    commit, _ = gitops.commit_all(repo, "by the swarm")
    assert repo.commit(commit).author.name == "swarm"


def test_import_target_from_a_url_disables_auto_gc_like_a_copied_directory(tmp_path: Path) -> None:
    bare, _, _ = _bare_remote(tmp_path)
    copied = gitops.import_target(str(tmp_path / "upstream"), tmp_path / "copied")
    cloned = gitops.import_target(f"file://{bare}", tmp_path / "cloned")
    assert copied.git.config("--local", "--default", "unset", "--get", "gc.auto") == "0"
    assert cloned.git.config("--local", "--default", "unset", "--get", "gc.auto") == "0"


@pytest.mark.parametrize("source", ["file:///nonexistent/swarm-target.git", "/nonexistent/swarm-target"])
def test_import_target_that_is_neither_a_directory_nor_clonable_is_a_git_error(
        tmp_path: Path, source: str) -> None:
    with pytest.raises(GitError, match=r"not a directory and git clone failed"):
        gitops.import_target(source, tmp_path / "dest")


# -- bundles -------------------------------------------------------------------------------


def test_bundle_round_trip_full_then_incremental(tmp_path: Path) -> None:
    sender, first = _repo(tmp_path / "sender", {"big.bin": os.urandom(64_000).hex(), "a.txt": "1\n"})
    second = _commit_on(sender, first, {"a.txt": "2\n"}, "small change")
    receiver = gitops.init_repo(tmp_path / "receiver")

    full_first = gitops.make_bundle(sender, first, [])
    assert full_first is not None
    assert gitops.read_bundle(receiver, full_first) == [first]
    assert gitops.has_commit(receiver, first) and not gitops.has_commit(receiver, second)

    incremental = gitops.make_bundle(sender, second, [first])
    full_second = gitops.make_bundle(sender, second, [])
    assert incremental is not None and full_second is not None
    assert len(incremental) * 10 < len(full_second)  # the big blob the receiver has is left out
    assert gitops.read_bundle(receiver, incremental) == [second]
    assert gitops.has_commit(receiver, second)
    assert _show(receiver, second, "a.txt") == "2\n"
    assert _show(receiver, second, "big.bin") == _show(sender, first, "big.bin")
    # objects only: the receiver's refs are left to the caller, and no scratch ref leaks on the sender
    assert receiver.git.for_each_ref() == ""
    assert "refs/swarm/outgoing" not in sender.git.for_each_ref()


def test_incremental_bundle_to_a_repo_without_the_prerequisite_is_a_git_error(tmp_path: Path) -> None:
    sender, first = _repo(tmp_path / "sender", {"a.txt": "1\n"})
    second = _commit_on(sender, first, {"a.txt": "2\n"}, "change")
    incremental = gitops.make_bundle(sender, second, [first])
    assert incremental is not None
    with pytest.raises(GitError, match=r"a bundle could not be read"):
        gitops.read_bundle(gitops.init_repo(tmp_path / "empty"), incremental)


def test_make_bundle_is_none_when_the_commit_is_reachable_from_an_excluded_one(tmp_path: Path) -> None:
    sender, first = _repo(tmp_path / "sender", {"a.txt": "1\n"})
    second = _commit_on(sender, first, {"a.txt": "2\n"}, "change")
    assert gitops.make_bundle(sender, first, [second]) is None  # an ancestor
    assert gitops.make_bundle(sender, second, [second]) is None  # itself
    assert gitops.make_bundle(sender, first, ["0" * 40, second]) is None


def test_make_bundle_ignores_excluded_commits_it_does_not_know(tmp_path: Path) -> None:
    sender, first = _repo(tmp_path / "sender", {"a.txt": "1\n"})
    bundle = gitops.make_bundle(sender, first, ["1" * 40])
    assert bundle is not None
    assert gitops.read_bundle(gitops.init_repo(tmp_path / "receiver"), bundle) == [first]


@pytest.mark.parametrize("data", [b"", b"garbage, not a bundle\n", os.urandom(512)])
def test_read_bundle_of_garbage_is_a_git_error(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(GitError, match=r"^a bundle could not be read: "):
        gitops.read_bundle(gitops.init_repo(tmp_path / "r"), data)


def _break_a_trial_ref(repo: git.Repo) -> None:
    """A loose ref naming an object that does not exist: anything that walks every ref fails."""
    ref = Path(repo.git_dir) / "refs" / "swarm" / "trials" / "00001"
    ref.parent.mkdir(parents=True, exist_ok=True)
    ref.write_text("1234567890123456789012345678901234567890\n")


def test_read_bundle_looks_at_no_other_ref(tmp_path: Path) -> None:
    # `git bundle unbundle` walked from every ref: 20x slower with 10,000 trial refs, and dead
    # on one broken ref. Reading a bundle must not depend on how many refs the run holds.
    sender, first = _repo(tmp_path / "sender", {"a.txt": "1\n"})
    second = _commit_on(sender, first, {"a.txt": "2\n"}, "change")
    receiver = gitops.init_repo(tmp_path / "receiver")
    gitops.read_bundle(receiver, gitops.make_bundle(sender, first, []))
    _break_a_trial_ref(receiver)

    assert gitops.read_bundle(receiver, gitops.make_bundle(sender, second, [first])) == [second]
    assert _show(receiver, second, "a.txt") == "2\n"


def test_read_bundle_takes_heads_and_prerequisites_from_the_header(tmp_path: Path) -> None:
    sender, first = _repo(tmp_path / "sender", {"a.txt": "1\n"})
    second = _commit_on(sender, first, {"a.txt": "2\n"}, "change")
    bundle = gitops.make_bundle(sender, second, [first])
    assert bundle.startswith(b"# v2 git bundle\n-" + first.encode())
    with pytest.raises(GitError, match=f"lacks its prerequisite commit {first}$"):
        gitops.read_bundle(gitops.init_repo(tmp_path / "empty"), bundle)
    with pytest.raises(GitError, match=r"^a bundle could not be read: unsupported capability '@filter=blob:none'"):
        gitops.read_bundle(gitops.init_repo(tmp_path / "r"), b"# v3 git bundle\n@filter=blob:none\n" + bundle[16:])


def test_cherry_pick_looks_at_no_other_ref(tmp_path: Path) -> None:
    # a checkout away from a detached HEAD walked every ref to warn of orphaned commits
    repo, base = _repo(tmp_path / "repo", {"f.txt": "".join(LINES)})
    ours = _commit_on(repo, base, {"f.txt": _edit_line(2, "ours")}, "ours")
    theirs = _commit_on(repo, base, {"f.txt": _edit_line(9, "theirs")}, "theirs")
    repo.git.worktree("add", "--detach", str(tmp_path / "merge"), base)
    worktree = gitops.open_repo(tmp_path / "merge")
    _break_a_trial_ref(repo)

    tree = gitops.cherry_pick(worktree, theirs, ours)
    assert tree is not None
    assert gitops.cherry_pick(worktree, ours, theirs) is not None  # leaves a detached HEAD again


# -- cherry_pick ---------------------------------------------------------------------------


@pytest.fixture
def picking(tmp_path: Path) -> tuple[git.Repo, git.Repo, str]:
    """(repo, a scratch worktree of it, base commit) with a ten-line file f.txt."""
    repo, base = _repo(tmp_path / "repo", {"f.txt": "".join(LINES)})
    repo.git.worktree("add", "--detach", str(tmp_path / "scratch"), base)
    return repo, gitops.open_repo(tmp_path / "scratch"), base


def test_cherry_pick_of_non_adjacent_changes_keeps_both(picking: tuple[git.Repo, git.Repo, str]) -> None:
    repo, scratch, base = picking
    onto = _commit_on(repo, base, {"f.txt": _edit_line(2, "two, from best")}, "best")
    theirs = _commit_on(repo, base, {"f.txt": _edit_line(9, "nine, from the trial")}, "trial")

    tree = gitops.cherry_pick(scratch, theirs, onto)

    assert tree is not None
    text = _show(repo, tree, "f.txt")
    assert "two, from best\n" in text and "nine, from the trial\n" in text
    assert text.count("\n") == 10


def test_cherry_pick_of_a_change_already_in_onto_gives_onto_tree(
        picking: tuple[git.Repo, git.Repo, str]) -> None:
    repo, scratch, base = picking
    change = {"f.txt": _edit_line(5, "five")}
    onto = _commit_on(repo, base, change, "best has it")
    theirs = _commit_on(repo, base, change, "trial has it too")
    assert gitops.cherry_pick(scratch, theirs, onto) == gitops.tree_of(repo, onto)


def test_cherry_pick_conflict_is_none_and_leaves_the_worktree_usable(
        picking: tuple[git.Repo, git.Repo, str]) -> None:
    repo, scratch, base = picking
    onto = _commit_on(repo, base, {"f.txt": _edit_line(5, "five, from best")}, "best")
    clash = _commit_on(repo, base, {"f.txt": _edit_line(5, "five, from the trial")}, "trial")
    clean = _commit_on(repo, base, {"f.txt": _edit_line(9, "nine"), "new.txt": "n\n"}, "other")

    assert gitops.cherry_pick(scratch, clash, onto) is None
    assert not scratch.is_dirty(untracked_files=True)
    assert not (Path(scratch.working_tree_dir) / ".git").is_dir()  # still a linked worktree
    assert scratch.git.status("--porcelain") == ""

    tree = gitops.cherry_pick(scratch, clean, onto)
    assert tree is not None
    assert "five, from best\n" in _show(repo, tree, "f.txt") and "nine\n" in _show(repo, tree, "f.txt")
    assert _show(repo, tree, "new.txt") == "n\n"


def test_cherry_pick_starts_from_a_clean_onto_whatever_the_worktree_held(
        picking: tuple[git.Repo, git.Repo, str]) -> None:
    repo, scratch, base = picking
    theirs = _commit_on(repo, base, {"f.txt": _edit_line(9, "nine")}, "trial")
    root = Path(scratch.working_tree_dir)
    (root / "f.txt").write_text("scribbled over\n")
    (root / "junk.txt").write_text("left by someone\n")
    tree = gitops.cherry_pick(scratch, theirs, base)
    assert tree == gitops.tree_of(repo, theirs)


# -- paths and hashes ----------------------------------------------------------------------


def test_changed_paths_lists_both_sides_of_a_rename(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path / "r", {"old.py": "x = 1\n" * 20, "keep.py": "k\n", "edit.py": "e\n"})
    repo.git.mv("old.py", "new.py")
    (tmp_path / "r" / "edit.py").write_text("edited\n")
    after, _ = gitops.commit_all(repo, "rename and edit")
    assert sorted(gitops.changed_paths(repo, base, after)) == ["edit.py", "new.py", "old.py"]
    assert gitops.changed_paths(repo, base, base) == []


def test_changed_paths_handles_odd_file_names(tmp_path: Path) -> None:
    repo, base = _repo(tmp_path / "r", {"a.py": "a\n"})
    _write(tmp_path / "r", {"with space.py": "s\n", "ünï.py": "u\n"})
    after, _ = gitops.commit_all(repo, "odd names")
    assert sorted(gitops.changed_paths(repo, base, after)) == ["with space.py", "ünï.py"]


def test_file_hashes_are_sha256_of_each_file_and_missing_for_absent_ones(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "prepare.py").write_bytes(b"fixed harness\n")
    (tmp_path / "sub" / "data.bin").write_bytes(b"\x00\x01")
    hashes = gitops.file_hashes(tmp_path, ["sub/data.bin", "gone.py", "prepare.py", "sub"])
    assert list(hashes) == ["gone.py", "prepare.py", "sub", "sub/data.bin"]  # sorted
    assert hashes == {"gone.py": "missing", "prepare.py": hashlib.sha256(b"fixed harness\n").hexdigest(),
                      "sub": "missing",  # a directory is not a file
                      "sub/data.bin": hashlib.sha256(b"\x00\x01").hexdigest()}


# -- commits and refs ----------------------------------------------------------------------


def test_commit_tree_set_ref_is_ancestor_has_commit(tmp_path: Path) -> None:
    repo, first = _repo(tmp_path / "r", {"a.txt": "1\n"})
    second = _commit_on(repo, first, {"a.txt": "2\n"}, "second")

    made = gitops.commit_tree(repo, gitops.tree_of(repo, first), second, "back to one\n\nSwarm-Trial: 00007")

    commit = repo.commit(made)
    assert [p.hexsha for p in commit.parents] == [second]
    assert commit.tree.hexsha == gitops.tree_of(repo, first)
    assert commit.message.startswith("back to one\n\nSwarm-Trial: 00007")
    assert commit.author.name == "swarm" and commit.committer.email == "swarm@localhost"

    assert gitops.trial_ref("00007") == "refs/swarm/trials/00007"
    gitops.set_ref(repo, gitops.trial_ref("00007"), made)
    assert repo.commit(gitops.trial_ref("00007")).hexsha == made
    gitops.set_ref(repo, gitops.trial_ref("00007"), first)  # moves an existing ref
    assert repo.commit(gitops.trial_ref("00007")).hexsha == first

    assert gitops.is_ancestor(repo, first, made) and gitops.is_ancestor(repo, second, made)
    assert gitops.is_ancestor(repo, made, made)
    assert not gitops.is_ancestor(repo, made, first)
    assert not gitops.is_ancestor(repo, "0" * 40, made)

    assert gitops.has_commit(repo, made) and gitops.has_commit(repo, first)
    assert not gitops.has_commit(repo, "0" * 40)
    assert not gitops.has_commit(repo, gitops.tree_of(repo, first))  # a tree is not a commit
    assert not gitops.has_commit(repo, "not-a-sha")


def test_commit_all_returns_commit_and_tree_and_allows_empty(tmp_path: Path) -> None:
    repo, first = _repo(tmp_path / "r", {"a.txt": "1\n"})
    (tmp_path / "r" / "a.txt").unlink()
    (tmp_path / "r" / "b.txt").write_text("b\n")
    commit, tree = gitops.commit_all(repo, "delete and add")
    assert repo.commit(commit).tree.hexsha == tree == gitops.tree_of(repo, commit)
    assert sorted(gitops.changed_paths(repo, first, commit)) == ["a.txt", "b.txt"]
    empty, same_tree = gitops.commit_all(repo, "nothing changed")
    assert empty != commit and same_tree == tree
