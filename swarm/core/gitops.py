"""Git plumbing shared by the coordinator and the workers (gitpython over a local repository).

Commits travel between processes as bundles (bytes), so no shared file system is assumed.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
import tempfile
from pathlib import Path

import git
from gitdb.base import IStream

from swarm.core import packs
from swarm.core.errors import GitError

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
    """Every path a change touches (both sides of a rename), as `git diff --no-renames
    --name-only` lists them. Read through git's object database (one long-lived `cat-file`
    process), not a `git diff` per call: the coordinator asks this of every result."""
    return sorted(_tree_diff(repo.commit(old).tree, repo.commit(new).tree, ""))


def _tree_diff(old: git.Tree, new: git.Tree, prefix: str) -> set[str]:
    if old.binsha == new.binsha:
        return set()
    before, after = {e.name: e for e in old}, {e.name: e for e in new}
    changed: set[str] = set()
    for name in before.keys() | after.keys():
        a, b = before.get(name), after.get(name)
        if a is not None and b is not None and (a.binsha, a.mode) == (b.binsha, b.mode):
            continue
        if isinstance(a, git.Tree) and isinstance(b, git.Tree):
            changed |= _tree_diff(a, b, f"{prefix}{name}/")
        else:
            changed |= _files_at(a, prefix + name) | _files_at(b, prefix + name)
    return changed


def _files_at(entry: git.Tree | git.Blob | git.Submodule | None, path: str) -> set[str]:
    """Every file at or below a tree entry (nothing for an absent one)."""
    if entry is None:
        return set()
    if isinstance(entry, git.Tree):
        return {file for child in entry for file in _files_at(child, f"{path}/{child.name}")}
    return {path}


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
    """Stores a bundle's objects; returns the commits at its heads. Refs are left to the caller.

    Not `git bundle unbundle`, which checks the prerequisites with a revision walk from every
    ref (`--all`; git 2.39): 5 ms became 108 ms per result in a run holding 10,000 trial refs
    (bench/coordinator_capacity.py), and one broken ref made every bundle unreadable. Here a
    prerequisite only has to be present: objects reach these repositories whole (a checked
    bundle, a commit made here), so a commit that is present has its history. Nor `git
    index-pack` (what unbundle runs): a process per result was most of a report's cost, so the
    pack is read in-process (swarm.core.packs) and its objects written loose, as `git commit`
    writes them.
    """
    prerequisites, heads, pack = _split_bundle(data)
    for sha in prerequisites:
        if not has_commit(repo, sha):
            raise GitError(f"a bundle could not be read: this repository lacks its prerequisite commit {sha}")
    try:
        objects = packs.read_pack(pack, lambda sha: _stored_object(repo, sha))
    except packs.PackError as exc:
        raise GitError(f"a bundle could not be read: {exc}") from None
    _store_loose(repo, objects)
    return heads


def _stored_object(repo: git.Repo, sha: str) -> packs.GitObject | None:
    """An object the repository holds (a thin pack's base), or None."""
    try:
        info = repo.odb.stream(bytes.fromhex(sha))
        return packs.GitObject(info.type.decode(), info.read())
    except (ValueError, OSError, git.BadObject, git.BadName):
        return None


def _store_loose(repo: git.Repo, objects: list[packs.GitObject]) -> None:
    """Writes the objects the repository lacks as loose objects, not fsync'd: git's own default
    (core.fsync leaves loose objects out), as for every commit the coordinator makes itself. A
    trial's result is durable in the ledger; its commit lives on in its worker's clone too.
    Fsyncing three or four objects per result cost more than the rest of a report."""
    for obj in objects:
        if (Path(repo.git_dir) / "objects" / obj.sha[:2] / obj.sha[2:]).exists():
            continue
        stored = repo.odb.store(IStream(obj.kind.encode(), len(obj.data), io.BytesIO(obj.data)))
        assert stored.hexsha.decode() == obj.sha, "gitdb hashes an object as git does"


_BUNDLE_SIGNATURES = (b"# v2 git bundle\n", b"# v3 git bundle\n")
_SHA = re.compile(r"^[0-9a-f]{40}$")


def _split_bundle(data: bytes) -> tuple[list[str], list[str], bytes]:
    """A bundle's prerequisite commits, its head commits and its pack (git's bundle format)."""
    signature = next((s for s in _BUNDLE_SIGNATURES if data.startswith(s)), b"")
    end = data.find(b"\n\n", len(signature) - 1) if signature else -1
    if end < 0:
        raise GitError("a bundle could not be read: not a git bundle")
    prerequisites, heads = [], []
    for line in data[len(signature):end + 1].decode("utf-8", "replace").splitlines():
        if line.startswith("@"):
            if line != "@object-format=sha1":
                raise GitError(f"a bundle could not be read: unsupported capability {line!r}")
        elif line.startswith("-") and _SHA.match(line[1:41]):
            prerequisites.append(line[1:41])
        elif _SHA.match(line[:40]) and line[40:41] == " ":
            heads.append(line[:40])
        else:
            raise GitError(f"a bundle could not be read: bad header line {line[:80]!r}")
    if not heads:
        raise GitError("a bundle could not be read: it names no commit")
    return prerequisites, heads, data[end + 2:]


def cherry_pick(worktree: git.Repo, commit: str, onto: str) -> str | None:
    """Applies `commit`'s change on top of `onto` in a scratch worktree; the tree, or None on conflict."""
    # -q: a checkout that leaves a detached HEAD otherwise walks from every ref to warn of
    # commits left behind, 120 ms with 10,000 trial refs (bench/coordinator_capacity.py)
    worktree.git.checkout("-q", "--force", "--detach", onto)
    worktree.git.clean("-fdxq")
    try:
        worktree.git.cherry_pick("--no-commit", "--allow-empty", commit)
    except git.GitCommandError:
        # --no-commit leaves no sequencer state for --abort; a hard reset clears the conflict.
        worktree.git.reset("--hard", "-q")
        return None
    return str(worktree.git.write_tree())


def commit_tree(repo: git.Repo, tree: str, parent: str, message: str) -> str:
    return str(repo.git.commit_tree(tree, "-p", parent, "-m", message))


def set_ref(repo: git.Repo, ref: str, commit: str) -> None:
    """Points `ref` at `commit`. A ref under refs/swarm/ (one per trial: thousands) is written as
    git would write it loose, in-process and fsync'd, instead of by an `update-ref` per result;
    branches go through git, which keeps their reflog."""
    if not ref.startswith("refs/swarm/") or not _SHA.match(commit) or not _loose_refs(repo):
        repo.git.update_ref(ref, commit)
        return
    path = Path(repo.git_dir) / ref
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(path.name + ".lock")  # git's own lock name: a crash leaves what git clears
    with open(scratch, "w", encoding="ascii") as file:
        file.write(commit + "\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(scratch, path)


_LOOSE_REFS: dict[str, bool] = {}


def _loose_refs(repo: git.Repo) -> bool:
    """Whether the repository keeps refs as files (git's "files" backend; not reftable)."""
    key = str(repo.git_dir)
    if key not in _LOOSE_REFS:
        with repo.config_reader() as config:
            storage = config.get_value("extensions", "refstorage", "files")
        _LOOSE_REFS[key] = str(storage).lower() == "files"
    return _LOOSE_REFS[key]


def has_commit(repo: git.Repo, sha: str) -> bool:
    """Whether the repository holds the commit, asked of its object database (no subprocess)."""
    if not _SHA.match(sha):
        return False
    try:
        return bool(repo.odb.info(bytes.fromhex(sha)).type == b"commit")
    except (ValueError, OSError, git.BadObject, git.BadName):
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
