"""The status display: what a person sees of cost and of a provider that keeps failing."""

from __future__ import annotations

import time

from rich.console import Console

from swarm.shell.progress import render_status

__all__: list[str] = []


def _shown(status: dict) -> str:
    console = Console(record=True, width=200)
    console.print(render_status(status))
    return console.export_text()


def status() -> dict:
    """A run's status as the coordinator summarizes it; its latest failure 42 s old as of now."""
    return {
        "name": "t", "metric": "val_bpb", "direction": "minimize",
        "best": {"commit": "abcdef1234", "trial": "00007", "hypothesis": "LR down", "mean": 1.0, "runs": 2},
        "baseline": {"commit": "0000000", "trial": None, "hypothesis": "", "mean": 1.2, "runs": 3},
        "accepted": 2, "noise": 0.01, "trials_done": 9, "trials_running": 1, "evaluations": 9,
        "by_status": {"keep": 2}, "trials_per_hour": 30.0, "workers": {}, "cost_usd": 0.5,
        "proposal_failures": 3, "stop_reason": None,
        "last_proposal_failure": {"worker": "w1", "reason": "provider: RateLimitError after 7 tries: slow down",
                                  "ts": time.time() - 42},
    }


def test_cost_so_far_and_per_accepted_change_are_shown() -> None:
    assert "cost       $0.5000 for proposals, $0.2500 per accepted change" in _shown(status())


def test_a_failing_provider_is_visible_with_its_latest_reason() -> None:
    shown = _shown(status())
    assert "proposals  3 failed; latest 42 s ago on w1: provider: RateLimitError after 7 tries: slow down" in shown
