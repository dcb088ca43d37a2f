"""The dashboard's web server (aiohttp): one page, its two static files, a JSON snapshot, a
stream of deltas (server-sent events) and one trial's details. Read-only: GET and HEAD only.

Bound to 127.0.0.1 by default. Bound to any other address it needs a token, given as
`Authorization: Bearer TOKEN`, or once as `?token=TOKEN` (then kept in an HttpOnly,
SameSite=Strict cookie). Everything that follows the ledger runs in one thread, so the state is
never read half-applied.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import os
import re
import subprocess
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from aiohttp import web

from coordinator.liveness import read_heartbeat
from coordinator.state import TrialRecord
from coordinator.status import RunStatus, recorded_config
from swarm.core.config import SwarmConfig
from swarm.core.errors import RunDirError, SwarmError
from swarm.shell.dashboard.follow import LedgerFollower
from swarm.shell.dashboard.view import (
    POINT_COLUMNS, PointView, lessons_of, panels_json, panels_of, point_of, points_json, start_of,
    status_from_state,
)

__all__ = ["DashboardOptions", "Hub", "Running", "build_app", "start_in_thread", "serve",
           "check_binding", "is_loopback", "cluster_token", "COOKIE"]

COOKIE = "swarm_dashboard"
STATIC = {"app.js": "text/javascript", "style.css": "text/css"}  # all it serves besides the page
_TRIAL_ID = re.compile(r"^[0-9A-Za-z_.-]{1,40}$")
POLL_S = 0.02  # a stat of the ledger: what an update waits for at most before it is read
TICK_S = 0.1  # how often the panels' clock is looked at (after a change they follow at once)
PANELS_EVERY_S = 2.0  # rates and the driver's liveness move with the clock, not only with events
LESSONS_EVERY_S = 15.0
LIVE_EVERY_S = 2.0
_HISTORY = 1000  # deltas kept for a page that reconnects
_LOG_TAIL_BYTES = 12_000
_DIFF_BYTES = 200_000
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


@dataclass
class DashboardOptions:
    run_dir: Path
    host: str = "127.0.0.1"
    port: int = 8700
    token: str | None = None
    address: str | None = None  # ask the live coordinator on this cluster too
    wait_for_run: bool = False  # `swarm run --dashboard`: the ledger may not be there yet


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def cluster_token(environ: dict[str, str] | None = None, home: Path | None = None) -> str | None:
    """The Ray cluster's auth token, found where Ray (and swarm/shell/reach.py) looks."""
    from swarm.shell.reach import find_token

    environ = dict(os.environ) if environ is None else environ
    found = find_token(environ, Path.home() if home is None else home)
    if found is None:
        return None
    if found.source == "$RAY_AUTH_TOKEN":
        return environ["RAY_AUTH_TOKEN"].strip() or None
    try:
        return Path(found.source).expanduser().read_text().strip() or None
    except OSError:
        return None


def check_binding(options: DashboardOptions) -> str | None:
    """The token the server requires (None: none, on a loopback address); a non-loopback
    address without one is refused in one line."""
    if options.token:
        return options.token
    if is_loopback(options.host):
        return None
    if options.address and (token := cluster_token()):
        return token
    raise SwarmError(f"--host {options.host} is not a loopback address: anyone who reaches it could "
                     "read the run; give --token TOKEN (or --address with the cluster's auth token "
                     "at hand), or leave --host at 127.0.0.1")


@dataclass
class _Message:
    seq: int
    kind: str
    body: bytes  # the SSE frame, ready to send


