"""`swarm join HEAD:PORT`: lend this machine to a running search, SETI@home style.

It runs `ray start --block` joined to the head, with a resource that marks the node a
volunteer: the driver starts workers on it within seconds (see swarm/shell/placement.py) and the
coordinator confirms its winners on a trusted node before they count. The contribution lasts
as long as the command: Ctrl-C (or SIGTERM) takes the node out, losing only its trials in flight.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from swarm.core.errors import SwarmError
from swarm.shell.placement import VOLUNTEER_RESOURCE

__all__ = ["join_command", "join_env", "join"]


def join_command(address: str, gpus: int | None, cpus: int | None, node_ip: str | None) -> list[str]:
    if ":" not in address or not address.rsplit(":", 1)[1].isdigit():
        raise SwarmError(f"join: {address!r} is not HEAD:PORT (the head's address and GCS port, "
                         "e.g. 10.0.0.5:6379)")
    beside = Path(sys.executable).with_name("ray")  # the Ray of this environment, same version
    ray = str(beside) if beside.exists() else (shutil.which("ray") or "ray")
    command = [ray, "start", f"--address={address}", "--block",
               f"--resources={json.dumps({VOLUNTEER_RESOURCE: 1})}"]
    if gpus is not None:
        command.append(f"--num-gpus={gpus}")
    if cpus is not None:
        command.append(f"--num-cpus={cpus}")
    if node_ip:  # behind NAT or on an overlay network: the address the others reach it at
        command.append(f"--node-ip-address={node_ip}")
    return command


def join_env(environ: dict[str, str], token_file: Path | None) -> dict[str, str]:
    """The environment of `ray start`: token authentication when a token is at hand (a client
    must ask for token mode itself; an explicit address never turns it on)."""
    env = dict(environ)
    if token_file is not None:
        if not token_file.is_file():
            raise SwarmError(f"join: --token-file {token_file} does not exist; ask the search's "
                             "operator for the cluster's token (ray get-auth-token on the head)")
        env["RAY_AUTH_TOKEN_PATH"] = str(token_file)
    if (token_file is not None or env.get("RAY_AUTH_TOKEN") or env.get("RAY_AUTH_TOKEN_PATH")
            or (Path(env.get("HOME", "~")).expanduser() / ".ray" / "auth_token").is_file()):
        env.setdefault("RAY_AUTH_MODE", "token")
    return env


def join(address: str, gpus: int | None, cpus: int | None, node_ip: str | None,
         token_file: Path | None) -> int:
    command = join_command(address, gpus, cpus, node_ip)
    print(f"joining {address} as a volunteer node: {' '.join(command)}\n"
          "Ctrl-C leaves the search (trials running here are recorded lost and re-done elsewhere)",
          flush=True)
    process = subprocess.Popen(command, env=join_env(dict(os.environ), token_file),
                               start_new_session=True)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` leaves as cleanly as Ctrl-C
    try:
        return process.wait()
    except KeyboardInterrupt:
        return _leave(process)
    finally:
        if process.poll() is None:
            _leave(process)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _leave(process: subprocess.Popen[bytes]) -> int:
    # `ray start --block` stops the node's processes when it is told to stop
    os.killpg(process.pid, signal.SIGTERM)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait()
