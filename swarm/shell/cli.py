"""`swarm run | check | status | report | join`: the commands users type. Errors are one line, no traceback."""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import platform
import signal
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Literal

from rich.console import Console, RenderableType
from rich.live import Live

import swarm
from coordinator.status import RunStatus
from swarm.core.config import SwarmConfig, load_config
from swarm.core.errors import SwarmError
from swarm.shell.pace import pace_line
from swarm.shell.progress import format_metric, render_status

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if getattr(args, "command", None) is None:  # bare `swarm`: what it can do, as most CLIs answer
        parser.print_help()
        return 0
    try:
        return int(args.command(args))
    except SwarmError as exc:
        for line in str(exc).splitlines():  # a config with several problems: one line each
            print(f"swarm: error: {line}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="swarm", description=__doc__)
    parser.add_argument("--version", action="version", version=version_line())
    commands = parser.add_subparsers(metavar="COMMAND")
    run = commands.add_parser("run", help="run (or --resume) a search")
    run.add_argument("config", type=Path, help="configs/<target>.yaml")
    run.add_argument("--workers", type=_count, help="worker count, or auto: one per GPU (workers.count)")
    run.add_argument("--max-trials", type=int, help="stop after this many evaluations in all")
    run.add_argument("--hours", type=float, help="stop after this many hours")
    run.add_argument("--proposer", choices=["mutate", "llm", "agent"], help="proposer.kind")
    run.add_argument("--track", choices=["mlflow", "wandb"], help="log every trial to a tracker (tracking.kind)")
    run.add_argument("--address", help="join a Ray cluster (auto or HOST:PORT) instead of a local one")
    run.add_argument("--run-dir", type=Path, help="default: runs/<name>")
    run.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    run.add_argument("--no-progress", action="store_true", help="print a line per update instead")
    run.add_argument("--dashboard", action="store_true", help="serve the live dashboard on 127.0.0.1 while it runs")
    run.add_argument("--dashboard-port", type=int, default=8700, help="its port (default 8700)")
    _add_set(run)
    run.set_defaults(command=_run)
    check = commands.add_parser("check", help="preflight: refuse a target that cannot work, before "
                                "any budget is spent (swarm run makes the same check)")
    check.add_argument("config", type=Path, help="configs/<target>.yaml")
    check.add_argument("--proposer", choices=["mutate", "llm", "agent"], help="proposer.kind")
    _add_set(check)
    check.set_defaults(command=_check)
    status = commands.add_parser("status", help="best, trials/hour, workers of a run")
    status.add_argument("run_dir", type=Path, nargs="?", help="default: the newest run in runs/")
    status.add_argument("--address", help="ask the live coordinator on this Ray cluster (auto or "
                        "HOST:PORT); RUN_DIR as the driver named it. Default: read the ledger")
    status.add_argument("--json", action="store_true", help="one JSON object on stdout, keys as "
                        "README.md's status section lists them")
    status.set_defaults(command=_status)
    report = commands.add_parser("report", help="write report.md, progress.png and lineage.svg of a run")
    report.add_argument("run_dir", type=Path, nargs="?", help="default: the newest run in runs/")
    report.set_defaults(command=_report)
    _add_dashboard(commands)
    join = commands.add_parser("join", help="lend this machine's GPUs to a running search")
    join.add_argument("address", help="the head's HOST:PORT (GCS port, 6379 by default)")
    join.add_argument("--gpus", type=int, help="GPUs to lend (default: all Ray finds)")
    join.add_argument("--cpus", type=int, help="CPUs to lend (default: all)")
    join.add_argument("--node-ip", help="the address other nodes reach this one at (overlay/NAT)")
    join.add_argument("--token-file", type=Path, help="the cluster's auth token (default: "
                      "$RAY_AUTH_TOKEN or ~/.ray/auth_token when present)")
    join.set_defaults(command=_join)
    init = commands.add_parser("init", help="scaffold a target from the repository DIR (asks on a "
                               "terminal), or write out a shipped example (--example)")
    init.add_argument("--example", metavar="NAME", help="the example to write (--list names them)")
    init.add_argument("--list", action="store_true", help="name the shipped examples")
    init.add_argument("dir", type=Path, nargs="?", default=Path("."),
                      help="the repository to improve; with --example, where it goes (default: here)")
    _add_init_answers(init)
    init.set_defaults(command=_init)
    return parser


def _add_init_answers(init: argparse.ArgumentParser) -> None:
    init.add_argument("--metric", help="the result block's key to improve")
    init.add_argument("--direction", choices=["minimize", "maximize"], help="default: minimize")
    init.add_argument("--pass-rate", action="store_true", help="improve the pass rate of assertions "
                      "(metric pass_rate, maximize)")
    init.add_argument("--editable", action="append", metavar="GLOB", help="files agents may change (repeatable)")
    init.add_argument("--readonly", action="append", metavar="GLOB", help="fixed, hash-checked files (repeatable)")
    init.add_argument("--run", metavar="CMD", help="command of one experiment (default: python train.py "
                      "when train.py exists)")
    init.add_argument("--guard", metavar="CMD", help="must exit 0 for a trial to count ('' for none; "
                      "default: pytest -q when tests/ exists)")
    init.add_argument("--budget-s", type=float, metavar="SECONDS", help="the experiment's budget (default: 300)")
    init.add_argument("--name", help="configs/NAME.yaml (default: DIR's name)")
    init.add_argument("--yes", action="store_true", help="ask nothing: take the defaults (as off a terminal)")
    init.add_argument("--force", action="store_true", help="overwrite configs/NAME.yaml")


def _add_set(command: argparse.ArgumentParser) -> None:
    command.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                         help="set any config key, e.g. --set stop.hours=0.5 --set target.env.FOO=bar "
                              "(repeatable; values read as YAML; the flags above win over it)")


