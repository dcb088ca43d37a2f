"""`swarm run | status | report | join`: the commands users type. Errors are one line, no traceback."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.live import Live

from coordinator.status import RunStatus
from swarm.core.config import load_config
from swarm.core.errors import SwarmError
from swarm.shell.progress import render_status

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.command(args))
    except SwarmError as exc:
        print(f"swarm: error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="swarm", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="run (or --resume) a search")
    run.add_argument("config", type=Path, help="configs/<target>.yaml")
    run.add_argument("--workers", type=_count, help="worker count, or auto: one per GPU (workers.count)")
    run.add_argument("--max-trials", type=int, help="stop after this many evaluations in all")
    run.add_argument("--hours", type=float, help="stop after this many hours")
    run.add_argument("--proposer", choices=["mutate", "llm", "agent"], help="proposer.kind")
    run.add_argument("--address", help="join a Ray cluster (auto or HOST:PORT) instead of a local one")
    run.add_argument("--run-dir", type=Path, help="default: runs/<name>")
    run.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    run.add_argument("--no-progress", action="store_true", help="print a line per update instead")
    run.set_defaults(command=_run)
    status = commands.add_parser("status", help="best, trials/hour, workers of a run")
    status.add_argument("run_dir", type=Path, nargs="?", help="default: the newest run in runs/")
    status.add_argument("--address", help="ask the live coordinator on this Ray cluster (auto or "
                        "HOST:PORT); RUN_DIR as the driver named it. Default: read the ledger")
    status.set_defaults(command=_status)
    report = commands.add_parser("report", help="write report.md, progress.png and lineage.svg of a run")
    report.add_argument("run_dir", type=Path, nargs="?", help="default: the newest run in runs/")
    report.set_defaults(command=_report)
    join = commands.add_parser("join", help="lend this machine's GPUs to a running search")
    join.add_argument("address", help="the head's HOST:PORT (GCS port, 6379 by default)")
    join.add_argument("--gpus", type=int, help="GPUs to lend (default: all Ray finds)")
    join.add_argument("--cpus", type=int, help="CPUs to lend (default: all)")
    join.add_argument("--node-ip", help="the address other nodes reach this one at (overlay/NAT)")
    join.add_argument("--token-file", type=Path, help="the cluster's auth token (default: "
                      "$RAY_AUTH_TOKEN or ~/.ray/auth_token when present)")
    join.set_defaults(command=_join)
    return parser


def _count(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give auto or a whole number >= 1")
    return value


def _join(args: argparse.Namespace) -> int:
    from swarm.shell.join import join

    return join(args.address, args.gpus, args.cpus, args.node_ip, args.token_file)


def _run(args: argparse.Namespace) -> int:
    from swarm.shell.driver import RunOptions, connect, resolve_target_repo, run_swarm  # ray loads here

    overrides = {"workers.count": args.workers, "stop.max_trials": args.max_trials,
                 "stop.hours": args.hours, "proposer.kind": args.proposer}
    config = resolve_target_repo(load_config(args.config, overrides), args.config)
    run_dir = args.run_dir or Path("runs") / config.name
    _check_run_dir(run_dir, args.resume)
    _log_to(run_dir)
    # A shell starts background jobs (`swarm run ... &`, nohup, CI scripts) with SIGINT ignored,
    # and Python keeps it so; `kill -INT` must still mean the graceful stop.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    console = Console()
    connect(args.address, config)  # before the live display, so Ray's start-up lines stay above it
    options = RunOptions(config, run_dir, resume=args.resume, address=args.address)
    if args.no_progress or not console.is_terminal:
        options.on_status = _printer(console)
        final = run_swarm(options)
    else:
        with Live(render_status(None), console=console, refresh_per_second=2, transient=True) as live:
            options.on_status = lambda status: live.update(render_status(status))
            final = run_swarm(options)
    console.print(render_status(final))
    console.print(f"run directory: {run_dir}  (ledger.jsonl, results.tsv, repo/ branch swarm/best)")
    return 130 if final.stop_reason == "stop requested" else 0


def _check_run_dir(run_dir: Path, resume: bool) -> None:
    # The coordinator checks too (it may run on another machine); this answers before Ray starts.
    exists = (run_dir / "ledger.jsonl").exists()
    if exists and not resume:
        raise SwarmError(f"{run_dir} already holds a run; pass --resume to continue it "
                         "or --run-dir to start another")
    if resume and not exists:
        raise SwarmError(f"{run_dir}: no ledger.jsonl to resume from; check --run-dir")


def _status(args: argparse.Namespace) -> int:
    from coordinator.status import load_status

    if args.address:
        if args.run_dir is None:
            raise SwarmError("status --address needs RUN_DIR, as the driver was given it")
        from swarm.shell.driver import live_status  # ray loads here

        Console().print(render_status(live_status(args.address, args.run_dir)))
        return 0
    run_dir = args.run_dir or _newest_run(Path("runs"))
    Console().print(render_status(load_status(run_dir)))
    return 0


def _report(args: argparse.Namespace) -> int:
    from swarm.shell.report.writer import write_report  # matplotlib loads here

    run_dir = args.run_dir or _newest_run(Path("runs"))
    for path in write_report(run_dir):
        print(path)
    return 0


def _newest_run(runs: Path) -> Path:
    candidates = sorted(runs.glob("*/ledger.jsonl"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise SwarmError(f"no run directory under {runs}/; name one: swarm status runs/<name>")
    return candidates[-1].parent


def _printer(console: Console) -> Callable[[RunStatus | None], None]:
    """A line per change of the trials done or of best, for a log rather than a terminal."""
    last: list[tuple[int, str]] = []

    def show(status: RunStatus | None) -> None:
        if status is None or status.best is None:
            return
        key = (status.trials_done, status.best.commit)
        if key not in last:
            last[:] = [key]
            best = status.best
            console.print(f"trials {status.trials_done} done, {status.trials_running} running;"
                          f" best {best.mean} ({best.runs} runs) from trial {best.trial}")
    return show


def _log_to(run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_dir / "swarm.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    logging.getLogger("swarm").addHandler(handler)
    logging.getLogger("swarm").setLevel(logging.INFO)


if __name__ == "__main__":
    sys.exit(main())
