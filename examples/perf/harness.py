"""The score phase of the perf example: times `tokenize` from outside the candidate's code.

Run by the swarm as `target.score`, in its own jail, after `run` left solution.py in
$SWARM_ARTIFACTS. How it measures, and why:
- The held-out texts (`cases/*.txt`, `target.hidden`) are read into memory and deleted from this
  jail's copy before any candidate process starts: it cannot read them.
- Every measured call gets a fresh variant of each text (its names and digits renamed with a
  random key drawn here), and the expected tokens come from reference.py in this process: a
  candidate that remembers an input, in memory or in a file, never sees that input again.
- Each repeat is a fresh candidate process pinned to the idlest CPU this worker may use: a
  warm-up call (imports, regex compiles, caches: not counted), then the timed call of each text.
  One whole repeat before them is not counted either (page cache, CPU clocks).
- The clock is this process's: it starts before the input is written to the candidate's pipe
  and stops when the last byte of its full answer has been read, so the candidate cannot report
  its own time, nor answer early and work later. An answer that differs from the reference in
  any byte, a crash or a timeout gives no metric.
- Between repeats every file the candidate wrote in a writable place is removed (its own
  folder; in the jail also /tmp, which holds the cwd and HOME, and /dev/shm), and a changed
  file there refuses the trial: each repeat starts from the same files.
- The metric is the median over REPEATS of the seconds per call (one call: one text); the spread
  (max - min) / median is printed beside it. The median, not the minimum: on a shared machine
  one repeat slowed by another job or one lucky fast one moves it least, and the acceptance test
  needs a metric whose noise is symmetric and steady, which the minimum's is not.
- Nothing the candidate prints reaches the log: its stdout is the answer pipe, stderr a file
  read here only to say why it failed.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from reference import render, tokenize

REPEATS = int(os.environ.get("PERF_REPEATS", "5"))  # the bench varies it; the candidate cannot
TIMEOUT_S = 60.0  # one candidate process, all its calls
# Runs in the candidate's process: it only moves bytes. Each request is a length line and the
# text; each answer a length line and the tokens rendered as reference.render does.
RUNNER = r"""
import sys
sys.path.insert(0, sys.argv[1])
from solution import tokenize
inp, out = sys.stdin.buffer, sys.stdout.buffer
out.write(b"ready\n"); out.flush()
while (size := inp.readline()):
    text = inp.read(int(size)).decode()
    answer = "\0".join(map("\t".join, tokenize(text))).encode()
    out.write(b"%d\n" % len(answer) + answer); out.flush()
"""
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DIGITS = re.compile(r"[0-9]+")


class Refused(Exception):
    """The candidate gets no metric; the message says why."""


def load_cases(folder: Path) -> list[str]:
    cases = []
    for path in sorted(folder.glob("*.txt")):
        cases.append(path.read_text())
        path.unlink()  # the candidate runs in this jail too: it must not find them
    return cases


def variant(text: str, rng: random.Random) -> str:
    """text with every name and number renamed by a fresh random key: the same shape to
    tokenize, never the same string (nor the same line) twice."""
    names: dict[str, str] = {}
    key = rng.getrandbits(32)

    def rename(match: re.Match[str]) -> str:
        word = match.group()
        return names.setdefault(word, f"{word[:6]}_{(hash(word) ^ key) & 0xFFFF:x}")

    def renumber(match: re.Match[str]) -> str:
        return "".join(rng.choice("0123456789") for _ in match.group())

    return _DIGITS.sub(renumber, _NAME.sub(rename, text))


def one_cpu() -> int:
    """The idlest CPU this process may use, over a short look at /proc/stat: the candidate is
    pinned there, so the scheduler does not move it between cores mid-call, and two workers
    sharing a machine's CPUs do not both time on the same one."""
    allowed = sorted(os.sched_getaffinity(0))
    first = _idle_ticks()
    time.sleep(0.2)
    last = _idle_ticks()
    idle = {cpu: last.get(cpu, 0) - first.get(cpu, 0) for cpu in allowed}
    return max(allowed, key=lambda cpu: (idle[cpu], cpu))


def _idle_ticks() -> dict[int, int]:
    """cpu -> its idle ticks so far; empty where /proc/stat cannot be read."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return {}
    return {int(f[0][3:]): int(f[4]) for f in (line.split() for line in lines)
            if f[0].startswith("cpu") and f[0][3:].isdigit() and len(f) > 4}


def scratch_roots() -> list[Path]:
    """Where a candidate could leave a file for its next repeat. Outside the jail only its own
    folder: the host's /tmp belongs to others."""
    if os.environ.get("SWARM_ISOLATED") != "1":
        return []
    roots = [Path(os.environ.get("SWARM_SCRATCH", "/tmp")), Path("/dev/shm"), Path.cwd()]
    return [root for root in roots if root.is_dir()]


def snapshot(roots: list[Path]) -> dict[str, tuple[int, int]]:
    found = {}
    for root in roots:
        for folder, dirs, files in os.walk(root):
            for name in dirs + files:
                path = os.path.join(folder, name)
                info = os.lstat(path)
                found[path] = (info.st_size, info.st_mtime_ns)
    return found


