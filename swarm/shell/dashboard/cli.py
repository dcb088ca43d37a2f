"""`swarm dashboard [RUN_DIR]` and `swarm run --dashboard`: the flags, and starting the server."""

from __future__ import annotations

import argparse
from pathlib import Path

from typing import TYPE_CHECKING

from swarm.core.errors import SwarmError

if TYPE_CHECKING:
    from swarm.shell.dashboard.server import Running

__all__ = ["add_parser", "start_for_run"]


def add_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    dashboard = commands.add_parser("dashboard", help="a read-only page that follows a run live "
                                    "(headline, progress chart, pool, workers, lessons)")
    dashboard.add_argument("run_dir", type=Path, nargs="?", help="default: the newest run in runs/")
    dashboard.add_argument("--port", type=int, default=8700, help="default: 8700 (0: any free port)")
    dashboard.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1); "
                           "any other needs --token, or --address with the cluster's auth token")
    dashboard.add_argument("--token", help="required of every request: Authorization: Bearer TOKEN, "
                           "or ?token=TOKEN once in the browser")
    dashboard.add_argument("--address", help="also ask the live coordinator on this Ray cluster (auto or "
                           "HOST:PORT); RUN_DIR as the driver named it")
    dashboard.add_argument("--open", action="store_true", help="open it in this machine's browser")
    dashboard.set_defaults(command=_dashboard)


def _dashboard(args: argparse.Namespace) -> int:
    from swarm.shell.dashboard.server import DashboardOptions, serve

    run_dir = args.run_dir or _newest_run(Path("runs"))
    return serve(DashboardOptions(run_dir, args.host, args.port, args.token, args.address), args.open)


def _newest_run(runs: Path) -> Path:
    candidates = sorted(runs.glob("*/ledger.jsonl"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise SwarmError(f"no run directory under {runs}/; name one: swarm dashboard runs/<name>")
    return candidates[-1].parent


def start_for_run(run_dir: Path, port: int) -> Running:
    """`swarm run --dashboard`: the same server, in a thread of the driver, on 127.0.0.1."""
    from swarm.shell.dashboard.server import DashboardOptions, start_in_thread

    running = start_in_thread(DashboardOptions(run_dir, port=port, wait_for_run=True))
    print(f"dashboard: {running.url}  (read-only, while the run goes on)", flush=True)
    return running
