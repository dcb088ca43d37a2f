"""The driver's supervision, step by step (swarm/shell/supervise.py): pure, no Ray."""

from __future__ import annotations

from swarm.shell.supervise import Moves, Supervision, WorkerEnd, failure, interrupted, start, step

__all__: list[str] = []


def test_the_replacement_budget_is_two_per_configured_worker_unless_given() -> None:
    assert start(None, 3, None).crashes_left == 6
    assert start(None, None, 5).crashes_left == 10  # auto with a cap
    assert start(None, None, None).crashes_left == 8
    assert start(1, 3, None).crashes_left == 1


def test_a_quiet_poll_refills_only_when_it_is_time_to_look_for_nodes() -> None:
    state = Supervision(crashes_left=4)
    assert step(state, [], running=2, stop_reason=None, look_due=False) == (state, Moves())
    assert step(state, [], running=2, stop_reason=None, look_due=True) == (state, Moves(refill=4))


def test_a_crash_on_a_live_node_is_reported_lost_and_spends_a_replacement() -> None:
    ended = [WorkerEnd("w1", "OOM killed", node_alive=True)]
    state, moves = step(Supervision(crashes_left=2), ended, running=1, stop_reason=None, look_due=True)
    assert state == Supervision(crashes_left=1, last_error="OOM killed")
    assert moves == Moves(lost=(("w1", "worker died: OOM killed"),), refill=1)


def test_a_worker_whose_node_left_is_lost_but_costs_no_replacement() -> None:
    ended = [WorkerEnd("w1", "node died", node_alive=False)]
    state, moves = step(Supervision(crashes_left=2), ended, running=1, stop_reason=None, look_due=True)
    assert (state.crashes_left, moves.lost, moves.refill) == (2, (("w1", "worker died: node died"),), 2)


def test_a_worker_sent_home_is_not_replaced_once_the_coordinator_says_the_run_ends() -> None:
    # the status polled after it ended knows the budget is spent: no refill, and when the
    # others are home too the session is over
    state, moves = step(Supervision(crashes_left=4), [WorkerEnd("w2")], running=2,
                        stop_reason="max_trials reached (6)", look_due=True)
    assert (state, moves) == (Supervision(crashes_left=4), Moves())
    _, last = step(state, [WorkerEnd("w0"), WorkerEnd("w1")], running=0,
                   stop_reason="max_trials reached (6)", look_due=True)
    assert last == Moves(done=True)


def test_a_worker_that_found_the_coordinator_dead_ends_the_session() -> None:
    ended = [WorkerEnd("w0", "CoordinatorLost: the coordinator died", coordinator_gone=True)]
    _, moves = step(Supervision(crashes_left=4), ended, running=3, stop_reason=None, look_due=True)
    assert moves == Moves(coordinator_gone=True)


def test_ctrl_c_stops_refills_and_ends_once_trials_in_flight_are_done() -> None:
    state = interrupted(Supervision(crashes_left=4))
    assert step(state, [], running=2, stop_reason=None, look_due=True)[1] == Moves()
    assert step(state, [WorkerEnd("w0"), WorkerEnd("w1")], 0, None, True)[1] == Moves(done=True)
    assert failure(state, None) is None  # stopped on purpose


def test_when_every_worker_died_and_no_replacement_is_left_the_session_ends_with_the_last_error() -> None:
    state, moves = step(Supervision(crashes_left=1), [WorkerEnd("w0", "segfault")], running=0,
                        stop_reason=None, look_due=True)
    assert (state.crashes_left, moves.refill, moves.done) == (0, 0, True)
    assert failure(state, None) == ("every worker died and the replacements ran out; the last error: "
                                    "segfault; see swarm.log")
    assert failure(state, "max_trials reached (6)") is None
