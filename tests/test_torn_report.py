"""A report torn off the ledger's end by a crash (coordinator/rundir.py): the coordinator wrote
the trial's log and kept its commit before it appended the result, so the resumed run records
the trial lost for what it was (it reported; its result was not recorded), keeps its log, and
says so once. Real git and files, no Ray."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from coordinator.rundir import torn_warning
from coordinator.service import Coordinator
from swarm.core.ledger import torn_tail
from swarm.core.values import TrialOutcome
from tests.test_coordinator_inprocess import Driver

__all__: list[str] = []


def test_a_torn_report_is_recorded_as_reported_and_its_log_kept(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    driver = Driver(tmp_path)
    trial = driver.evaluate("w1", "baseline")
    driver.ok(trial, "w1", 10.0)
    driver.coord.close()  # the coordinator's process dies; the report's line was the last
    ledger = driver.run_dir / "ledger.jsonl"
    lines = ledger.read_bytes().splitlines(keepends=True)
    assert json.loads(lines[-1])["event"] == "trial_finished"
    cut = lines[-1][:lines[-1].index(b'"status"') + 4]  # ...as if mid-append: its trial readable
    ledger.write_bytes(b"".join(lines[:-1]) + cut)
    torn = torn_tail(ledger)
    assert torn is not None and (torn.line, torn.kind, torn.trial) == (len(lines), "trial_finished", trial)

    with caplog.at_level(logging.WARNING, logger="coordinator.rundir"):
        resumed = Coordinator(driver.config, driver.run_dir, "s2", resume=True)
    resumed.close()
    said = torn_warning(ledger, torn, lost=True)
    assert said == (f"{ledger}:{len(lines)}: the last line is torn ({len(cut)} bytes of a trial_finished event "
                    f"of trial {trial}): the run stopped mid-write; it was never acknowledged and is "
                    f"dropped; trial {trial} reported, but its result was not recorded: it is recorded "
                    f"lost, its log kept in {driver.run_dir / 'logs' / (trial + '.log')}")
    assert [r.getMessage() for r in caplog.records] == [said]
    finished = [json.loads(line) for line in ledger.read_text().splitlines()
                if json.loads(line)["event"] == "trial_finished"]
    assert [(e["trial"], e["status"], e["reason"]) for e in finished] == [
        (trial, "lost", f"it reported, but the run stopped before its result was recorded; its log "
                        f"kept in logs/{trial}.log")]
    assert (driver.run_dir / "logs" / f"{trial}.log").read_text() == "---\nscore: 1\n"


def test_in_its_own_session_a_torn_report_is_left_to_its_worker_to_send_again(tmp_path: Path) -> None:
    driver = Driver(tmp_path)
    trial = driver.evaluate("w1", "baseline")
    driver.ok(trial, "w1", 10.0)
    driver.coord.close()  # Ray restarts the coordinator in the same session
    ledger = driver.run_dir / "ledger.jsonl"
    data = ledger.read_bytes()
    ledger.write_bytes(data[:data.rindex(b'"status"')])
    restarted = Coordinator(driver.config, driver.run_dir, "s1", resume=False)
    try:
        assert restarted.state.trials[trial].status is None  # in flight: the worker's retry is taken
        restarted.report(driver_outcome(trial))
        assert restarted.state.trials[trial].status == "ok"
    finally:
        restarted.close()


def driver_outcome(trial: str) -> TrialOutcome:
    return TrialOutcome(trial, "w1", "ok", 10.0, seconds=0.1, hardware="cpu:test", log="---\nscore: 1\n")
