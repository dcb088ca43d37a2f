"""The jail's first process: builds the trial's view of the machine, runs it, and watches it.

Runs as PID 1 of new user, mount, PID, network and IPC namespaces (`workers.jail` starts it
under util-linux `unshare`), as root of the new user namespace only: it may mount, the host
grants it nothing. Standard library only, and imported by nothing: it is started by path.

What the trial sees (the spec is a JSON file the worker wrote):
- `/` read-only, recursively, so nothing it writes outlives it outside its scratch;
- `/tmp`: a fresh tmpfs of `scratch_mb`, the only writable place: the trial's copy of its
  checkout in /tmp/work (its cwd; `readonly` files bound read-only), HOME in /tmp/home and the
  artifacts in /tmp/artifacts. The host's /tmp, the worker's clone (and every other worker's),
  the run directory and logs, and $HOME are covered by empty file systems;
- `expose` paths (the Python environment, `sandbox.read`) stay visible, read-only, even where
  they lie under a covered path; `cover` paths (`hidden` files) read as empty;
- the network: loopback only, plus a relay per allowed endpoint to a Unix socket the worker
  serves; /etc/hosts maps the endpoints' names to 127.0.0.1.

Then the command runs without any capability and with `no_new_privs`, under rlimits. This process
stays PID 1: it polls the jail's processes and memory, and when the command exits (or a limit is
hit) kills everything left in the PID namespace, `setsid` or not. It copies /tmp/artifacts out
(regular files only) to the worker's directory through a descriptor opened before the covers,
and writes its report (exit, limit hit, timings) the same way: nothing in the jail can reach either.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import fcntl
import importlib
import json
import os
import resource
import shutil
import signal
import socket
import stat
import struct
import sys
import time
from typing import Any

MS_RDONLY, MS_REMOUNT, MS_BIND, MS_MOVE, MS_REC = 0x1, 0x20, 0x1000, 0x2000, 0x4000
MNT_DETACH = 0x2
MOUNT_ATTR_RDONLY, AT_RECURSIVE, AT_FDCWD = 0x1, 0x8000, -100
SYS_MOUNT_SETATTR = 442  # the same number on x86_64 and aarch64 (Linux 5.12+)
SYS_OPEN_TREE, OPEN_TREE_CLONE, OPEN_TREE_CLOEXEC = 428, 0x1, 0o2000000
DROP_PRIVILEGES = ["setpriv", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
SCRATCH = "/tmp"
MB = 1 << 20
SETUP_FAILED = 125  # like env(1): the command could not be started
_PAGE = os.sysconf("SC_PAGE_SIZE")
Spec = dict[str, Any]  # the worker's JSON
relay: Any = None  # workers/relay.py, loaded by main when the trial has endpoints

_LIBC = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    args = [s.encode() if s is not None else None for s in (source, target, fstype, data)]
    if _LIBC.mount(args[0], args[1], args[2], flags, args[3]) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def _set_read_only(path: str, read_only: bool, recursive: bool) -> None:
    attr = _MountAttr(MOUNT_ATTR_RDONLY if read_only else 0, 0 if read_only else MOUNT_ATTR_RDONLY, 0, 0)
    if _LIBC.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, path.encode(), AT_RECURSIVE if recursive else 0,
                     ctypes.byref(attr), ctypes.sizeof(attr)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount_setattr {path}: {os.strerror(err)} (needs Linux 5.12 or newer)")


def _detached(path: str) -> int:
    """A private copy of the mount at path, attached nowhere: no path in the jail leads to it and
    making the tree read-only leaves it writable. Its descriptor works as a dir_fd."""
    fd = _LIBC.syscall(SYS_OPEN_TREE, AT_FDCWD, path.encode(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC)
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"open_tree {path}: {os.strerror(err)} (needs Linux 5.2 or newer)")
    return int(fd)


def _touch(path: str, like: str) -> None:
    """A mount point at path of the same kind (directory or file) as like."""
    if os.path.isdir(like):
        os.makedirs(path, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not os.path.exists(path):
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o644))


def _cover(path: str) -> None:
    """path reads as empty: a small tmpfs over a directory (made read-only with the rest of the
    tree; writable until then, so exposed paths below it can get mount points), /dev/null over a file."""
    if os.path.isdir(path) and not os.path.islink(path):
        _mount("none", path, "tmpfs", 0, "size=1m,mode=0755")
    elif os.path.lexists(path) and not os.path.islink(path):
        _mount("/dev/null", path, None, MS_BIND, None)


def _copy_checkout(source: str, files: list[str], work: str) -> None:
    for rel in files:
        src, dst = os.path.join(source, rel), os.path.join(work, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if os.path.islink(src):
            os.symlink(os.readlink(src), dst)
        elif os.path.isfile(src):
            shutil.copyfile(src, dst)
            shutil.copymode(src, dst)


def _loopback_up() -> None:
    SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))


def _hosts_file(routes: list[Spec], stage: str) -> str | None:
    names = sorted({r["host"] for r in routes if not _is_address(r["host"])})
    if not names:
        return None
    try:
        with open("/etc/hosts") as f:
            base = f.read()
    except OSError:
        base = "127.0.0.1 localhost\n"
    path = os.path.join(stage, "hosts")
    with open(path, "w") as f:
        f.write(base.rstrip("\n") + "\n" + "".join(f"127.0.0.1 {name}\n" for name in names))
    return path


def _is_address(host: str) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host.strip("[]"))
            return True
        except OSError:
            pass
    return False


def _start_relay(routes: list[Spec]) -> int | None:
    """A child process serving the endpoints on loopback; its pid (None without endpoints)."""
    if not routes:
        return None
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        try:
            relay.serve_inside({int(r["port"]): r["socket"] for r in routes},
                               ready=lambda: os.write(ready_w, b"1"))
        finally:
            os._exit(1)
    os.close(ready_w)
    with os.fdopen(ready_r, "rb") as ready:
        if ready.read(1) != b"1":
            raise OSError("the network relay did not start")
    return pid


def _build(spec: Spec, outside: Spec) -> None:
    """Every mount of the trial's view, in the order that lets each one still see its source."""
    stage_root = spec["mountpoint"]  # an empty directory the worker made: the scratch goes there first
    _mount("none", stage_root, "tmpfs", 0, f"size={int(spec['scratch_mb'])}m,mode=0755")
    work, home, artifacts, stage = (os.path.join(stage_root, name) for name in ("work", "home", "artifacts", ".stage"))
    shm = os.path.join(stage_root, ".shm")
    for path in (work, home, artifacts, stage, shm):
        os.mkdir(path)
    os.chmod(shm, 0o1777)
    _copy_checkout(spec["source"], spec["copy"], work)
    for rel in spec["readonly"]:
        path = os.path.join(work, rel)
        if os.path.isfile(path) and not os.path.islink(path):
            _mount(path, path, None, MS_BIND, None)  # its own mount, left read-only below
    if spec.get("artifacts_in"):
        _mount(spec["artifacts_in"], artifacts, None, MS_BIND | MS_REC, None)
    exposed = []
    for i, path in enumerate(spec["expose"]):
        if os.path.exists(path):
            staged = os.path.join(stage, str(i))
            _touch(staged, path)
            _mount(path, staged, None, MS_BIND | MS_REC, None)
            exposed.append((staged, path))
    hosts = _hosts_file(spec["routes"], stage)
    if spec["routes"]:  # the worker's sockets, wherever they are on the host, at a known place
        net = os.path.join(stage, "net")
        os.mkdir(net)
        _mount(os.path.dirname(spec["routes"][0]["socket"]), net, None, MS_BIND, None)
        for route in spec["routes"]:
            route["socket"] = os.path.join(SCRATCH, ".stage", "net", os.path.basename(route["socket"]))
    _mount(stage_root, SCRATCH, None, MS_MOVE, None)  # the host's /tmp is now out of sight

    def relocated(path: str) -> str:
        return SCRATCH + path[len(stage_root):]

    for path in spec["cover"]:
        if path != SCRATCH and not path.startswith(SCRATCH + "/"):  # the host's is gone already
            _cover(path)
    for staged, path in exposed:
        _touch(path, relocated(staged))
        _mount(relocated(staged), path, None, MS_MOVE, None)
    for path in spec["cover"]:  # a hidden path inside an exposed one: its bind came back uncovered
        if any(path == shown or path.startswith(shown.rstrip("/") + "/") for _, shown in exposed):
            _cover(path)
    if hosts:
        _mount(relocated(hosts), "/etc/hosts", None, MS_BIND, None)
    writable = [SCRATCH]
    if os.path.isdir("/dev/shm"):  # not the host's; part of the scratch, so its size bounds both
        _mount(relocated(shm), "/dev/shm", None, MS_BIND, None)
        writable.append("/dev/shm")
    _set_read_only("/", True, recursive=True)
    for path in writable:
        _set_read_only(path, False, recursive=False)
    _loopback_up()
    outside["relay"] = _start_relay(spec["routes"])