@dataclass
class Hub:
    """Follows the run, keeps what the page shows, and hands each change to every open page."""

    run_dir: Path
    address: str | None = None
    follower: LedgerFollower = field(init=False)
    points: dict[str, PointView] = field(default_factory=dict)
    config: SwarmConfig | None = None
    seq: int = 0
    lessons: list[str] = field(default_factory=list)
    live: RunStatus | None = None
    live_error: str = ""
    history: deque[_Message] = field(default_factory=lambda: deque(maxlen=_HISTORY))
    pages: set[asyncio.Queue[_Message]] = field(default_factory=set)
    diffs: dict[str, str] = field(default_factory=dict)
    _lessons_due: bool = True
    _lessons_at: float = 0.0
    _panels_at: float = 0.0
    _snapshot: tuple[int, bytes] | None = None

    def __post_init__(self) -> None:
        self.follower = LedgerFollower(self.run_dir / "ledger.jsonl")
        self.state_thread = ThreadPoolExecutor(1, thread_name_prefix="dashboard-state")

    async def in_state(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.state_thread, fn, *args)

    # -- in the state thread --------------------------------------------------------------

    def read(self) -> list[_Message]:
        """New ledger lines as a message for the chart: sent before the panels are worked out."""
        change = self.follower.poll()
        if change.reset:
            self.points.clear()
            self._lessons_due = True
            return [self._message("reset", {})]
        if not change.events:
            return []
        state = self.follower.state
        if self.config is None and state.run_info is not None:
            self.config = recorded_config(self.run_dir, state)
        start = start_of(self.follower.events)
        fresh = [point_of(state.trials[t], start) for t in sorted(change.trials) if t in state.trials]
        self.points.update((p.id, p) for p in fresh)
        self._lessons_due = True
        self._panels_at = 0.0  # the panels follow at once, in their own message (see tick)
        return [self._message("trials", {"points": points_json(fresh)})]

    def tick(self, now: float) -> list[_Message]:
        """What moves with the clock: the panels every couple of seconds, the lessons now and then."""
        messages: list[_Message] = []
        if self.config is None:
            return messages
        if now - self._panels_at >= PANELS_EVERY_S:
            messages.append(self._panels())
        return messages

    def undiffed(self, now: float) -> list[TrialRecord] | None:
        """The candidates whose diffs the lessons still need, when the lessons are due (else None)."""
        if self.config is None or not self._lessons_due or now - self._lessons_at < LESSONS_EVERY_S:
            return None
        self._lessons_due, self._lessons_at = False, now
        return [t for t in self.follower.state.trials.values()
                if t.kind == "candidate" and t.status is not None and t.id not in self.diffs]

    def teach(self, diffs: dict[str, str]) -> list[_Message]:
        self.diffs.update(diffs)
        self.lessons = lessons_of(self.follower.state, self.follower.events, self.diffs)
        return [self._message("lessons", {"lessons": self.lessons})]

    def _panels(self) -> _Message:
        assert self.config is not None
        now = time.time()
        self._panels_at = now
        return self._message("panels", self._panels_body(now))

    def _panels_body(self, now: float) -> dict[str, Any]:
        assert self.config is not None
        state = self.follower.state
        status = self.live or status_from_state(state, self.config, read_heartbeat(self.run_dir), now)
        body = panels_json(panels_of(state, self.config, status, start_of(self.follower.events), now))
        if self.address:
            body["live"] = self.live_error or f"live from the coordinator on {self.address}"
        return body

    def _message(self, kind: str, body: dict[str, Any]) -> _Message:
        self.seq += 1
        body["seq"] = self.seq
        data = json.dumps(body, allow_nan=False, separators=(",", ":"))
        return _Message(self.seq, kind, f"id: {self.seq}\nevent: {kind}\ndata: {data}\n\n".encode())

    def snapshot(self) -> bytes:
        """Everything the page shows, as of `seq` (built once per change, however many pages ask)."""
        if self._snapshot is not None and self._snapshot[0] == self.seq:
            return self._snapshot[1]
        if self.config is None:
            body: dict[str, Any] = {"seq": self.seq, "waiting": True, "run_dir": str(self.run_dir)}
        else:
            now = time.time()
            ordered = sorted(self.points.values(), key=lambda p: p.n)
            body = {"seq": self.seq, "waiting": False, "run_dir": str(self.run_dir),
                    "metric": self.config.target.metric.name,
                    "direction": self.config.target.metric.direction,
                    "columns": list(POINT_COLUMNS), "points": points_json(ordered),
                    "lessons": self.lessons, **self._panels_body(now)}
        data = json.dumps(body, allow_nan=False, separators=(",", ":")).encode()
        self._snapshot = (self.seq, data)
        return data

    def trial(self, trial_id: str) -> TrialRecord | None:
        return self.follower.state.trials.get(trial_id)

    # -- on the event loop ----------------------------------------------------------------

    def publish(self, messages: list[_Message]) -> None:
        for message in messages:
            self.history.append(message)
            for page in self.pages:
                page.put_nowait(message)

    async def follow(self) -> None:
        """Reads the ledger as it grows, for as long as the server runs."""
        size, ticked = -1, 0.0
        path = self.follower.path
        while True:
            try:
                stat = os.stat(path)
                seen = stat.st_size + stat.st_ino
            except FileNotFoundError:
                seen = -1
            try:
                changed = seen != size
                if changed:
                    size = seen
                    self.publish(await self.in_state(self.read))
                if changed or time.monotonic() >= ticked + TICK_S:
                    ticked = time.monotonic()
                    self.publish(await self.in_state(self.tick, time.time()))
            except SwarmError as exc:  # a bad line: said once, and read again after a pause
                self.publish([self._message("problem", {"problem": str(exc)})])
                size = -2
                await asyncio.sleep(5.0)
            await asyncio.sleep(POLL_S)

    async def keep_lessons(self) -> None:
        """The report's lessons, from the candidates' diffs as `swarm report` reads them (git runs
        outside the state's thread, so updates do not wait for it)."""
        from swarm.shell.report.writer import candidate_diffs  # matplotlib loads here, after start

        while True:
            wanted = await self.in_state(self.undiffed, time.time())
            if wanted is not None:
                diffs = await asyncio.to_thread(candidate_diffs, self.run_dir / "repo", wanted) if wanted else {}
                self.publish(await self.in_state(self.teach, diffs))
            await asyncio.sleep(1.0)

    async def ask_live(self) -> None:
        """With --address: the live coordinator's status (workers' hosts, what each is doing)."""
        if not self.address:
            return
        from swarm.shell.driver import live_status  # ray loads here

        while True:
            try:
                self.live = await asyncio.to_thread(live_status, self.address, self.run_dir)
                self.live_error = ""
            except Exception as exc:  # ended, gone, not reachable now (Ray's errors too): the ledger alone
                self.live = None
                self.live_error = f"no answer from the live coordinator ({str(exc)[:160]}); showing the ledger"
            await asyncio.sleep(LIVE_EVERY_S)


