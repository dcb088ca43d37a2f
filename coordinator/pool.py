"""The pool: the run's canonical git repository (`repo/`), where every trial's commit is kept
and `swarm/best` is the lineage of accepted changes. The coordinator's git, in one place.

Commits arrive from workers as bundles and leave as bundles: no shared file system is assumed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import git

from swarm.core import gitops
from swarm.core.scope import matching_paths

__all__ = ["Pool", "Replayed", "MERGE_WORKTREE"]

MERGE_WORKTREE = ".merge"  # beside repo/: the scratch worktree stale winners are replayed in


@dataclass(frozen=True)
class Replayed:
    """A change replayed onto a newer best: its commit and tree, or None where it conflicted."""

    commit: str | None
    tree: str | None

    @property
    def conflicted(self) -> bool:
        return self.tree is None


class Pool:
    def __init__(self, repo_dir: Path) -> None:
        self.repo = gitops.open_repo(repo_dir)
        self._merge_dir = repo_dir.parent / MERGE_WORKTREE
        self._merge: git.Repo | None = None

    @staticmethod
    def import_target(source: str, repo_dir: Path) -> None:
        """Creates the repository from the target (a directory, copied; or a git URL, cloned)."""
        gitops.import_target(source, repo_dir).close()

    def head(self) -> tuple[str, str]:
        """The checked-out commit and its tree (the target as given, in a new run)."""
        commit = self.repo.head.commit.hexsha
        return commit, gitops.tree_of(self.repo, commit)

    def readonly_hashes(self, globs: list[str]) -> dict[str, str]:
        """sha256 of every tracked file the globs match, as the target was given."""
        readonly = matching_paths(self.repo.git.ls_files().splitlines(), globs)
        return gitops.file_hashes(Path(self.repo.working_dir), readonly)

    def show_best(self, commit: str) -> None:
        """Points swarm/best at `commit` and the working tree at it. The ledger is the truth;
        a crash between an event and this is mended by calling it again on open."""
        gitops.set_ref(self.repo, f"refs/heads/{gitops.BEST_BRANCH}", commit)
        self.repo.git.reset("--hard", "-q")

    def keep_trial(self, trial_id: str, commit: str, bundle: bytes | None) -> bool:
        """Stores a trial's commit (from its bundle) under refs/swarm/trials/; False when the
        commit never arrived."""
        if bundle is not None:
            gitops.read_bundle(self.repo, bundle)
        if not gitops.has_commit(self.repo, commit):
            return False
        gitops.set_ref(self.repo, gitops.trial_ref(trial_id), commit)
        return True

    def changed_paths(self, parent: str, commit: str) -> list[str]:
        return gitops.changed_paths(self.repo, parent, commit)

    def commit_best(self, tree: str, parent: str, message: str) -> str:
        """The commit an accepted change becomes on top of the old best."""
        return gitops.commit_tree(self.repo, tree, parent, message)

    def replay(self, commit: str, onto: str, message: str, ref: str) -> Replayed:
        """`commit`'s change cherry-picked onto `onto`, committed and kept under `ref`."""
        tree = gitops.cherry_pick(self._merge_worktree(), commit, onto)
        if tree is None:
            return Replayed(None, None)
        replayed = gitops.commit_tree(self.repo, tree, onto, message)
        gitops.set_ref(self.repo, ref, replayed)
        return Replayed(replayed, tree)

    def bundle(self, commit: str, have: str | None) -> bytes | None:
        """The objects of `commit` that a clone holding `have` lacks (None: it lacks none)."""
        return gitops.make_bundle(self.repo, commit, [have] if have else [])

    def open_merge_worktree(self, at: str) -> None:
        """Makes the scratch worktree ready now, so the first stale winner does not wait."""
        self._merge_worktree(at)

    def _merge_worktree(self, at: str | None = None) -> git.Repo:
        if self._merge is None:
            self.repo.git.worktree("prune")
            if not (self._merge_dir / ".git").exists():
                self.repo.git.worktree("add", "--force", "--detach", str(self._merge_dir),
                                       at or self.repo.head.commit.hexsha)
            self._merge = gitops.open_repo(self._merge_dir)
        return self._merge

    def close(self) -> None:
        self.repo.close()
        if self._merge is not None:
            self._merge.close()
