"""The pool: the run's canonical git repository (`repo/`), where every trial's commit is kept
and `swarm/best` is the lineage of accepted changes. The coordinator's git, in one place.

Commits arrive from workers as bundles and leave as bundles: no shared file system is assumed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import git

from swarm.core import gitops
from swarm.core.merge import merge_lines
from swarm.core.scope import matching_paths

__all__ = ["Pool", "Replayed", "Union", "Conflict", "FileAt", "MERGE_WORKTREE", "merge_file", "merge_entry"]

MERGE_WORKTREE = ".merge"  # beside repo/: the scratch worktree stale winners are replayed in
BUNDLES_KEPT = 64


@dataclass(frozen=True)
class Replayed:
    """A change replayed onto a newer best: its commit and tree, or None where it conflicted."""

    commit: str | None
    tree: str | None

    @property
    def conflicted(self) -> bool:
        return self.tree is None


@dataclass(frozen=True)
class Union:
    """Changes merged onto a best: the commit and tree (None when none merged), which of the
    parts asked for are in it, and which conflicted: with best itself, or only with a larger
    part before them."""

    commit: str | None
    tree: str | None
    included: tuple[int, ...]
    conflicted: tuple[int, ...]  # with best: the change cannot go onto it at all
    clashed: tuple[int, ...] = ()  # with a part before it: it may go into another union


class Conflict:
    """Two changes to the same lines of one file (or a file changed on one side, gone on the other)."""


_CONFLICT = Conflict()
SYMLINK = 0o120000


@dataclass(frozen=True)
class FileAt:
    """A file as git holds it: its mode (0o100644, 0o100755, or SYMLINK) and its bytes."""

    mode: int
    data: bytes


def merge_file(base: bytes | None, changed: bytes | None, current: bytes | None) -> bytes | None | Conflict:
    """One file of a change (`base` -> `changed`; None: absent) applied to `current`: the
    result (None: deleted), or a Conflict. Text merges line by line (see swarm.core.merge)."""
    if changed == current or base == changed:
        return current
    if base == current:
        return changed
    if base is None or changed is None or current is None:
        return _CONFLICT  # added twice differently, or changed on one side and deleted on the other
    try:
        merged = merge_lines(base.decode(), changed.decode(), current.decode())
    except UnicodeDecodeError:
        return _CONFLICT  # binary, changed on both sides
    return _CONFLICT if merged is None else merged.encode()


def merge_entry(base: FileAt | None, changed: FileAt | None, current: FileAt | None) -> FileAt | None | Conflict:
    """merge_file with modes: a mode the change set (an executable bit) is kept unless the
    current side set another; a symbolic link merges whole, never line by line."""
    if changed == current or base == changed:
        return current
    if base == current:
        return changed
    if changed is None or current is None or base is None:
        return _CONFLICT
    if SYMLINK in (base.mode, changed.mode, current.mode):
        return _CONFLICT  # a link changed on both sides
    mode = changed.mode if base.mode != changed.mode else current.mode
    if base.mode != changed.mode and current.mode not in (base.mode, changed.mode):
        return _CONFLICT
    data = merge_file(base.data, changed.data, current.data)
    if isinstance(data, Conflict) or data is None:
        return _CONFLICT
    return FileAt(mode, data)


class Pool:
    def __init__(self, repo_dir: Path) -> None:
        self.repo = gitops.open_repo(repo_dir)
        self._merge_dir = repo_dir.parent / MERGE_WORKTREE
        self._merge: git.Repo | None = None
        self._bundles: dict[tuple[str, str | None], bytes | None] = {}

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
        """`commit`'s change (against its first parent) merged onto `onto`, committed and kept
        under `ref`. Changes to different lines combine even when the lines are adjacent."""
        parent = self.repo.commit(commit).parents[0].hexsha
        merged = self.union([(commit, parent)], onto, message, ref)
        return Replayed(merged.commit, merged.tree)

    def union(self, parts: list[tuple[str, str]], onto: str, message: str, ref: str) -> Union:
        """The changes of `parts` ((commit, the parent it changed) pairs, in order) merged onto
        `onto` one after the other; a part that conflicts is left out. Committed on `onto`
        and kept under `ref` when any part went in."""
        worktree = self._merge_worktree()
        worktree.git.checkout("-q", "--force", "--detach", onto)
        worktree.git.clean("-fdxq")
        root = Path(worktree.working_dir)
        included, conflicted, clashed = [], [], []
        for index, (commit, parent) in enumerate(parts):
            merged = self._merge_part(commit, parent, lambda path: _on_disk(root / path))
            if merged is not None and _apply(root, merged):
                included.append(index)
            elif not included or self._merge_part(commit, parent, lambda path: self._entry(onto, path)) is None:
                conflicted.append(index)  # with nothing in yet the worktree is `onto`: best refuses it
            else:
                clashed.append(index)
        if not included:
            return Union(None, None, (), tuple(conflicted), tuple(clashed))
        worktree.git.add("--all")
        tree = str(worktree.git.write_tree())
        commit = gitops.commit_tree(self.repo, tree, onto, message)
        gitops.set_ref(self.repo, ref, commit)
        return Union(commit, tree, tuple(included), tuple(conflicted), tuple(clashed))

    def keep(self, ref: str, commit: str) -> None:
        gitops.set_ref(self.repo, ref, commit)

    def _merge_part(self, commit: str, parent: str,
                    current: Callable[[str], FileAt | None]) -> dict[str, FileAt | None] | None:
        """Each file `commit` changed, merged into `current`'s; None if any conflicts."""
        merged: dict[str, FileAt | None] = {}
        for path in gitops.changed_paths(self.repo, parent, commit):
            result = merge_entry(self._entry(parent, path), self._entry(commit, path), current(path))
            if isinstance(result, Conflict):
                return None
            merged[path] = result
        return merged

    def _entry(self, commit: str, path: str) -> FileAt | None:
        """The file at `path` in a commit (None: absent, or a directory there), read through
        git's object database."""
        try:
            blob = self.repo.commit(commit).tree / path
        except KeyError:
            return None
        if not isinstance(blob, git.Blob):
            return None
        return FileAt(blob.mode, blob.data_stream.read())

    def bundle(self, commit: str, have: str | None) -> bytes | None:
        """The objects of `commit` that a clone holding `have` lacks (None: it lacks none).
        Kept for the next ask: when best moves, every worker asks for the same few bundles."""
        key = (commit, have)
        if key not in self._bundles:
            if len(self._bundles) >= BUNDLES_KEPT:
                del self._bundles[next(iter(self._bundles))]
            self._bundles[key] = gitops.make_bundle(self.repo, commit, [have] if have else [])
        return self._bundles[key]

    def open_merge_worktree(self, at: str) -> None:
        """Makes the scratch worktree ready now, so the first stale winner does not wait."""
        self._merge_worktree(at)

    def _merge_worktree(self, at: str | None = None) -> git.Repo:
        if self._merge is None:
            self.repo.git.worktree("prune")
            if not self._merge_is_ours():  # a run directory copied or moved: it is another repo's
                shutil.rmtree(self._merge_dir, ignore_errors=True)
            if not (self._merge_dir / ".git").exists():
                self.repo.git.worktree("add", "--force", "--detach", str(self._merge_dir),
                                       at or self.repo.head.commit.hexsha)
            self._merge = gitops.open_repo(self._merge_dir)
        return self._merge

    def _merge_is_ours(self) -> bool:
        # A worktree's .git file names its repository's git dir by absolute path; objects made
        # in a copy's scratch worktree would go to the original, out of this pool's reach.
        try:
            named = (self._merge_dir / ".git").read_text().removeprefix("gitdir:").strip()
        except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
            return False
        return Path(named).resolve().is_relative_to(Path(self.repo.git_dir).resolve())

    def close(self) -> None:
        self.repo.close()
        if self._merge is not None:
            self._merge.close()


