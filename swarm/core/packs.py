"""A git pack (a bundle's body) read in-process, its objects resolved and returned. Pure: no
git process, no repository; the caller says where a thin pack's outside bases come from.

Why not `git index-pack`: one process per result was most of what a report cost the
coordinator (bench/coordinator_capacity.py: 7-11 ms of a 20 ms report), and a trial's pack
holds a handful of objects. The pack comes from a worker, so every length, offset and delta is
checked before it is used, and a pack that asks for more than MAX_OBJECT_BYTES is refused
rather than inflated.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from gitdb.fun import apply_delta_data, msb_size, pack_object_header_info

__all__ = ["PackError", "GitObject", "read_pack", "MAX_OBJECT_BYTES"]

KINDS = {1: "commit", 2: "tree", 3: "blob", 4: "tag"}
OFS_DELTA, REF_DELTA = 6, 7
MAX_OBJECT_BYTES = 256 * 2**20  # one object, inflated: far above any file a target edits
MAX_OBJECTS = 1_000_000
CHUNK = 64 * 1024


class PackError(ValueError):
    """The pack is not one git would accept; the message says what is wrong with it."""


class _Overflow(Exception):
    pass


@dataclass(frozen=True)
class GitObject:
    kind: str  # commit, tree, blob or tag
    data: bytes

    @property
    def sha(self) -> str:
        return hashlib.sha1(b"%s %d\0" % (self.kind.encode(), len(self.data)) + self.data).hexdigest()


@dataclass(frozen=True)
class _Entry:
    offset: int
    kind: int
    body: bytes  # the object, or the delta that makes it
    base_offset: int | None = None  # OFS_DELTA
    base_sha: str | None = None  # REF_DELTA


def read_pack(data: bytes, outside: Callable[[str], GitObject | None]) -> list[GitObject]:
    """Every object of the pack, in pack order. `outside(sha)` gives a base a thin pack leaves
    out (an object the receiver already holds), or None when there is no such object."""
    if len(data) < 32 or data[:4] != b"PACK":
        raise PackError("not a git pack")
    version, count = struct.unpack(">II", data[4:12])
    if version not in (2, 3):
        raise PackError(f"pack version {version} is not 2 or 3")
    if count > MAX_OBJECTS:
        raise PackError(f"it claims {count} objects, more than {MAX_OBJECTS}")
    if hashlib.sha1(data[:-20]).digest() != data[-20:]:
        raise PackError("its checksum does not match its contents")
    entries = _entries(data, count)
    return _resolve(entries, outside)


def _entries(data: bytes, count: int) -> list[_Entry]:
    end, pos, entries = len(data) - 20, 12, []
    for _ in range(count):
        start = pos
        try:
            kind, size, used = pack_object_header_info(data[pos:pos + 16])
        except IndexError:
            raise PackError(f"an object header at byte {pos} runs past the end") from None
        pos += used
        base_offset = base_sha = None
        if kind == OFS_DELTA:
            distance, pos = _offset_back(data, pos, end)
            base_offset = start - distance
            if base_offset < 12:
                raise PackError(f"the delta at byte {start} points before the pack's first object")
        elif kind == REF_DELTA:
            if pos + 20 > end:
                raise PackError(f"the delta at byte {start} runs past the end")
            base_sha, pos = data[pos:pos + 20].hex(), pos + 20
        elif kind not in KINDS:
            raise PackError(f"the object at byte {start} has the unknown type {kind}")
        if size > MAX_OBJECT_BYTES:
            raise PackError(f"the object at byte {start} is {size} bytes, more than {MAX_OBJECT_BYTES}")
        body, pos = _inflate(data, pos, end, size, start)
        entries.append(_Entry(start, kind, body, base_offset, base_sha))
    if pos != end:
        raise PackError(f"{end - pos} bytes follow its last object")
    return entries


def _offset_back(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """An OFS_DELTA's distance back to its base (git's offset encoding, not a plain varint)."""
    if pos >= end:
        raise PackError("a delta's base offset runs past the end")
    byte = data[pos]
    distance, pos = byte & 0x7F, pos + 1
    while byte & 0x80:
        if pos >= end or distance > 2**40:
            raise PackError("a delta's base offset is malformed")
        byte = data[pos]
        distance, pos = ((distance + 1) << 7) | (byte & 0x7F), pos + 1
    return distance, pos


def _inflate(data: bytes, pos: int, end: int, size: int, start: int) -> tuple[bytes, int]:
    """The zlib stream at `pos`, inflated to exactly `size` bytes; and where the next object
    starts. Fed in chunks, so a pack of many objects is not copied once per object."""
    stream, view, got, fed = zlib.decompressobj(), memoryview(data), 0, pos
    pieces: list[bytes] = []
    try:
        while not stream.eof:
            chunk: bytes | memoryview = stream.unconsumed_tail
            if not chunk:
                if fed >= end:
                    raise PackError(f"the object at byte {start} is cut off by the end of the pack")
                chunk, fed = view[fed:min(fed + CHUNK, end)], min(fed + CHUNK, end)
            piece = stream.decompress(chunk, size + 1 - got)  # one byte over: a size that lies shows
            got += len(piece)
            if got > size:
                break
            pieces.append(piece)
    except zlib.error as exc:
        raise PackError(f"the object at byte {start} does not inflate: {exc}") from None
    if got != size or not stream.eof:
        raise PackError(f"the object at byte {start} is not the {size} bytes its header says")
    return b"".join(pieces), fed - len(stream.unused_data)


def _resolve(entries: list[_Entry], outside: Callable[[str], GitObject | None]) -> list[GitObject]:
    """Base objects first, then each delta once its base is known, whatever the pack's order."""
    done: dict[int, GitObject] = {}  # pack offset -> object
    waiting: dict[int | str, list[_Entry]] = {}  # a base (offset or sha) -> deltas on it
    ready: deque[tuple[_Entry, GitObject | None]] = deque()
    offsets = {e.offset for e in entries}
    for entry in entries:
        if entry.kind in KINDS:
            ready.append((entry, None))
        elif entry.base_offset is not None:
            if entry.base_offset not in offsets:
                raise PackError(f"the delta at byte {entry.offset} points between objects")
            waiting.setdefault(entry.base_offset, []).append(entry)
        else:
            assert entry.base_sha is not None
            waiting.setdefault(entry.base_sha, []).append(entry)
    asked: set[str] = set()
    while True:
        while ready:
            entry, base = ready.popleft()
            made = GitObject(KINDS[entry.kind], entry.body) if base is None else _patched(entry, base)
            done[entry.offset] = made
            ready.extend((d, made) for d in waiting.pop(entry.offset, []))
            ready.extend((d, made) for d in waiting.pop(made.sha, []))
        # the pack's own objects are all made that can be: the rest need the receiver's
        for sha in [key for key in waiting if isinstance(key, str) and key not in asked]:
            asked.add(sha)
            if (base := outside(sha)) is not None:
                ready.extend((d, base) for d in waiting.pop(sha))
        if not ready:
            break
    if waiting:
        missing = next(iter(waiting))
        what = f"the object {missing}" if isinstance(missing, str) else f"the object at byte {missing}"
        raise PackError(f"a delta's base is missing: {what} (a thin pack whose base this repository lacks, "
                        "or a cycle)")
    return [done[e.offset] for e in entries]


