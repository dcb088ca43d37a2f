"""Git plumbing shared by the coordinator and the workers (gitpython over a local repository).

Commits travel between processes as bundles (bytes), so no shared file system is assumed.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

import git

from swarm.errors import GitError

__all__ = [
    "BEST_BRANCH", "open_repo", "init_repo", "import_target", "commit_all", "tree_of",
    "changed_paths", "make_bundle", "read_bundle", "cherry_pick", "commit_tree", "set_ref",
    "has_commit", "is_ancestor", "file_hashes", "trial_ref",
]

BEST_BRANCH = "swarm/best"
_IDENTITY = {"GIT_AUTHOR_NAME": "swarm", "GIT_AUTHOR_EMAIL": "swarm@localhost",
             "GIT_COMMITTER_NAME": "swarm", "GIT_COMMITTER_EMAIL": "swarm@localhost"}
_COPY_IGNORE = shutil.ignore_patterns(".git", "__pycache__", "*.pyc", ".venv", "runs")


def trial_ref(trial_id: str) -> str:
    return f"refs/swarm/trials/{trial_id}"


def open_repo(path: Path) -> git.Repo:
    repo = git.Repo(path)
    repo.git.update_environment(**_IDENTITY)
    return repo


def init_repo(path: Path) -> git.Repo:
    """An empty repository whose first commit will land on swarm/best."""
    path.mkdir(parents=True, exist_ok=True)
    repo = git.Repo.init(path, initial_branch=BEST_BRANCH)
    repo.git.update_environment(**_IDENTITY)
    _configure(repo)
    return repo


def _configure(repo: git.Repo) -> None:
    with repo.config_writer() as config:
        config.set_value("gc", "auto", "0")  # thousands of trial refs: never pause for gc mid-run
        # The ledger is fsync'd; the commits it names must survive a power loss as well.
        config.set_value("core", "fsync", "committed")


def import_target(source: str, dest: Path) -> git.Repo:
    """Creates the run's canonical repository from a directory (copied) or a git URL (cloned)."""
    if Path(source).is_dir():
        repo = init_repo(dest)
        shutil.copytree(source, dest, ignore=_COPY_IGNORE, dirs_exist_ok=True)
        commit_all(repo, "swarm: the target as given")
        return repo
    try:
        cloned = git.Repo.clone_from(source, dest)
    except git.GitCommandError as exc:
        raise GitError(f"target.repo '{source}': not a directory and git clone failed: "
                       f"{_last_line(exc)}") from None
    cloned.git.update_environment(**_IDENTITY)
    _configure(cloned)
    cloned.git.checkout("-B", BEST_BRANCH)
    return cloned


def commit_all(repo: git.Repo, message: str) -> tuple[str, str]:
    """Commits every change in the working tree; returns (commit, tree)."""
    repo.git.add("--all")
    repo.git.commit("--allow-empty", "--no-verify", "-q", "-m", message)
    return repo.head.commit.hexsha, repo.head.commit.tree.hexsha


def tree_of(repo: git.Repo, rev: str) -> str:
    return repo.commit(rev).tree.hexsha


def changed_paths(repo: git.Repo, old: str, new: str) -> list[str]:
    """Every path a change touches (both sides of a rename)."""
    out = repo.git.diff("--no-renames", "--name-only", "-z", old, new)
    return [p for p in out.split("\0") if p]


def make_bundle(repo: git.Repo, commit: str, exclude: list[str]) -> bytes | None:
    """The objects of `commit` not reachable from `exclude`; None when there are none."""
    known = [sha for sha in exclude if has_commit(repo, sha)]
    if any(is_ancestor(repo, commit, sha) for sha in known):
        return None
    ref = f"refs/swarm/outgoing/{commit}"
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "out.bundle"
        repo.git.update_ref(ref, commit)
        try:
            repo.git.bundle("create", "-q", str(path), ref, *[f"^{sha}" for sha in known])
        finally:
            repo.git.update_ref("-d", ref)
        return path.read_bytes()


def read_bundle(repo: git.Repo, data: bytes) -> list[str]:
    """Stores a bundle's objects; returns the commits at its heads. Refs are left to the caller."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "in.bundle"
        path.write_bytes(data)
        try:
            out = repo.git.bundle("unbundle", str(path))
        except git.GitCommandError as exc:
            raise GitError(f"a bundle could not be read: {_last_line(exc)}") from None
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def cherry_pick(worktree: git.Repo, commit: str, onto: str) -> str | None:
    """Applies `commit`'s change on top of `onto` in a scratch worktree; the tree, or None on conflict."""
    worktree.git.checkout("--force", "--detach", onto)
    worktree.git.clean("-fdxq")
    try:
        worktree.git.cherry_pick("--no-commit", "--allow-empty", commit)
    except git.GitCommandError:
        # --no-commit leaves no sequencer state for --abort; a hard reset clears the conflict.
        worktree.git.reset("--hard", "-q")
        return None
    return worktree.git.write_tree()


def commit_tree(repo: git.Repo, tree: str, parent: str, message: str) -> str:
    return repo.git.commit_tree(tree, "-p", parent, "-m", message)


def set_ref(repo: git.Repo, ref: str, commit: str) -> None:
    repo.git.update_ref(ref, commit)


def has_commit(repo: git.Repo, sha: str) -> bool:
    try:
        repo.git.cat_file("-e", f"{sha}^{{commit}}")
        return True
    except git.GitCommandError:
        return False


def is_ancestor(repo: git.Repo, ancestor: str, descendant: str) -> bool:
    try:
        repo.git.merge_base("--is-ancestor", ancestor, descendant)
        return True
    except git.GitCommandError:
        return False


def file_hashes(root: Path, paths: list[str]) -> dict[str, str]:
    """sha256 of each file as it is on disk ('missing' for an absent file)."""
    hashes = {}
    for path in sorted(paths):
        file = root / path
        hashes[path] = hashlib.sha256(file.read_bytes()).hexdigest() if file.is_file() else "missing"
    return hashes


def _last_line(exc: git.GitCommandError) -> str:
    text = (exc.stderr or str(exc)).strip().splitlines()
    return text[-1].strip() if text else str(exc)