def _on_disk(path: Path) -> FileAt | None:
    if path.is_symlink():
        return FileAt(SYMLINK, os.readlink(path).encode())
    if not path.is_file():
        return None
    return FileAt(0o100755 if os.access(path, os.X_OK) else 0o100644, path.read_bytes())


def _apply(root: Path, files: dict[str, FileAt | None]) -> bool:
    """Writes a part's merged files into the worktree, deletions first; False (nothing written)
    where a path cannot take its file: a directory stands there, or a file stands where its
    directory must go."""
    deleted = {path for path, file in files.items() if file is None}
    for path, file in files.items():
        if file is None:
            continue
        target = root / path
        if target.is_dir() and not target.is_symlink() and any(
                str(f.relative_to(root)) not in deleted for f in target.rglob("*") if not f.is_dir()):
            return False  # a directory stands there, and the part keeps some of what is in it
        blocked = [parent for parent in Path(path).parents
                   if str(parent) != "." and (root / parent).is_file() and str(parent) not in deleted]
        if blocked:
            return False
    for path in deleted:
        (root / path).unlink(missing_ok=True)
    for path, file in files.items():
        if file is not None and (root / path).is_dir() and not (root / path).is_symlink():
            shutil.rmtree(root / path)  # emptied by the deletions above
        if file is not None:
            _write(root / path, file)
    return True


def _write(path: Path, file: FileAt) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() or path.exists():
        path.unlink()
    if file.mode == SYMLINK:
        os.symlink(file.data.decode(), path)
        return
    path.write_bytes(file.data)
    path.chmod(0o755 if file.mode == 0o100755 else 0o644)