def _patched(entry: _Entry, base: GitObject) -> GitObject:
    delta = entry.body
    try:
        pos, source_size = msb_size(delta)
        pos, target_size = msb_size(delta, pos)
    except (AssertionError, IndexError):
        raise PackError(f"the delta at byte {entry.offset} has a malformed header") from None
    if source_size != len(base.data):
        raise PackError(f"the delta at byte {entry.offset} was made for a base of {source_size} bytes, "
                        f"not {len(base.data)}")
    if target_size > MAX_OBJECT_BYTES:
        raise PackError(f"the delta at byte {entry.offset} makes {target_size} bytes, more than {MAX_OBJECT_BYTES}")
    out = bytearray()

    def write(chunk: bytes) -> None:
        if len(out) + len(chunk) > target_size:  # copies of the base can make anything: stop at the size
            raise _Overflow
        out.extend(chunk)

    body = memoryview(delta)[pos:]
    try:
        # gitdb stops at a copy outside the base and then asserts; both end here as an error
        apply_delta_data(base.data, len(base.data), body, len(body), write)
    except _Overflow:
        raise PackError(f"the delta at byte {entry.offset} makes more than the {target_size} bytes it says") from None
    except (AssertionError, ValueError, IndexError):
        raise PackError(f"the delta at byte {entry.offset} is malformed") from None
    if len(out) != target_size:
        raise PackError(f"the delta at byte {entry.offset} makes {len(out)} bytes, not {target_size}")
    return GitObject(base.kind, bytes(out))
