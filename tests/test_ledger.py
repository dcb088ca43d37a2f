"""ledger.jsonl: durable appends, torn tails found and dropped, bad lines and events that cannot
follow those before them named with their line (swarm/core/ledger.py, coordinator/status.py's
replay_ledger)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from coordinator.status import replay_ledger
from swarm.core import ledger as ledger_module
from swarm.core.errors import RunDirError
from swarm.core.events import Judged, ProposalFailed, RunStarted, SessionStarted
from swarm.core.ledger import Ledger, TornTail, numbered_events, read_events, torn_tail

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


def test_one_sync_writes_each_event_at_once_and_syncs_once_at_its_end(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path)
    synced: list[int] = []
    real_fsync = ledger_module.os.fsync
    monkeypatch.setattr(ledger_module.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    with ledger.one_sync():
        ledger.append(SessionStarted(session="a"))
        with ledger.one_sync():  # a nested block syncs with the outer one
            ledger.append(SessionStarted(session="b"))
        # written, so a crash of this process keeps them; not yet synced
        assert sessions(path) == ["a", "b"] and synced == []
    assert len(synced) == 1
    with ledger.one_sync():
        pass
    assert len(synced) == 1, "a block that recorded nothing syncs nothing"
    ledger.append(SessionStarted(session="c"))
    assert len(synced) == 2, "outside a block, every append is synced"
    ledger.close()
    assert sessions(path) == ["a", "b", "c"]


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
     "run_started, session_started, session_ended, trial_started, trial_finished, verdict, proposal_failed"),
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


# -- what a reader of the whole ledger refuses, with its line --------------------------------

RUN = '{"ts":1,"event":"run_started","commit":"c0","tree":"t0"}\n'
SESSION = '{"ts":2,"event":"session_started","session":"s1"}\n'
STARTED = ('{"ts":3,"event":"trial_started","trial":"00001","kind":"baseline","worker":"w0",'
           '"commit":"c0","tree":"t0","parent":"c0","session":"s1"}\n')
FINISHED = '{"ts":4,"event":"trial_finished","trial":"00001","status":"ok","metric":1.5}\n'
SUFFIX = "; the ledger is append-only: restore it from a copy"


def test_a_whole_ledger_replays_with_its_events_in_order(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_text(RUN + SESSION + "\n" + STARTED + FINISHED)
    events, state = replay_ledger(path)
    assert [e.event for e in events] == ["run_started", "session_started", "trial_started", "trial_finished"]
    assert (state.trials["00001"].status, state.trials["00001"].metric) == ("ok", 1.5)
    assert [number for number, _ in numbered_events(path)] == [1, 2, 4, 5]  # the blank line 3 counted


@pytest.mark.parametrize(("lines", "said"), [
    (RUN + SESSION + FINISHED.replace("00001", "99999"),
     "3: a trial_finished event for trial '99999', but no trial_started event before it starts that trial"),
    (RUN + SESSION + STARTED + '{"event":"verdict","trial":"00002","verdict":"discard"}\n',
     "4: a verdict event for trial '00002', but no trial_started event before it starts that trial"),
    (RUN + SESSION + STARTED + '{"event":"verdict","trial":"00001","verdict":"accepted"}\n',
     "4: an accepted verdict without its 'best_commit' field"),
    (RUN + SESSION + STARTED + '{"event":"verdict","trial":"00001","verdict":"rebased"}\n',
     "4: a rebased verdict without its 'commit', 'tree' and 'parent'"),
    (RUN + SESSION + STARTED + STARTED, "4: a second trial_started event of trial '00001'"),
    (RUN + SESSION + STARTED.replace('"session":"s1"', '"session":"s1","parts":["00001"]'),
     "3: a trial_started event for trial '00001', but no trial_started event before it starts that trial"),
    (RUN + SESSION + RUN, "3: a second run_started event; a ledger holds one, as its first line"),
    (SESSION + RUN, "1: a session_started event before the run_started event every ledger begins with"),
    (RUN + '{"event":"session_started","session":"s\xff1"}\n',
     "2: not a JSON event (Invalid JSON: invalid unicode code point at line 1 column 41)"),
], ids=["finish-of-unknown-trial", "verdict-on-unknown-trial", "accepted-without-commit",
        "rebased-without-commit", "started-twice", "union-of-unknown-part", "second-run",
        "no-run-first", "not-utf8"])
def test_an_event_that_cannot_follow_those_before_it_is_named_with_its_line(
        tmp_path: Path, lines: str, said: str) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_bytes(lines.encode("latin-1"))  # "\xff": a byte that is no UTF-8
    with pytest.raises(RunDirError) as caught:
        replay_ledger(path)
    assert str(caught.value) == f"{path}:{said}{SUFFIX}"


def test_non_finite_figures_are_written_so_that_they_read_back(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path)
    ledger.append(Judged(trial="00001", verdict="discard", required=math.inf, improvement=-math.inf))
    ledger.close()
    assert '"required":Infinity,"improvement":-Infinity' in path.read_text()
    (judged,) = read_events(path)
    assert isinstance(judged, Judged) and (judged.required, judged.improvement) == (math.inf, -math.inf)


def test_a_lone_surrogate_is_recorded_replaced_not_refused(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path)
    ledger.append(ProposalFailed(worker="w0", reason="bad \ud800 escape"))
    ledger.close()
    (failed,) = read_events(path)
    assert isinstance(failed, ProposalFailed) and failed.reason == "bad \ufffd escape"


# -- a torn last line: found, described, dropped only when the ledger is opened --------------

@pytest.mark.parametrize(("on_disk", "torn"), [
    (A + B + '{"ts":9,"event":"trial_finished","trial":"00007","sta', TornTail(3, 53, "trial_finished", "00007")),
    (A + '{"ts":9,"ev', TornTail(2, 11, None, None)),
    ('{"event":"verdict","tr', TornTail(1, 22, "verdict", None)),
    (A + B, None),
    ("", None),
], ids=["finished", "unreadable", "only-line", "complete", "empty"])
def test_a_torn_last_line_is_found_with_what_it_was(tmp_path: Path, on_disk: str, torn: TornTail | None) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_text(on_disk)
    assert torn_tail(path) == torn
    assert path.read_text() == on_disk  # looking changes nothing


def test_a_torn_line_after_a_long_one_is_found_from_the_end(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    long = '{"event":"session_started","session":"' + "x" * 200_000 + '"}\n'
    path.write_text(A * 1000 + long + '{"event":"session_started","sess')
    assert torn_tail(path) == TornTail(1002, 32, "session_started", None)


def test_what_a_torn_line_was_is_said_in_words() -> None:
    assert TornTail(3, 53, "trial_finished", "00007").what() == "53 bytes of a trial_finished event of trial 00007"
    assert TornTail(2, 11, None, None).what() == "11 bytes of an event of unreadable kind"