def restore(roots: list[Path], before: dict[str, tuple[int, int]]) -> None:
    """Removes what appeared since `before`; a file changed in place refuses the trial."""
    now = snapshot(roots)
    for path in sorted(set(now) - set(before), key=len):
        if os.path.lexists(path):
            shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)
    changed = [p for p in before if p in now and now[p] != before[p] and not os.path.isdir(p)]
    if changed:
        raise Refused(f"the candidate changed {changed[0]} between repeats")


class Candidate:
    """One fresh candidate process, pinned, in a folder of its own."""

    def __init__(self, solution_dir: Path, home: Path, cpu: int) -> None:
        home.mkdir()
        self._errors = tempfile.TemporaryFile()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "TMPDIR": str(home)}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", RUNNER, str(solution_dir)], cwd=home, env=env, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._errors)
        # pinned from here, not in a preexec_fn (unsafe with the timer threads): its start-up
        # may run unpinned, but no timed call does
        os.sched_setaffinity(self.proc.pid, {cpu})
        self.timed_out = False
        self._timer = threading.Timer(TIMEOUT_S, self._kill)
        self._timer.daemon = True  # a refused candidate's timer must not keep the harness waiting
        self._timer.start()
        first = self.proc.stdout.readline()
        if first == b"":
            raise Refused(f"the candidate did not start: {self.why()}")
        if first != b"ready\n":  # its stdout is the answer pipe: a print there breaks it
            self.close()
            raise Refused(f"the candidate printed {first[:60]!r} on the answer pipe before its first call")

    def call(self, text: str) -> tuple[float, bytes]:
        """Seconds from writing the request to reading the last byte of the answer, and it."""
        request = text.encode()
        started = time.perf_counter()
        self.proc.stdin.write(b"%d\n" % len(request) + request)
        self.proc.stdin.flush()
        size = self.proc.stdout.readline()
        answer = self.proc.stdout.read(int(size)) if size.strip().isdigit() else b""
        elapsed = time.perf_counter() - started
        if not size.strip().isdigit():
            raise Refused(f"the candidate gave no answer: {self.why()}")
        return elapsed, answer

    def _kill(self) -> None:
        self.timed_out = True
        self.proc.kill()

    def why(self) -> str:
        self.close()
        if self.timed_out:
            return f"it took over {TIMEOUT_S:g} s"
        self._errors.seek(0)
        tail = self._errors.read().decode(errors="replace").strip().splitlines()[-1:]
        return f"exit code {self.proc.returncode}" + (f"; its stderr ends: {tail[0][:200]}" if tail else "")

    def close(self) -> None:
        self._timer.cancel()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:  # a pipe it broke
                pass


def one_repeat(solution_dir: Path, home: Path, cpu: int, cases: list[str], rng: random.Random) -> float:
    """Seconds per call of one fresh process: a warm-up variant of each text, then a timed one."""
    warm = [variant(text, rng) for text in cases]
    timed = [variant(text, rng) for text in cases]
    expected = [render(tokenize(text)) for text in timed]
    candidate = Candidate(solution_dir, home, cpu)
    try:
        for text in warm:
            candidate.call(text)
        total = 0.0
        for text, want in zip(timed, expected, strict=True):
            elapsed, answer = candidate.call(text)
            if answer != want:
                raise Refused("wrong tokens: the answer differs from reference.py's")
            total += elapsed
    finally:
        candidate.close()
    return total / len(cases)


def measure(solution_dir: Path, cases: list[str], repeats: int, cpu: int) -> list[float]:
    """Seconds per call of each counted repeat (the first repeat is run and not counted)."""
    rng, roots = random.SystemRandom(), scratch_roots()
    with tempfile.TemporaryDirectory(prefix="perf-") as own:
        before = snapshot(roots)
        times = []
        for index in range(repeats + 1):
            home = Path(own) / f"repeat{index}"
            seconds = one_repeat(solution_dir, home, cpu, cases, rng)
            shutil.rmtree(home, ignore_errors=True)
            restore(roots, before)
            times.append(seconds)
            note = " (warm-up, not counted)" if index == 0 else ""
            print(f"repeat {index}: {seconds * 1e3:.3f} ms per call{note}")
    return times[1:]


def main() -> int:
    solution = Path(os.environ["SWARM_ARTIFACTS"]) / "solution.py"
    if solution.is_symlink() or not solution.is_file():
        print(f"error: run left no regular file {solution}")
        return 1
    cases = load_cases(Path("cases"))
    if not cases:
        print("error: no held-out cases in cases/ (target.hidden shows them to the score phase only)")
        return 1
    try:
        cpu = one_cpu()
        times = measure(solution.parent, cases, max(1, REPEATS), cpu)
    except Refused as refused:
        print(f"error: {refused}")
        return 1
    median = statistics.median(times)
    spread = (max(times) - min(times)) / median
    print(f"{len(times)} repeats on cpu {cpu}: median {median * 1e3:.3f} ms, "
          f"min {min(times) * 1e3:.3f}, max {max(times) * 1e3:.3f}, spread {spread:.1%}")
    print("---")
    print(f"seconds: {median:.6f}")
    print(f"spread: {spread:.4f}")
    print(f"repeats: {len(times)}")
    print(f"cases: {len(cases)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
