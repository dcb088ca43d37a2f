"""A worker's own clone: an evaluation checkout plus a worktree where proposals are written.

Two trees because the next proposal is prepared while the current trial runs.
"""

from __future__ import annotations

import threading
from pathlib import Path

import git

from swarm.core import gitops
from swarm.core.scope import matching_paths
from workers.proposers.base import AcceptedChange

__all__ = ["Workspace"]


class Workspace:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.checkout = root / "repo"  # where experiments run
        self.scratch = root / "propose"  # where proposers write
        self.home = root / "home"  # HOME of experiments: keeps ~/.ssh and tokens out of reach
        self.logs = root / "logs"
        for path in (self.home, self.logs):
            path.mkdir(parents=True, exist_ok=True)
        self.repo = gitops.init_repo(self.checkout)
        self._proposal_repo: git.Repo | None = None
        # Both the loop and its proposal thread (told of a newer best mid-trial) fetch bundles.
        self._receiving = threading.Lock()

    def receive(self, bundle: bytes | None) -> None:
        if bundle is not None:
            with self._receiving:
                gitops.read_bundle(self.repo, bundle)

    def has(self, commit: str) -> bool:
        return gitops.has_commit(self.repo, commit)

    def check_out(self, commit: str) -> None:
        """The evaluation tree at `commit`, with anything an earlier trial left removed."""
        self.repo.git.checkout("--force", "--detach", commit)
        self.repo.git.clean("-fdxq")

    def start_proposal(self, commit: str) -> Path:
        """A clean proposal worktree at `commit`; returns its path."""
        if self._proposal_repo is None:
            self.repo.git.worktree("prune")
            if not (self.scratch / ".git").exists():
                self.repo.git.worktree("add", "--force", "--detach", str(self.scratch), commit)
            self._proposal_repo = gitops.open_repo(self.scratch)
        self._proposals.git.checkout("--force", "--detach", commit)
        self._proposals.git.clean("-fdxq")
        return self.scratch

    @property
    def _proposals(self) -> git.Repo:
        """The proposal worktree's repository (start_proposal makes it)."""
        assert self._proposal_repo is not None, "start_proposal comes first"
        return self._proposal_repo

    def commit_on(self, parent: str, files: dict[str, str], message: str) -> tuple[str, str]:
        """Writes files into the proposal worktree and commits its whole state on `parent`
        (so edits a proposer made in place, as an agent CLI does, are committed too).

        HEAD stays at `parent`, so a retry can add to the same working tree and still yield a
        one-parent commit (the coordinator cherry-picks against that parent).
        """
        for path, text in files.items():
            target = self.scratch / path
            if not target.resolve().is_relative_to(self.scratch.resolve()) or ".git" in Path(path).parts:
                raise ValueError(f"a proposal may not write {path!r}: outside the working tree")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        self._proposals.git.add("--all")
        tree = self._proposals.git.write_tree()
        return gitops.commit_tree(self.repo, tree, parent, message), tree

    def winners(self, best: str, limit: int = 3, max_diff_chars: int = 3000) -> tuple[AcceptedChange, ...]:
        """The latest accepted changes on best's lineage, newest first, with their diffs."""
        found: list[AcceptedChange] = []
        commit = self.repo.commit(best)
        while commit.parents and len(found) < limit:
            parent = commit.parents[0]
            diff = self.repo.git.diff(parent.hexsha, commit.hexsha)
            message = str(commit.message)
            found.append(AcceptedChange(
                hypothesis=message.strip().splitlines()[0] if message.strip() else "",
                metric=", ".join(commit.trailers_dict.get("Swarm-Metric", [])),  # the metric, then tie-breakers
                diff=diff[:max_diff_chars] + ("\n[diff cut]" if len(diff) > max_diff_chars else "")))
            commit = parent
        return tuple(found)

    def rebase(self, commit: str, onto: str, message: str) -> tuple[str, str] | None:
        """Replays a prepared proposal onto a newer best; None when it conflicts."""
        tree = gitops.cherry_pick(self._proposals, commit, onto)
        if tree is None:
            return None
        return gitops.commit_tree(self.repo, tree, onto, message), tree

    def read_files(self, globs: list[str]) -> dict[str, str]:
        """Text of the proposal worktree's tracked files that match `globs`."""
        tracked = self._proposals.git.ls_files().splitlines()
        return {p: (self.scratch / p).read_text(errors="replace")
                for p in matching_paths(tracked, globs)}

    def read_text(self, path: str) -> str:
        file = self.scratch / path
        return file.read_text(errors="replace") if file.is_file() else ""

    def tracked_files(self) -> list[str]:
        """The evaluation checkout's tracked files (what a trial's jail copies)."""
        return [p for p in self.repo.git.ls_files("-z").split("\0") if p]

    def changed_paths(self, parent: str, commit: str) -> list[str]:
        return gitops.changed_paths(self.repo, parent, commit)

    def bundle(self, commit: str, parent: str) -> bytes | None:
        return gitops.make_bundle(self.repo, commit, [parent])