# -- the web app --------------------------------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(hub: Hub, token: str | None, loopback_only: bool) -> web.Application:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD"):
            raise web.HTTPMethodNotAllowed(request.method, ["GET", "HEAD"])
        if loopback_only and not _local_host(request.host):
            # a page elsewhere that made its name point at 127.0.0.1 (DNS rebinding) reads nothing
            raise web.HTTPForbidden(text="this dashboard answers to localhost only\n")
        from_query = request.query.get("token", "")
        if token is not None:
            given = [request.cookies.get(COOKIE, ""), from_query,
                     request.headers.get("Authorization", "").removeprefix("Bearer ").strip()]
            if not any(g and hmac.compare_digest(g.encode(), token.encode()) for g in given):
                raise web.HTTPUnauthorized(text="a token is needed: Authorization: Bearer TOKEN, or ?token=TOKEN\n")
        response = await handler(request)
        for name, value in _HEADERS.items():
            if not response.prepared:
                response.headers.setdefault(name, value)
        if token is not None and from_query and not response.prepared:
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", path="/")
        return response

    async def page(_request: web.Request) -> web.Response:
        return web.Response(body=_asset("index.html"), content_type="text/html", charset="utf-8")

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in STATIC:  # a fixed list: no path from the request reaches the disk
            raise web.HTTPNotFound()
        return web.Response(body=_asset(name), content_type=STATIC[name], charset="utf-8")

    async def snapshot(_request: web.Request) -> web.Response:
        data = await hub.in_state(hub.snapshot)
        return web.Response(body=data, content_type="application/json")

    async def events(request: web.Request) -> web.StreamResponse:
        try:
            since = int(request.query.get("since", "0"))
        except ValueError:
            raise web.HTTPBadRequest(text="since: a whole number\n") from None
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                               "Cache-Control": "no-store", **_HEADERS})
        await response.prepare(request)
        queue: asyncio.Queue[_Message] = asyncio.Queue()
        hub.pages.add(queue)
        try:
            sent = since
            kept = list(hub.history)
            if kept and kept[0].seq > since + 1 and since < hub.seq:  # too far behind: start over
                await response.write(b"event: reset\ndata: {}\n\n")
            else:
                for message in kept:
                    if message.seq > sent:
                        await response.write(message.body)
                        sent = message.seq
            while True:
                try:
                    message = await asyncio.wait_for(queue.get(), timeout=15)
                except TimeoutError:
                    await response.write(b": still here\n\n")
                    continue
                if message.seq > sent:
                    await response.write(message.body)
                    sent = message.seq
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            hub.pages.discard(queue)
        return response

    async def trial(request: web.Request) -> web.Response:
        trial_id = request.match_info["id"]
        record = await hub.in_state(hub.trial, trial_id) if _TRIAL_ID.match(trial_id) else None
        if record is None:  # only ids the ledger knows reach git
            raise web.HTTPNotFound(text=f"no trial {trial_id[:40]!r} in this run\n")
        details = await asyncio.to_thread(trial_details, hub.run_dir, record)
        return web.json_response(details)

    app = web.Application(middlewares=[guard])
    app.router.add_get("/", page)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/api/snapshot", snapshot)
    app.router.add_get("/api/events", events)
    app.router.add_get("/api/trial/{id}", trial)
    return app