def _limits(spec: Spec) -> None:
    """In the command's process, before exec: what the kernel enforces per process."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if spec.get("cpu_s"):
        resource.setrlimit(resource.RLIMIT_CPU, (int(spec["cpu_s"]), int(spec["cpu_s"]) + 5))
    if spec.get("file_mb"):
        size = int(spec["file_mb"]) * MB
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    if spec.get("processes"):
        # Counted per user namespace (Linux 5.14+), so only this jail's processes count; ignored
        # for a worker running as the host's root, where the poll below is the bound.
        resource.setrlimit(resource.RLIMIT_NPROC, (int(spec["processes"]) + 4,) * 2)


def _jail_processes(skip: set[int]) -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit() and int(name) not in skip]


def _memory_mb(pids: list[int]) -> float:
    """What the jail's processes hold in memory together: each one's proportional share of its
    resident pages (so pages a fork shares are counted once), plus memfds they hold unmapped,
    which no process's resident count shows."""
    total_kb, memfds = 0, {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
                total_kb += sum(int(line.split()[1]) for line in f if line.startswith((b"Pss:", b"SwapPss:")))
        except (OSError, IndexError, ValueError):
            continue  # it exited while we looked
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = f"/proc/{pid}/fd/{fd}"
                if os.readlink(link).startswith("/memfd:"):
                    info = os.stat(link)
                    memfds[(info.st_dev, info.st_ino)] = info.st_blocks * 512
        except OSError:
            pass
    return total_kb / 1024 + sum(memfds.values()) / MB


def _kill_all() -> None:
    """Everything in the PID namespace but this process: kill(-1) from its init."""
    try:
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        pass
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return


def _watch(spec: Spec, main: int, skip: set[int]) -> tuple[int | None, str, str]:
    """Waits for the command; (its wait status, the limit hit or "", what was seen)."""
    poll_s, memory_mb, processes = float(spec.get("poll_s") or 0.02), spec.get("memory_mb"), spec.get("processes")
    ticks = 0
    while True:
        while True:  # every exit in the namespace is reaped here: orphans come to init
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return None, "", "the command vanished"
            if pid == 0:
                break
            if pid == main:
                return status, "", ""
        pids = _jail_processes(skip)
        if processes and len(pids) >= int(processes):
            return None, "processes", f"reached {processes} processes (limits.processes)"
        ticks += 1
        if memory_mb and ticks % 5 == 0 and (used := _memory_mb(pids)) > float(memory_mb):
            return None, "memory", f"{used:.0f} MB in memory, over limits.memory_mb {memory_mb}"
        time.sleep(poll_s)


def _after(spec: Spec, status: int | None, limit: str, detail: str) -> tuple[int | None, int | None, str, str]:
    """(exit code, signal, limit, detail) once everything is dead, with the limits the kernel
    enforced read from how it ended and what it left."""
    code = os.waitstatus_to_exitcode(status) if status is not None else None
    sig = -code if code is not None and code < 0 else None
    if not limit and sig == signal.SIGXCPU:
        limit, detail = "cpu", f"killed by SIGXCPU after limits.cpu_s {spec.get('cpu_s')} s of CPU"
    if not limit and sig == signal.SIGXFSZ:
        limit, detail = "file_size", f"a file reached limits.file_mb {spec.get('file_mb')} MB"
    if not limit and code not in (0, None):
        limit, detail = _left_behind(spec)
    return (None if sig else code), sig, limit, detail


def _left_behind(spec: Spec) -> tuple[str, str]:
    """A failed run that filled its scratch or wrote a file as large as allowed hit a limit."""
    usage = os.statvfs(SCRATCH)
    if usage.f_bavail * usage.f_frsize < MB:
        return "disk", f"the scratch ({spec['scratch_mb']} MB, limits.scratch_mb) is full"
    if spec.get("file_mb"):
        cap = int(spec["file_mb"]) * MB
        for folder, _dirs, files in os.walk(SCRATCH):
            for name in files:
                try:
                    if os.lstat(os.path.join(folder, name)).st_size >= cap:
                        return "file_size", f"a file reached limits.file_mb {spec['file_mb']} MB"
                except OSError:
                    pass
    return "", ""


def _copy_out(source: str, into_fd: int) -> list[str]:
    """Regular files and folders of source into the directory into_fd; what was left out.
    Nothing in the jail runs any more, so nothing changes under the copy."""
    skipped: list[str] = []
    for name in sorted(os.listdir(source)):
        path = os.path.join(source, name)
        info = os.lstat(path)
        if stat.S_ISDIR(info.st_mode):
            os.mkdir(name, 0o755, dir_fd=into_fd)
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=into_fd)
            try:
                skipped += [f"{name}/{s}" for s in _copy_out(path, child)]
            finally:
                os.close(child)
        elif stat.S_ISREG(info.st_mode):
            out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=into_fd)
            with open(path, "rb") as src, os.fdopen(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        else:
            skipped.append(name)
    return skipped


def _keep(name: str, private: int) -> list[str]:
    """/tmp/<name> copied to the worker's folder; what was left out."""
    os.mkdir(name, 0o755, dir_fd=private)
    into = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=private)
    try:
        return _copy_out(os.path.join(SCRATCH, name), into)
    finally:
        os.close(into)


