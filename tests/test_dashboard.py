"""The dashboard without a browser: following a growing ledger, the view values, the binding
and token rules, and what the server refuses (real HTTP requests to a real server)."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from coordinator.status import load_status, recorded_config, replay_run
from swarm.core.errors import RunDirError, SwarmError
from swarm.shell.cli import main
from swarm.shell.dashboard import view
from swarm.shell.dashboard.follow import LedgerFollower
from swarm.shell.dashboard.server import (
    COOKIE, DashboardOptions, Running, check_binding, cluster_token, is_loopback, start_in_thread,
)
from swarm.shell.report.facts import accepted_changes
from tests.synthetic_ledger import write_synthetic_run


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("synthetic")
    write_synthetic_run(run_dir, 300, workers=4)
    return run_dir


def _lines(run_dir: Path) -> list[bytes]:
    return (run_dir / "ledger.jsonl").read_bytes().splitlines(keepends=True)


# -- following the ledger -------------------------------------------------------------------

def test_the_follower_reads_what_is_appended_and_leaves_a_torn_line_for_later(synthetic: Path, tmp_path: Path) -> None:
    lines = _lines(synthetic)
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_bytes(b"".join(lines[:50]))
    follower = LedgerFollower(ledger)
    first = follower.poll()
    assert first.events == 50 and not first.reset
    with open(ledger, "ab") as file:
        file.write(lines[50])
        file.write(lines[51][:10])  # the coordinator is mid-append
    second = follower.poll()
    assert second.events == 1
    assert second.trials == view_trials(lines[50])
    with open(ledger, "ab") as file:
        file.write(lines[51][10:] + b"".join(lines[52:]))
    follower.poll()
    _events, replayed = replay_run(synthetic)
    assert follower.state.trials.keys() == replayed.trials.keys()
    assert [t.status for t in follower.state.trials.values()] == [t.status for t in replayed.trials.values()]
    assert follower.poll().events == 0


def view_trials(line: bytes) -> frozenset[str]:
    event = json.loads(line)
    return frozenset({event["trial"]}) if "trial" in event else frozenset()


def test_a_replaced_or_shrunk_ledger_is_read_again_from_its_start(synthetic: Path, tmp_path: Path) -> None:
    lines = _lines(synthetic)
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_bytes(b"".join(lines[:80]))
    follower = LedgerFollower(ledger)
    follower.poll()
    ledger.write_bytes(b"".join(lines[:40]))  # shrunk, in place
    change = follower.poll()
    assert change.reset and change.events == 40
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(b"".join(lines[:60]))
    os.replace(copy, ledger)  # another file put in its place
    change = follower.poll()
    assert change.reset and change.events == 60
    assert len(follower.events) == 60


def test_a_bad_line_is_the_ledgers_one_error_naming_it(synthetic: Path, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_bytes(b"".join(_lines(synthetic)[:5]) + b'{"event": "nonsense"}\n')
    with pytest.raises(RunDirError, match=r"ledger.jsonl:6: "):
        LedgerFollower(ledger).poll()


# -- the view -------------------------------------------------------------------------------

def test_the_view_says_what_status_and_report_say(synthetic: Path) -> None:
    follower = LedgerFollower(synthetic / "ledger.jsonl")
    follower.poll()
    state, config = follower.state, recorded_config(synthetic, follower.state)
    status = view.status_from_state(state, config, None, 0.0)
    expected = load_status(synthetic)
    assert (status.trials_done, status.accepted, status.best, status.baseline) == (
        expected.trials_done, expected.accepted, expected.best, expected.baseline)
    start = view.start_of(follower.events)
    panels = view.panels_of(state, config, status, start, 0.0)
    rows = dict(panels.headline.rows)
    assert rows["trials"].startswith(f"{expected.trials_done} done")
    assert panels.headline.best == expected.best.mean if expected.best else False
    assert panels.headline.stop_rule.startswith("stop.max_trials 100: ")
    changes = accepted_changes(state, "minimize")
    assert [c.trial for c in panels.pool.changes] == [c.trial for c in changes]
    assert len(panels.pool.best_line) == len(changes) + 1
    assert {w.worker for w in panels.workers} == {"w0", "w1", "w2", "w3"}
    points = [view.point_of(t, start) for t in state.trials.values()]
    assert {p.status for p in points if p.id in {c.trial for c in changes}} <= {"keep", "merged"}
    body = json.dumps({"points": view.points_json(points), **view.panels_json(panels)}, allow_nan=False)
    assert json.loads(body)["points"][0][0] == "00001"
    assert view.lessons_of(state, follower.events, {})[0].startswith("Helped: ")


def test_the_hub_sends_the_chart_first_then_the_panels_and_starts_over_on_a_new_ledger(
        synthetic: Path, tmp_path: Path) -> None:
    from swarm.shell.dashboard.server import Hub

    lines = _lines(synthetic)
    (tmp_path / "ledger.jsonl").write_bytes(b"".join(lines[:30]))
    hub = Hub(tmp_path)
    [chart] = hub.read()
    assert chart.kind == "trials" and chart.seq == 1
    assert [m.kind for m in hub.tick(time.time())] == ["panels"]
    wanted = hub.undiffed(time.time())
    assert wanted and all(t.kind == "candidate" for t in wanted)
    assert hub.undiffed(time.time()) is None  # not due again so soon
    [lessons] = hub.teach({})
    assert lessons.kind == "lessons" and hub.lessons[0].startswith("Helped: ")
    snapshot = json.loads(hub.snapshot())
    assert snapshot["seq"] == hub.seq and len(snapshot["points"]) == len(hub.follower.state.trials)
    with open(tmp_path / "ledger.jsonl", "ab") as file:
        file.write(lines[30])
    [more] = hub.read()
    assert json.loads(more.body.split(b"data: ", 1)[1])["points"][0][0] == json.loads(lines[30])["trial"]
    (tmp_path / "ledger.jsonl").write_bytes(b"".join(lines[:10]))
    assert [m.kind for m in hub.read()] == ["reset"] and hub.points == {}


# -- binding and tokens ---------------------------------------------------------------------

def test_only_a_loopback_address_goes_without_a_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("10.1.2.3")
    assert check_binding(DashboardOptions(tmp_path)) is None
    assert check_binding(DashboardOptions(tmp_path, host="0.0.0.0", token="s3cret")) == "s3cret"
    with pytest.raises(SwarmError, match="--host 0.0.0.0 is not a loopback address: .*--token TOKEN"):
        check_binding(DashboardOptions(tmp_path, host="0.0.0.0"))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN", "cluster-secret")
    assert cluster_token() == "cluster-secret"
    assert check_binding(DashboardOptions(tmp_path, host="0.0.0.0", address="auto")) == "cluster-secret"
    monkeypatch.delenv("RAY_AUTH_TOKEN")
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("from-file\n")
    assert cluster_token() == "from-file"


def test_the_command_refuses_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dashboard", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (f"swarm: error: {tmp_path}: no ledger.jsonl here; is it a run "
                                       "directory (runs/<name>)?\n")
    assert main(["dashboard", str(tmp_path), "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--token" in err


def test_swarm_run_dashboard_serves_the_run_directory_before_its_ledger_exists(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from swarm.shell.cli import _parser
    from swarm.shell.dashboard.cli import start_for_run

    args = _parser().parse_args(["run", "c.yaml", "--dashboard", "--dashboard-port", "0"])
    assert (args.dashboard, args.dashboard_port) == (True, 0)
    running = start_for_run(tmp_path / "run", 0)
    try:
        assert capsys.readouterr().out == f"dashboard: {running.url}  (read-only, while the run goes on)\n"
        status, _headers, body = _get(running.url + "api/snapshot")
        assert status == 200 and json.loads(body)["waiting"] is True
        write_synthetic_run(tmp_path / "run", 12, workers=2)
        wait = 0
        while json.loads(_get(running.url + "api/snapshot")[2])["waiting"] and wait < 600:
            wait += 1
            time.sleep(0.05)
        assert len(json.loads(_get(running.url + "api/snapshot")[2])["points"]) >= 12
    finally:
        running.stop()


# -- the server, over real HTTP ---------------------------------------------------------------

@pytest.fixture(scope="module")
def guarded(synthetic: Path) -> Iterator[Running]:
    running = start_in_thread(DashboardOptions(synthetic, host="0.0.0.0", port=0, token="s3cret"))
    yield running
    running.stop()


def _get(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_a_non_loopback_bind_wants_the_token(guarded: Running) -> None:
    base = f"http://127.0.0.1:{guarded.port}"
    for path in ("/", "/api/snapshot", "/static/app.js", "/api/trial/00005", "/api/events"):
        assert _get(base + path)[0] == 401, path
    assert _get(base + "/api/snapshot", {"Authorization": "Bearer wrong"})[0] == 401
    status, _headers, body = _get(base + "/api/snapshot", {"Authorization": "Bearer s3cret"})
    assert status == 200 and json.loads(body)["points"]
    status, headers, _body = _get(base + "/?token=s3cret")
    cookie = headers["Set-Cookie"]
    assert status == 200 and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert _get(base + "/api/snapshot", {"Cookie": f"{COOKIE}=s3cret"})[0] == 200
    assert "script-src 'self'" in headers["Content-Security-Policy"]


def test_it_writes_nothing_and_serves_nothing_off_its_list(guarded: Running) -> None:
    base, auth = f"http://127.0.0.1:{guarded.port}", {"Authorization": "Bearer s3cret"}
    for method in ("POST", "PUT", "DELETE"):
        assert _get(base + "/api/snapshot", auth, method)[0] == 405
    for path in ("/static/../server.py", "/static/..%2fserver.py", "/static/%2e%2e/view.py",
                 "/static/index.html", "/static//etc/passwd", "/api/trial/..%2f..%2fHEAD",
                 "/api/trial/99999", "/api/trial/HEAD"):
        assert _get(base + path, auth)[0] == 404, path
    status, _headers, body = _get(base + "/api/trial/00005", auth)
    assert status == 200 and json.loads(body)["id"] == "00005"


def test_the_event_stream_sends_what_came_after_the_snapshot(guarded: Running) -> None:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", guarded.port, timeout=30)
    connection.request("GET", "/api/events?since=0", headers={"Authorization": "Bearer s3cret"})
    response = connection.getresponse()
    assert response.status == 200 and response.getheader("Content-Type") == "text/event-stream"
    assert response.read1(1 << 16).startswith(b"id: 1\nevent: trials\ndata: {")
    connection.close()


def test_a_port_in_use_is_one_line(guarded: Running, synthetic: Path) -> None:
    with pytest.raises(SwarmError, match=f"cannot listen on 127.0.0.1:{guarded.port}: .*pick another --port"):
        start_in_thread(DashboardOptions(synthetic, port=guarded.port))


def test_a_loopback_dashboard_answers_only_to_a_local_name(synthetic: Path) -> None:
    running = start_in_thread(DashboardOptions(synthetic, port=0))
    try:
        base = f"http://127.0.0.1:{running.port}"
        assert _get(base + "/api/snapshot")[0] == 200
        assert _get(base + "/api/snapshot", {"Host": f"localhost:{running.port}"})[0] == 200
        assert _get(base + "/api/snapshot", {"Host": "evil.example:80"})[0] == 403  # DNS rebinding
    finally:
        running.stop()
