"""ledger.jsonl: durable appends, torn tails dropped, bad lines named (swarm/core/ledger.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarm.core import ledger as ledger_module
from swarm.core.errors import RunDirError
from swarm.core.events import ProposalFailed, RunStarted, SessionStarted
from swarm.core.ledger import Ledger, read_events

A = '{"event":"session_started","session":"a"}\n'
B = '{"event":"session_started","session":"b"}\n'
C = '{"event":"session_started","session":"c"}\n'


def sessions(path: Path) -> list[str]:
    return [e.session for e in read_events(path) if isinstance(e, SessionStarted)]


@pytest.fixture
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_module.time, "time", lambda: 1234.56789)


def test_append_returns_record_with_ts_first(tmp_path: Path, fixed_clock: None) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    record = ledger.append(SessionStarted(session="s1"))
    ledger.close()
    assert record == SessionStarted(ts=1234.568, session="s1")
    assert list(record.model_dump()) == ["ts", "event", "session", "gpus_per_worker"]


def test_append_is_on_disk_as_one_line_before_close(tmp_path: Path, fixed_clock: None) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path)
    record = ledger.append(SessionStarted(session="s1"))
    assert path.read_text() == '{"ts":1234.568,"event":"session_started","session":"s1"}\n'
    assert list(read_events(path)) == [record]
    ledger.close()


def test_appends_keep_their_order(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path)
    first = ledger.append(SessionStarted(session="a"))
    second = ledger.append(ProposalFailed(worker="w0", reason="b"))
    ledger.close()
    assert list(read_events(path)) == [first, second]


def test_ledger_creates_missing_parent_directories(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "r1" / "ledger.jsonl"
    Ledger(path).close()
    assert path.read_text() == ""


@pytest.mark.parametrize(("on_disk", "kept"), [
    (A + B + '{"event":"c","tri', A + B),
    (A[:20], ""),  # a lone torn line
    (A + B, A + B),  # nothing torn
], ids=["torn-last-line", "lone-torn-line", "complete"])
def test_opening_drops_only_a_torn_last_line(tmp_path: Path, on_disk: str, kept: str) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_text(on_disk)
    Ledger(path).close()
    assert path.read_text() == kept


def test_events_before_a_torn_line_survive_and_appends_follow_them(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_text(A + B + '{"event":"c","tri')
    ledger = Ledger(path)
    ledger.append(SessionStarted(session="d"))
    ledger.close()
    assert sessions(path) == ["a", "b", "d"]


def test_corrupt_middle_line_names_path_and_line(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_text(A + "not json\n" + C)
    with pytest.raises(RunDirError) as caught:
        list(read_events(path))
    assert str(caught.value) == (f"{path}:2: not a JSON event (Invalid JSON: expected ident at line 1 "
                                 "column 2); the ledger is append-only: restore it from a copy")


@pytest.mark.parametrize(("line", "said"), [
    ('{"event":"accepted","trial":"00001"}', "unknown event kind 'accepted'; a ledger holds only "
     "run_started, session_started, trial_started, trial_finished, verdict, proposal_failed"),
    ('{"event":"trial_finished","status":"ok"}', "a trial_finished event without its 'trial' field"),
    ('{"event":"verdict","trial":"1","verdict":"kept"}', "a verdict event whose 'verdict' is 'kept': "
     "Input should be 'promising', 'accepted', 'merged', 'discard', 'unconfirmed', 'rebased' or 'stale_conflict'"),
    ('{"event":"session_started","session":"x","evil":1}', "a session_started event with a field no "
     "swarm writes: 'evil'"),
    ('{"session":"x"}', "not an event: it has no 'event' field naming its kind"),
    ('[1, 2]', "not an event: expected a JSON object"),
], ids=["unknown-kind", "incomplete", "bad-value", "unknown-field", "no-kind", "not-an-object"])
def test_a_line_that_is_not_a_complete_known_event_is_named_with_what_is_wrong(
        tmp_path: Path, line: str, said: str) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_text(A + line + "\n")
    with pytest.raises(RunDirError) as caught:
        list(read_events(path))
    assert str(caught.value) == f"{path}:2: {said}; the ledger is append-only: restore it from a copy"


def test_corrupt_line_is_reached_only_after_earlier_events(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_text(A + "not json\n")
    events = read_events(path)
    assert next(events) == SessionStarted(session="a")
    with pytest.raises(RunDirError):
        next(events)


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_text(A + "\n  \n" + B)
    assert sessions(path) == ["a", "b"]


def test_read_events_of_missing_file_yields_nothing(tmp_path: Path) -> None:
    assert list(read_events(tmp_path / "ledger.jsonl")) == []


def test_read_events_skips_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_text(A + B + '{"event":"c","tri')
    assert sessions(path) == ["a", "b"]


def test_create_writes_the_first_event_atomically(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger, first = Ledger.create(path, RunStarted(commit="c0", tree="t0"))
    ledger.append(SessionStarted(session="s1"))
    ledger.close()
    assert [e.event for e in read_events(path)] == ["run_started", "session_started"]
    assert first.ts > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.jsonl"]  # no scratch left