_HEADERS = {"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


def _local_host(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return is_loopback(name.strip("[]"))


def _asset(name: str) -> bytes:
    return (resources.files("swarm.shell.dashboard") / "static" / name).read_bytes()


def trial_details(run_dir: Path, trial: TrialRecord) -> dict[str, Any]:
    """A trial's diff (from the run's repository), its log's tail, and what it was told."""
    diff, note = "", ""
    if trial.kind == "candidate":
        diff = _git_diff(run_dir / "repo", trial.id) or ""
        note = "" if diff else "no diff: the run's repository does not hold this trial's commit"
    else:
        measured = f"trial {trial.of}" if trial.of else "best"
        note = f"a {trial.kind} run re-measures {measured} as it is: no change of its own"
    log = run_dir / "logs" / f"{trial.id}.log"
    tail = ""
    if log.is_file():
        with open(log, "rb") as file:
            file.seek(max(0, log.stat().st_size - _LOG_TAIL_BYTES))
            tail = file.read().decode("utf-8", "replace")
    return {"id": trial.id, "kind": trial.kind, "worker": trial.worker, "status": trial.status,
            "verdict": trial.verdict, "metric": trial.metric, "metrics": trial.metrics,
            "hypothesis": trial.hypothesis, "reason": trial.reason, "feedback": trial.feedback,
            "gain": trial.gain, "of": trial.of, "parts": list(trial.parts), "commit": trial.commit,
            "parent": trial.parent, "diff": diff, "note": note, "log_tail": tail,
            "log": str(log) if log.is_file() else ""}


def _git_diff(repo: Path, trial_id: str) -> str | None:
    if not (repo / ".git").exists() and not (repo / "HEAD").exists():
        return None
    ref = f"refs/swarm/trials/{trial_id}"
    done = subprocess.run(["git", "-C", str(repo), "diff-tree", "-p", "--no-color", "--no-commit-id", "-M", ref],
                          capture_output=True, text=True, errors="replace", timeout=20)
    if done.returncode != 0:
        return None
    return done.stdout[:_DIFF_BYTES]


# -- running it ---------------------------------------------------------------------------

@dataclass
class Running:
    """A dashboard serving in a thread of its own."""

    url: str
    port: int
    hub: Hub
    thread: threading.Thread
    loop: asyncio.AbstractEventLoop
    stopped: asyncio.Event

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.stopped.set)
        self.thread.join(timeout=10)


def start_in_thread(options: DashboardOptions) -> Running:
    """Starts the server in a daemon thread and returns once it listens (or raises why not)."""
    token = check_binding(options)
    ledger = options.run_dir / "ledger.jsonl"
    if not options.wait_for_run and not ledger.is_file():
        raise RunDirError(f"{options.run_dir}: no ledger.jsonl here; is it a run directory (runs/<name>)?")
    hub = Hub(options.run_dir, options.address)
    hub.publish(hub.read())  # a bad ledger line is the one error, before anything listens
    ready: dict[str, Any] = {}
    started = threading.Event()

    def main() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        stopped = asyncio.Event()
        ready.update(loop=loop, stopped=stopped)
        try:
            loop.run_until_complete(_serve(hub, options, token, ready, started, stopped))
        except BaseException as exc:  # handed to the starting thread
            ready.setdefault("error", exc)
            started.set()
        finally:
            hub.state_thread.shutdown(wait=False)
            loop.close()

    thread = threading.Thread(target=main, name="swarm-dashboard", daemon=True)
    thread.start()
    started.wait()
    if "error" in ready:
        error = ready["error"]
        if isinstance(error, OSError):
            raise SwarmError(f"the dashboard cannot listen on {options.host}:{options.port}: "
                             f"{error.strerror or error}; pick another --port") from None
        raise error
    port = ready["port"]
    host = f"[{options.host}]" if ":" in options.host else options.host
    return Running(f"http://{host}:{port}/", port, hub, thread, ready["loop"], ready["stopped"])


async def _serve(hub: Hub, options: DashboardOptions, token: str | None, ready: dict[str, Any],
                 started: threading.Event, stopped: asyncio.Event) -> None:
    app = build_app(hub, token, loopback_only=token is None)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, options.host, options.port)
    await site.start()
    ready["port"] = runner.addresses[0][1]
    started.set()
    tasks = [asyncio.create_task(hub.follow()), asyncio.create_task(hub.ask_live()),
             asyncio.create_task(hub.keep_lessons())]
    try:
        await stopped.wait()
    finally:
        for task in tasks:
            task.cancel()
        await runner.cleanup()


def serve(options: DashboardOptions, open_browser: bool = False) -> int:
    """`swarm dashboard`: serves until Ctrl-C."""
    running = start_in_thread(options)
    url = running.url if options.token is None else running.url + "?token=" + "TOKEN"
    print(f"dashboard of {options.run_dir}: {url}  (read-only; Ctrl-C ends it)", flush=True)
    if open_browser:
        import webbrowser

        webbrowser.open(running.url)
    try:
        while running.thread.is_alive():
            running.thread.join(timeout=1.0)
    except KeyboardInterrupt:
        running.stop()
    return 0