def _keep_feedback(private: int, cap: int) -> None:
    """/tmp/feedback.txt (SWARM_FEEDBACK_FILE), its first `cap` bytes, to the worker's folder:
    a regular file only (a link or a FIFO the trial left there is not followed)."""
    try:
        source = os.open(os.path.join(SCRATCH, "feedback.txt"), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return  # none written
    try:
        if not stat.S_ISREG(os.fstat(source).st_mode):
            return
        text = os.read(source, cap)
    finally:
        os.close(source)
    out = os.open("feedback.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=private)
    with os.fdopen(out, "wb") as f:
        f.write(text)


def main(spec_path: str) -> int:
    started = time.monotonic()
    with open(spec_path) as f:
        spec = json.load(f)
    if spec["routes"]:  # now: its file may lie under a path the jail covers
        global relay
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        relay = importlib.import_module("relay")  # standard library only
    # The worker's folder for this trial, reached only through this descriptor from here on.
    # Nothing is open on it for writing until the end: a writer would keep the tree writable.
    private = _detached(spec["private"])
    report: Spec = {"isolated": True}

    def finish(code: int) -> int:
        report["teardown_ms"] = round((time.monotonic() - stopped) * 1000, 1) if stopped else None
        out = os.open("report.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600, dir_fd=private)
        with os.fdopen(out, "w") as f:
            f.write(json.dumps(report))
        return code

    stopped = 0.0
    outside: Spec = {}
    try:
        _build(spec, outside)
    except Exception as exc:  # noqa: BLE001  (every setup failure is reported the same way)
        report["setup_error"] = f"{exc.__class__.__name__}: {exc}"
        print(f"jail: cannot set up the trial's jail: {report['setup_error']}", file=sys.stderr, flush=True)
        _kill_all()
        return finish(SETUP_FAILED)
    main_pid = os.fork()
    if main_pid == 0:
        try:
            os.chdir(os.path.join(SCRATCH, "work"))
            _limits(spec)
            os.execvp(DROP_PRIVILEGES[0], [*DROP_PRIVILEGES, *spec["command"]])
        except BaseException as exc:  # noqa: BLE001
            print(f"jail: cannot start {spec['command'][0]}: {exc}", file=sys.stderr, flush=True)
        os._exit(SETUP_FAILED)
    report["setup_ms"] = round((time.monotonic() - started) * 1000, 1)
    skip = {1}  # this process; the command and all it starts count
    if outside.get("relay"):
        skip.add(outside["relay"])
    status, limit, detail = _watch(spec, main_pid, skip)
    stopped = time.monotonic()
    _kill_all()
    code, sig, limit, detail = _after(spec, status, limit, detail)
    report.update(exit_code=code, signal=sig, limit=limit or None, detail=detail)
    if spec.get("keep_artifacts"):
        try:
            report["artifacts_skipped"] = _keep("artifacts", private)
        except OSError as exc:
            report["artifacts_error"] = str(exc)
    try:
        _keep_feedback(private, int(spec.get("feedback_bytes") or 0))
    except OSError as exc:
        report["feedback_error"] = str(exc)
    if limit:
        print(f"jail: stopped: {detail}", file=sys.stderr, flush=True)
    return finish(code if code is not None else 128 + (sig or signal.SIGKILL))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("jail_init.py is started by the worker: python jail_init.py SPEC.json")
    sys.exit(main(sys.argv[1]))
