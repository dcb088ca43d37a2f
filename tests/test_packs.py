"""The in-process pack reader (swarm.core.packs) against packs real git writes, and against
packs a hostile worker could send: every one is refused with a line that says what is wrong,
and a refused bundle writes nothing to the coordinator's repository."""

from __future__ import annotations

import hashlib
import struct
import subprocess
import zlib
from pathlib import Path

import git
import pytest

from swarm.core import gitops, packs
from swarm.core.errors import GitError
from swarm.core.packs import GitObject, PackError, read_pack

BIG = "".join(f"constant_{i} = {i * 7919 % 1000}\n" for i in range(400))  # deltas pay on it


def _git(cwd: Path, *args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(["git", *args], cwd=cwd, input=data, capture_output=True, check=True).stdout


def _history(path: Path, versions: int) -> tuple[git.Repo, list[str]]:
    """A repository whose one big file changes a line per commit."""
    repo = gitops.init_repo(path)
    commits = []
    for n in range(versions):
        (path / "train.py").write_text(BIG.replace("constant_7 = ", f"constant_7 = {n} + "))
        commits.append(gitops.commit_all(repo, f"v{n}")[0])
    return repo, commits


def _listed(pack: bytes, where: Path) -> set[str]:
    """The object ids git itself finds in a pack (index-pack, then show-index)."""
    (where / "p.pack").write_bytes(pack)
    _git(where, "index-pack", "p.pack")
    return {line.split()[1] for line in _git(where, "show-index", data=(where / "p.idx").read_bytes())
            .decode().splitlines()}


def test_a_full_pack_with_offset_deltas_reads_as_git_reads_it(tmp_path: Path) -> None:
    repo, commits = _history(tmp_path / "r", 6)
    pack = _git(tmp_path / "r", "pack-objects", "--stdout", "--revs", "--delta-base-offset",
                data=f"{commits[-1]}\n".encode())
    objects = read_pack(pack, lambda sha: None)
    assert any(entry_kind(pack, i) == packs.OFS_DELTA for i in range(len(objects))), "the pack holds offset deltas"
    assert {o.sha for o in objects} == _listed(pack, tmp_path)
    for obj in objects:  # each object's content is git's, byte for byte
        assert obj.data == _git(tmp_path / "r", "cat-file", obj.kind, obj.sha)


def test_a_thin_bundle_reads_against_the_receivers_objects_and_fsck_passes(tmp_path: Path) -> None:
    sender, commits = _history(tmp_path / "sender", 2)
    receiver = gitops.init_repo(tmp_path / "receiver")
    assert gitops.read_bundle(receiver, gitops.make_bundle(sender, commits[0], [])) == [commits[0]]
    thin = gitops.make_bundle(sender, commits[1], [commits[0]])
    assert thin is not None
    _prerequisites, _heads, pack = gitops._split_bundle(thin)
    assert len(pack) < len(BIG) // 4, "a one-line change travels as a delta on the receiver's blob"
    assert gitops.read_bundle(receiver, thin) == [commits[1]]
    _git(tmp_path / "receiver", "fsck", "--strict", "--no-dangling")
    shown = _git(tmp_path / "receiver", "show", f"{commits[1]}:train.py").decode()
    assert shown.startswith("constant_0 = 0\n") and "constant_7 = 1 + " in shown


def test_a_thin_pack_without_its_base_is_refused(tmp_path: Path) -> None:
    sender, commits = _history(tmp_path / "sender", 2)
    _pre, _heads, pack = gitops._split_bundle(gitops.make_bundle(sender, commits[1], [commits[0]]) or b"")
    with pytest.raises(PackError, match=r"^a delta's base is missing: the object [0-9a-f]{40}"):
        read_pack(pack, lambda sha: None)


def entry_kind(pack: bytes, index: int) -> int:
    """The type of the pack's index-th entry (walking the entries as the reader does)."""
    return packs._entries(pack, struct.unpack(">I", pack[8:12])[0])[index].kind


# -- hostile packs: built by hand, with a correct checksum, so the checks behind it are tested


def _header(kind: int, size: int) -> bytes:
    out, byte, size = bytearray(), (kind << 4) | (size & 15), size >> 4
    while size:
        out.append(byte | 0x80)
        byte, size = size & 0x7F, size >> 7
    out.append(byte)
    return bytes(out)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _pack(*entries: bytes, count: int | None = None) -> bytes:
    body = b"PACK" + struct.pack(">II", 2, len(entries) if count is None else count) + b"".join(entries)
    return body + hashlib.sha1(body).digest()


def _plain(kind: int, data: bytes, claimed: int | None = None) -> bytes:
    return _header(kind, len(data) if claimed is None else claimed) + zlib.compress(data)


def _ref_delta(base: GitObject, delta: bytes, claimed: int | None = None) -> bytes:
    return _header(packs.REF_DELTA, len(delta) if claimed is None else claimed) + bytes.fromhex(base.sha) + \
        zlib.compress(delta)


BLOB = GitObject("blob", b"hello\n")


def test_a_hand_built_pack_of_a_blob_and_a_delta_on_it_reads() -> None:
    delta = _varint(6) + _varint(12) + bytes([0x90, 6]) + bytes([6]) + b"world\n"  # copy 6, insert 6
    objects = read_pack(_pack(_ref_delta(BLOB, delta), _plain(3, BLOB.data)), lambda sha: None)
    assert [o.data for o in objects] == [b"hello\nworld\n", b"hello\n"]  # the delta came first


@pytest.mark.parametrize(("pack", "message"), [
    (b"PACK", r"not a git pack"),
    (b"KCAP" + bytes(28), r"not a git pack"),
    (_pack(_plain(3, b"x"))[:-1] + b"\0", r"its checksum does not match"),
    (b"PACK" + struct.pack(">II", 9, 0) + bytes(20), r"pack version 9"),
    (_pack(_plain(3, b"x"), count=2), r"runs past the end|cut off by the end"),
    (_pack(_plain(3, b"xyz", claimed=2)), r"is not the 2 bytes its header says"),
    (_pack(_plain(3, b"xyz", claimed=9)), r"is not the 9 bytes its header says"),
    (_pack(_header(3, 4) + b"not zlib at all"), r"does not inflate"),
    (_pack(_plain(5, b"x")), r"unknown type 5"),
    (_pack(_plain(3, b"x") + b"trailing"), r"bytes follow its last object"),
    (_pack(_header(3, 2**40) + zlib.compress(b"")), r"more than \d+"),
    (_pack(_plain(3, b"x"), count=10**9), r"claims 1000000000 objects"),
    # a delta: made for another base size; copying outside its base; making more than it says
    (_pack(_plain(3, BLOB.data), _ref_delta(BLOB, _varint(5) + _varint(1) + bytes([1]) + b"a")),
     r"was made for a base of 5 bytes, not 6"),
    (_pack(_plain(3, BLOB.data), _ref_delta(BLOB, _varint(6) + _varint(4) + bytes([0x91, 4, 4]))),
     r"delta at byte \d+ (is malformed|makes 0 bytes, not 4)"),
    (_pack(_plain(3, BLOB.data), _ref_delta(BLOB, _varint(6) + _varint(6) + bytes([0x90, 6]) * 1000)),
     r"makes more than the 6 bytes it says"),
    (_pack(_plain(3, BLOB.data), _ref_delta(BLOB, _varint(6) + _varint(1) + bytes([0]))), r"is malformed"),
    # an offset delta pointing before the pack, or into the middle of an object
    (_pack(_header(packs.OFS_DELTA, 3) + _varint(100) + zlib.compress(b"abc")), r"points before"),
    (_pack(_plain(3, BLOB.data), _header(packs.OFS_DELTA, 3) + bytes([3]) + zlib.compress(b"abc")),
     r"points between objects"),
])
def test_a_hostile_pack_is_refused_with_what_is_wrong(pack: bytes, message: str) -> None:
    with pytest.raises(PackError, match=message):
        read_pack(pack, lambda sha: None)


def test_a_delta_that_would_inflate_without_bound_stops_at_its_declared_size() -> None:
    # each 3-byte copy of the whole 6-byte base would add 6 bytes: 3 MB of copies, 2 MB claimed
    copies = bytes([0x90, 6]) * 1_000_000
    delta = _varint(6) + _varint(2 * 10**6) + copies
    with pytest.raises(PackError, match=r"makes more than the 2000000 bytes it says"):
        read_pack(_pack(_plain(3, BLOB.data), _ref_delta(BLOB, delta)), lambda sha: None)


def test_a_refused_bundle_writes_nothing_to_the_repository(tmp_path: Path) -> None:
    receiver = gitops.init_repo(tmp_path / "receiver")
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "receiver" / ".git" / "objects").rglob("*"))
    good = _plain(3, b"a blob that must not be stored\n")
    bad = _header(3, 4) + b"not zlib"
    head = "1" * 40
    bundle = f"# v2 git bundle\n{head} refs/heads/x\n\n".encode() + _pack(good, bad)
    with pytest.raises(GitError, match=r"^a bundle could not be read: the object at byte \d+ does not inflate"):
        gitops.read_bundle(receiver, bundle)
    after = sorted(p.relative_to(tmp_path) for p in (tmp_path / "receiver" / ".git" / "objects").rglob("*"))
    assert after == before
