"""The status display: what a person sees of cost and of a provider that keeps failing."""

from __future__ import annotations

import time

from rich.console import Console

from coordinator.state import FailureNote
from coordinator.status import Headline, RunStatus
from swarm.shell.progress import render_status

__all__: list[str] = []


def _shown(status: RunStatus) -> str:
    console = Console(record=True, width=200)
    console.print(render_status(status))
    return console.export_text()


def status() -> RunStatus:
    """A run's status as the coordinator summarizes it; its latest failure 42 s old as of now."""
    return RunStatus(
        name="t", metric="val_bpb", direction="minimize",
        best=Headline("abcdef1234", "00007", "LR down", 1.0, None, 2),
        baseline=Headline("0000000", None, "", 1.2, None, 3), gain=0.2,
        accepted=2, noise=0.01, trials_done=9, trials_running=1, evaluations=9,
        by_status={"keep": 2}, trials_per_hour=30.0, workers={}, cost_usd=0.5,
        proposal_failures=3, stop_reason=None, gpus_per_worker=0.0, gpu_hours=0.0, worker_hours=0.1,
        tokens=0, last_proposal_failure=FailureNote(
            "w1", "provider: RateLimitError after 7 tries: slow down", time.time() - 42))


def test_cost_so_far_and_per_accepted_change_are_shown() -> None:
    assert "cost       $0.5000 for proposals, $0.2500 per accepted change" in _shown(status())


def test_a_failing_provider_is_visible_with_its_latest_reason() -> None:
    shown = _shown(status())
    assert "proposals  3 failed; latest 42 s ago on w1: provider: RateLimitError after 7 tries: slow down" in shown
