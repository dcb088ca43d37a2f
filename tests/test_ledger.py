"""ledger.jsonl: durable appends, torn tails dropped, corrupt lines named (swarm/ledger.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarm.core import ledger as ledger_module
from swarm.core.errors import RunDirError
from swarm.core.ledger import Ledger, read_events


@pytest.fixture
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_module.time, "time", lambda: 1234.56789)


def test_append_returns_record_with_ts_first(tmp_path: Path, fixed_clock: None) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    record = ledger.append({"event": "session_started", "session": "s1"})
    ledger.close()
    assert record == {"ts": 1234.568, "event": "session_started", "session": "s1"}
    assert list(record) == ["ts", "event", "session"]


def test_append_is_on_disk_as_one_line_before_close(tmp_path: Path, fixed_clock: None) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path)
    record = ledger.append({"event": "session_started", "session": "s1"})
    assert path.read_text() == '{"ts":1234.568,"event":"session_started","session":"s1"}\n'
    assert list(read_events(path)) == [record]
    ledger.close()


def test_appends_keep_their_order(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger(path)
    first = ledger.append({"event": "a"})
    second = ledger.append({"event": "b"})
    ledger.close()
    assert list(read_events(path)) == [first, second]


def test_ledger_creates_missing_parent_directories(tmp_path: Path) -> None:
    path = tmp_path / "runs" / "r1" / "ledger.jsonl"
    Ledger(path).close()
    assert path.read_text() == ""


@pytest.mark.parametrize(("on_disk", "kept"), [
    ('{"event":"a"}\n{"event":"b"}\n{"event":"c","tri', '{"event":"a"}\n{"event":"b"}\n'),
    ('{"event":"a"', ""),  # a lone torn line
    ('{"event":"a"}\n{"event":"b"}\n', '{"event":"a"}\n{"event":"b"}\n'),  # nothing torn
], ids=["torn-last-line", "lone-torn-line", "complete"])
def test_opening_drops_only_a_torn_last_line(tmp_path: Path, on_disk: str, kept: str) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_text(on_disk)
    Ledger(path).close()
    assert path.read_text() == kept


def test_events_before_a_torn_line_survive_and_appends_follow_them(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_text('{"event":"a"}\n{"event":"b"}\n{"event":"c","tri')
    ledger = Ledger(path)
    ledger.append({"event": "d"})
    ledger.close()
    assert [e["event"] for e in read_events(path)] == ["a", "b", "d"]


def test_corrupt_middle_line_names_path_and_line(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_text('{"event":"a"}\nnot json\n{"event":"c"}\n')
    with pytest.raises(RunDirError) as caught:
        list(read_events(path))
    assert str(caught.value) == (f"{path}:2: not a JSON event (Expecting value); "
                                 "the ledger is append-only: restore it from a copy")


def test_corrupt_line_is_reached_only_after_earlier_events(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_text('{"event":"a"}\nnot json\n')
    events = read_events(path)
    assert next(events) == {"event": "a"}
    with pytest.raises(RunDirError):
        next(events)


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_text('{"event":"a"}\n\n  \n{"event":"b"}\n')
    assert list(read_events(path)) == [{"event": "a"}, {"event": "b"}]


def test_read_events_of_missing_file_yields_nothing(tmp_path: Path) -> None:
    assert list(read_events(tmp_path / "ledger.jsonl")) == []


def test_read_events_skips_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    path.write_text('{"event":"a"}\n{"event":"b"}\n{"event":"c","tri')
    assert list(read_events(path)) == [{"event": "a"}, {"event": "b"}]


def test_create_writes_the_first_event_atomically(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    ledger = Ledger.create(path, {"event": "run_started"})
    ledger.append({"event": "session_started"})
    ledger.close()
    assert [e["event"] for e in read_events(path)] == ["run_started", "session_started"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.jsonl"]  # no scratch left