def version_line() -> str:
    """This installation's version, and Ray's: every node of a cluster must run the same."""
    mine = _installed("autoresearch-swarm") or swarm.__version__
    return f"swarm {mine} (ray {_installed('ray') or '?'}, python {platform.python_version()})"


def _installed(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


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


def _init(args: argparse.Namespace) -> int:
    from swarm.shell.starters import starters, write_starter

    if not args.list and not args.example:
        return _init_target(args)
    if args.list:
        for starter in starters():
            print(f"{starter.name:<26} {starter.description}")
        return 0
    written = write_starter(args.example, args.dir)
    config = args.dir / "configs" / f"{args.example}.yaml"
    print(f"wrote {len(written)} file(s) under {args.dir}" if written else
          f"{args.example} is already in {args.dir}, unchanged", end="; next:\n")
    place = "" if args.dir == Path(".") else f"cd {args.dir} && "
    print(f"  {place}swarm check {config.relative_to(args.dir)} && swarm run {config.relative_to(args.dir)}")
    return 0


def _init_target(args: argparse.Namespace) -> int:
    from swarm.core.scaffold import Answers
    from swarm.shell.init_target import init_target

    metric: str | None = "pass_rate" if args.pass_rate else args.metric
    direction: Literal["minimize", "maximize"] | None = "maximize" if args.pass_rate else args.direction
    answers = Answers(name=args.name, metric=metric, direction=direction, editable=tuple(args.editable or ()),
                      readonly=None if args.readonly is None else tuple(args.readonly), run=args.run,
                      guard=args.guard, budget_s=args.budget_s)
    return init_target(answers, args.dir, interactive=not args.yes and sys.stdin.isatty(), force=args.force)


def _join(args: argparse.Namespace) -> int:
    from swarm.shell.join import join

    return join(args.address, args.gpus, args.cpus, args.node_ip, args.token_file)


def _run(args: argparse.Namespace) -> int:
    from swarm.shell.driver import RunOptions, connect, resolve_target_repo, run_swarm  # ray loads here

    overrides = {"workers.count": args.workers, "stop.max_trials": args.max_trials,
                 "stop.hours": args.hours, "proposer.kind": args.proposer, "tracking.kind": args.track}
    config = resolve_target_repo(load_config(args.config, overrides, args.set), args.config)
    run_dir = args.run_dir or Path("runs") / config.name
    _check_run_dir(run_dir, args.resume)
    _preflight(config, args.config, run_dir / "repo" if args.resume else None, args.address is None)
    _log_to(run_dir)
    # A shell starts background jobs (`swarm run ... &`, nohup, CI scripts) with SIGINT ignored,
    # and Python keeps it so; `kill -INT` must still mean the graceful stop.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    console = Console()
    connect(args.address, config)  # before the live display, so Ray's start-up lines stay above it
    if args.dashboard:  # after connect, so that Ray's start-up lines stay above its URL
        from swarm.shell.dashboard.cli import start_for_run

        start_for_run(run_dir, args.dashboard_port)
    options = RunOptions(config, run_dir, resume=args.resume, address=args.address)
    if args.no_progress or not console.is_terminal:
        options.on_status = _printer(console)
        final = run_swarm(options)
    else:
        with Live(render_status(None), console=console, refresh_per_second=2, transient=True) as live:
            options.on_status = lambda status: live.update(render_status(status))
            final = run_swarm(options)
    _print(console, render_status(_with_workers(final, run_dir)))
    console.print(f"run directory: {run_dir}  (ledger.jsonl, results.tsv, repo/ branch swarm/best)")
    if config.tracking.kind is not None:
        from coordinator.trackers import how_to_look

        console.print(f"tracker: {how_to_look(config.tracking, run_dir)}", soft_wrap=True)
    if final.stop_failed:  # a broken target or proposer: one message, then the log that explains it
        from swarm.shell.diagnosis import failed_stop_lines

        first, *rest = failed_stop_lines(final, run_dir)
        print("\n".join([f"swarm: error: {first}", *rest]), file=sys.stderr)
        return 2
    return 130 if final.stop_reason == "stop requested" else 0


def _with_workers(final: RunStatus, run_dir: Path) -> RunStatus:
    """The last display says what the session's workers did. By then none is live, so the
    coordinator has no rows; the ledger has them, where the run directory is on this machine
    (elsewhere the table is left out)."""
    if final.workers:
        return final
    from coordinator.status import load_status

    try:
        return replace(final, workers=load_status(run_dir).workers)
    except (SwarmError, OSError, ValueError):  # unreadable here: the table is left out
        return final


def _check(args: argparse.Namespace) -> int:
    from swarm.shell.driver import resolve_target_repo  # ray loads (it does not start) here
    from swarm.shell.preflight import local_root, ok_line

    config = resolve_target_repo(load_config(args.config, {"proposer.kind": args.proposer}, args.set),
                                 args.config)
    _preflight(config, args.config)
    print(ok_line(config, local_root(config)))
    return 0


def _preflight(config: SwarmConfig, source: Path, resumed_repo: Path | None = None,
               needs_here: bool = True) -> None:
    """Every problem of the target, one line each, before any budget is spent. A resumed run is
    checked on its own repository (best's tree), where its files now are; a driver joining a
    cluster leaves target.needs to the workers' machines."""
    from swarm.shell.preflight import local_root, preflight

    root = resumed_repo if resumed_repo is not None and resumed_repo.is_dir() else local_root(config)
    if problems := preflight(config, root, needs_here):
        raise SwarmError("\n".join(p.line(str(source)) for p in problems))


def _check_run_dir(run_dir: Path, resume: bool) -> None:
    # The coordinator checks too (it may run on another machine); this answers before Ray starts.
    exists = (run_dir / "ledger.jsonl").exists()
    if exists and not resume:
        raise SwarmError(f"{run_dir} already holds a run; pass --resume to continue it "
                         "or --run-dir to start another")
    if resume and not exists:
        raise SwarmError(f"{run_dir}: no ledger.jsonl to resume from; check --run-dir")
    if resume:
        _check_ledger(run_dir / "ledger.jsonl")


def _check_ledger(ledger: Path) -> None:
    """A bad line refuses the resume before Ray starts and before anything is written (one
    line, naming it); a torn last line, which the coordinator drops, is said here, where the
    user sees it (the coordinator says it in swarm.log too)."""
    from coordinator.rundir import torn_report, torn_warning
    from coordinator.status import replay_ledger
    from swarm.core.ledger import torn_tail

    _events, state = replay_ledger(ledger)
    if torn := torn_tail(ledger):
        lost = torn_report(torn, state, session="") is not None  # a resume is a new session
        print(f"swarm: warning: {torn_warning(ledger, torn, lost)}", file=sys.stderr)


def _status(args: argparse.Namespace) -> int:
    from coordinator.status import load_status

    if args.address:
        if args.run_dir is None:
            raise SwarmError("status --address needs RUN_DIR, as the driver was given it")
        from swarm.shell.driver import live_status  # ray loads here

        _show_status(live_status(args.address, args.run_dir), args.json)
        return 0
    run_dir = args.run_dir or _newest_run(Path("runs"))
    _show_status(load_status(run_dir), args.json)
    return 0


def _show_status(status: RunStatus, as_json: bool) -> None:
    if as_json:
        from swarm.shell.status_json import status_json

        print(status_json(status))
    else:
        _print(Console(), render_status(status))


def _print(console: Console, shown: RenderableType) -> None:
    """On a terminal, as rich lays it out; elsewhere (a pipe, a log) one line per row, not
    wrapped at 80 columns, without the padding that aligns the columns' right edges."""
    if console.is_terminal:
        console.print(shown)
        return
    wide = Console(width=_PLAIN_WIDTH, no_color=True, highlight=False)
    with wide.capture() as captured:
        wide.print(shown)
    print("\n".join(line.rstrip() for line in captured.get().splitlines()))


_PLAIN_WIDTH = 1000  # wider than any row: a row stays one line that grep finds whole


def _add_dashboard(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from swarm.shell.dashboard.cli import add_parser

    add_parser(commands)


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
            origin = f"trial {best.trial}" if best.trial else "the target as given"
            console.print(f"trials {status.trials_done} done, {status.trials_running} running;"
                          f" best {format_metric(best.mean)} over {best.runs} runs, from {origin}"
                          f"{pace_line(status)}", soft_wrap=True)  # a log's line stays one line
    return show


def _log_to(run_dir: Path) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_dir / "swarm.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
    logging.getLogger("swarm").addHandler(handler)
    logging.getLogger("swarm").setLevel(logging.INFO)


if __name__ == "__main__":
    sys.exit(main())
