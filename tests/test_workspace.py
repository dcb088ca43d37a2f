"""A worker's clone: receiving bundles, clean checkouts, proposals, rebases. Real git, no mocks."""

from __future__ import annotations

from pathlib import Path

import git
import pytest

from swarm.core import gitops
from workers.workspace import Workspace

TRAIN = "".join(["# knobs\n", "A = 1.0\n", "\n", "# more\n", "\n", "B = 1.0\n", "\n", "# end\n",
                 "\n", "C = 1.0\n"])


class Upstream:
    """Stands in for the coordinator's repository: makes commits and bundles them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.repo = gitops.init_repo(root)
        self.write({"train.py": TRAIN, "prepare.py": "FIXED = 1\n", "sub/model.py": "X = 1\n",
                    "notes.txt": "n\n", ".gitignore": "*.log\n"})
        self.base = gitops.commit_all(self.repo, "base")[0]

    def write(self, files: dict[str, str]) -> None:
        for name, text in files.items():
            (self.root / name).parent.mkdir(parents=True, exist_ok=True)
            (self.root / name).write_text(text)

    def commit_on(self, parent: str, files: dict[str, str], message: str) -> str:
        self.repo.git.checkout("--force", "--detach", parent)
        self.write(files)
        return gitops.commit_all(self.repo, message)[0]

    def bundle(self, commit: str, have: str | None = None) -> bytes | None:
        return gitops.make_bundle(self.repo, commit, [have] if have else [])


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    return Upstream(tmp_path / "upstream")


@pytest.fixture
def space(tmp_path: Path, upstream: Upstream) -> Workspace:
    ws = Workspace(tmp_path / "worker")
    ws.receive(upstream.bundle(upstream.base))
    return ws


def _show(repo: git.Repo, rev: str, path: str) -> str:
    return repo.git.show(f"{rev}:{path}", strip_newline_in_stdout=False)


def test_a_new_workspace_has_its_folders_and_an_empty_clone(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "w")
    assert ws.checkout == tmp_path / "w" / "repo" and (ws.checkout / ".git").is_dir()
    assert ws.home.is_dir() and ws.logs.is_dir()
    assert not ws.has("0" * 40)
    ws.receive(None)  # nothing to receive is fine
    assert ws.repo.git.for_each_ref() == ""


def test_receive_stores_commits_from_full_and_incremental_bundles(
        space: Workspace, upstream: Upstream) -> None:
    assert space.has(upstream.base)
    newer = upstream.commit_on(upstream.base, {"notes.txt": "newer\n"}, "newer")
    assert not space.has(newer)
    space.receive(upstream.bundle(newer, have=upstream.base))
    assert space.has(newer)
    assert upstream.bundle(newer, have=newer) is None
    space.receive(None)
    assert space.has(newer)


def test_check_out_removes_what_an_earlier_trial_left(space: Workspace, upstream: Upstream) -> None:
    space.check_out(upstream.base)
    root = space.checkout
    assert (root / "train.py").read_text() == TRAIN
    (root / "train.py").write_text("scribbled\n")
    (root / "prepare.py").unlink()
    (root / "untracked.txt").write_text("left over\n")
    (root / "run.log").write_text("ignored by .gitignore\n")
    (root / "checkpoints" / "deep").mkdir(parents=True)
    (root / "checkpoints" / "deep" / "model.pt").write_bytes(b"\x00" * 10)
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"x")

    space.check_out(upstream.base)

    assert (root / "train.py").read_text() == TRAIN
    assert (root / "prepare.py").read_text() == "FIXED = 1\n"
    for left in ("untracked.txt", "run.log", "checkpoints", "__pycache__"):
        assert not (root / left).exists(), left
    assert space.repo.git.status("--porcelain", "--ignored") == ""
    assert space.repo.head.commit.hexsha == upstream.base


def test_check_out_moves_between_commits(space: Workspace, upstream: Upstream) -> None:
    newer = upstream.commit_on(upstream.base, {"notes.txt": "newer\n"}, "newer")
    space.receive(upstream.bundle(newer, have=upstream.base))
    space.check_out(newer)
    assert (space.checkout / "notes.txt").read_text() == "newer\n"
    space.check_out(upstream.base)
    assert (space.checkout / "notes.txt").read_text() == "n\n"


def test_proposal_commit_has_the_given_parent_and_only_the_written_change(
        space: Workspace, upstream: Upstream) -> None:
    scratch = space.start_proposal(upstream.base)
    assert scratch == space.scratch
    assert (scratch / "train.py").read_text() == TRAIN

    commit, tree = space.commit_on(upstream.base, {"train.py": TRAIN.replace("A = 1.0", "A = 2.0")},
                                   "A 1.0 -> 2.0")

    made = space.repo.commit(commit)  # the proposal worktree shares the clone's objects
    assert [p.hexsha for p in made.parents] == [upstream.base]
    assert made.tree.hexsha == tree
    assert made.message.strip() == "A 1.0 -> 2.0"
    assert space.changed_paths(upstream.base, commit) == ["train.py"]
    assert "A = 2.0\n" in _show(space.repo, commit, "train.py")
    # the evaluation checkout is untouched by proposing
    assert space.repo.git.status("--porcelain") == ""


def test_commit_on_creates_new_files_in_new_folders(space: Workspace, upstream: Upstream) -> None:
    space.start_proposal(upstream.base)
    commit, _ = space.commit_on(upstream.base, {"sub/deeper/new.py": "Y = 2\n"}, "add a file")
    assert space.changed_paths(upstream.base, commit) == ["sub/deeper/new.py"]


@pytest.mark.parametrize("path", ["../escaped.py", "sub/../../escaped.py", ".git/hooks/post-commit"])
def test_commit_on_refuses_paths_outside_the_working_tree(space: Workspace, upstream: Upstream,
                                                          path: str) -> None:
    scratch = space.start_proposal(upstream.base)
    with pytest.raises(ValueError, match="outside the working tree"):
        space.commit_on(upstream.base, {path: "X = 1\n"}, "escape")
    assert not (scratch.parent / "escaped.py").exists()


def test_start_proposal_again_discards_what_the_last_proposer_left(
        space: Workspace, upstream: Upstream) -> None:
    scratch = space.start_proposal(upstream.base)
    (scratch / "train.py").write_text("half-written\n")
    (scratch / "agent-notes.md").write_text("scratch\n")
    (scratch / "out.log").write_text("ignored\n")

    space.start_proposal(upstream.base)

    assert (scratch / "train.py").read_text() == TRAIN
    assert not (scratch / "agent-notes.md").exists() and not (scratch / "out.log").exists()
    commit, tree = space.commit_on(upstream.base, {}, "nothing changed")
    assert tree == gitops.tree_of(space.repo, upstream.base)
    assert space.changed_paths(upstream.base, commit) == []


def test_commit_on_commits_what_a_proposer_changed_in_place(
        space: Workspace, upstream: Upstream) -> None:
    scratch = space.start_proposal(upstream.base)
    (scratch / "notes.txt").unlink()
    (scratch / "train.py").write_text(TRAIN.replace("C = 1.0", "C = 0.5"))
    commit, _ = space.commit_on(upstream.base, {}, "an agent's edit")
    assert sorted(space.changed_paths(upstream.base, commit)) == ["notes.txt", "train.py"]


def test_a_reopened_workspace_reuses_its_proposal_worktree(tmp_path: Path, upstream: Upstream) -> None:
    first = Workspace(tmp_path / "worker")
    first.receive(upstream.bundle(upstream.base))
    first.start_proposal(upstream.base)
    again = Workspace(tmp_path / "worker")  # a restarted worker actor on the same disk
    assert again.has(upstream.base)
    again.start_proposal(upstream.base)
    commit, _ = again.commit_on(upstream.base, {"notes.txt": "again\n"}, "after a restart")
    assert [p.hexsha for p in again.repo.commit(commit).parents] == [upstream.base]


def _prepared(space: Workspace, parent: str, old: str, new: str) -> str:
    space.start_proposal(parent)
    return space.commit_on(parent, {"train.py": space.read_text("train.py").replace(old, new)},
                           f"{old} -> {new}")[0]


def test_rebase_moves_a_prepared_proposal_onto_a_newer_best(space: Workspace, upstream: Upstream) -> None:
    proposal = _prepared(space, upstream.base, "C = 1.0", "C = 0.25")
    newer = upstream.commit_on(upstream.base, {"train.py": TRAIN.replace("A = 1.0", "A = 3.0")}, "best moved")
    space.receive(upstream.bundle(newer, have=upstream.base))

    moved = space.rebase(proposal, newer, "C 1.0 -> 0.25")

    assert moved is not None
    commit, tree = moved
    made = space.repo.commit(commit)
    assert [p.hexsha for p in made.parents] == [newer]
    assert made.tree.hexsha == tree
    assert made.message.strip() == "C 1.0 -> 0.25"
    text = _show(space.repo, commit, "train.py")
    assert "A = 3.0\n" in text and "C = 0.25\n" in text and "A = 1.0" not in text
    assert space.changed_paths(newer, commit) == ["train.py"]
    # the rebased commit can be bundled back against the new best
    assert space.bundle(commit, newer) is not None


def test_rebase_that_conflicts_is_none_and_the_workspace_goes_on(
        space: Workspace, upstream: Upstream) -> None:
    proposal = _prepared(space, upstream.base, "A = 1.0", "A = 2.0")
    newer = upstream.commit_on(upstream.base, {"train.py": TRAIN.replace("A = 1.0", "A = 3.0")}, "best moved")
    space.receive(upstream.bundle(newer, have=upstream.base))

    assert space.rebase(proposal, newer, "A 1.0 -> 2.0") is None

    fresh = _prepared(space, newer, "B = 1.0", "B = 0.3")
    assert [p.hexsha for p in space.repo.commit(fresh).parents] == [newer]
    assert "A = 3.0\n" in _show(space.repo, fresh, "train.py")


def test_read_files_gives_tracked_files_matching_globs(space: Workspace, upstream: Upstream) -> None:
    scratch = space.start_proposal(upstream.base)
    (scratch / "untracked.py").write_text("not in the repo\n")
    assert space.read_files(["*.py"]) == {"train.py": TRAIN, "prepare.py": "FIXED = 1\n",
                                          "sub/model.py": "X = 1\n"}
    assert space.read_files(["train.py"]) == {"train.py": TRAIN}
    assert space.read_files(["sub/*"]) == {"sub/model.py": "X = 1\n"}
    assert space.read_files(["*.md"]) == {}
    assert space.read_text("notes.txt") == "n\n"
    assert space.read_text("absent.txt") == ""


def test_bundle_of_a_proposal_applies_to_the_coordinator(space: Workspace, upstream: Upstream) -> None:
    proposal = _prepared(space, upstream.base, "B = 1.0", "B = 0.5")
    data = space.bundle(proposal, upstream.base)
    assert data is not None
    assert gitops.read_bundle(upstream.repo, data) == [proposal]
    assert gitops.has_commit(upstream.repo, proposal)
    assert space.bundle(upstream.base, upstream.base) is None


def test_winners_are_best_lineage_newest_first_with_metric_and_diff(space: Workspace, upstream: Upstream) -> None:
    first = upstream.commit_on(upstream.base, {"notes.txt": "one\n"}, "first win\n\nSwarm-Metric: val_bpb=2.5")
    second = upstream.commit_on(first, {"notes.txt": "two\n"}, "second win\n\nSwarm-Metric: val_bpb=2.4")
    space.receive(upstream.bundle(second, upstream.base))
    winners = space.winners(second, limit=5)
    assert [(w.hypothesis, w.metric) for w in winners] == [
        ("second win", "val_bpb=2.4"), ("first win", "val_bpb=2.5")]  # the root commit is no winner
    assert "-one\n+two" in winners[0].diff
    assert space.winners(second, limit=1, max_diff_chars=10)[0].diff.endswith("\n[diff cut]")
