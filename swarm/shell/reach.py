"""Whether the Ray head at `--address` can be joined, decided before Ray is asked to (pure).

`ray.init` to an address where nothing listens retries for many minutes; to a head that wants
a token it was not given, it retries 20 s and raises a ConnectionError that does not mention
the token. The driver asks the head's GCS once, with a deadline, and this module turns the
answer into the one line that says what to do (or into nothing: go ahead).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

__all__ = ["Answer", "Token", "find_token", "wants_token_mode", "classify", "refusal", "PROBE_TIMEOUT_S"]

# The whole check, Python's and Ray's imports included, stays well inside 10 s.
PROBE_TIMEOUT_S = 5.0
_WHERE_TOKENS_GO = ("put the cluster's token (`ray get-auth-token` on the head) in RAY_AUTH_TOKEN, "
                    "in a file named by RAY_AUTH_TOKEN_PATH, or in ~/.ray/auth_token")


class Answer(Enum):
    OPEN = "open"  # a GCS answered: join
    WANTS_TOKEN = "wants token"  # a GCS refused the call: no token, or not its token
    NOT_A_HEAD = "not a head"  # something answered, but not a Ray GCS (the dashboard's port, say)
    SILENT = "silent"  # nothing answered within the deadline, or the connection was refused


@dataclass(frozen=True)
class Token:
    source: str  # where it was found, as a user would name it


def find_token(environ: Mapping[str, str], home: Path) -> Token | None:
    """The token Ray would send, looked for where Ray looks, in Ray's order."""
    if environ.get("RAY_AUTH_TOKEN", "").strip():
        return Token("$RAY_AUTH_TOKEN")
    named = environ.get("RAY_AUTH_TOKEN_PATH", "")
    if named and Path(named).expanduser().is_file():
        return Token(named)
    default = home / ".ray" / "auth_token"
    return Token(str(default)) if default.is_file() else None


def wants_token_mode(environ: Mapping[str, str], token: Token | None) -> bool:
    """Whether to turn token mode on: Ray does it for `auto` when a token is at hand, never for
    an explicit address, so a head started with RAY_AUTH_MODE=token refused the same shell's
    driver. A client in token mode still joins a head without authentication."""
    return token is not None and "RAY_AUTH_MODE" not in environ


def classify(code: str, details: str) -> Answer:
    """What a gRPC status (its name, e.g. `UNAVAILABLE`, and its details) says about the address."""
    if code == "OK":
        return Answer.OPEN
    if code == "UNAUTHENTICATED":
        return Answer.WANTS_TOKEN
    if code == "DEADLINE_EXCEEDED" or (code == "UNAVAILABLE" and "HTTP/2" not in details):
        return Answer.SILENT
    return Answer.NOT_A_HEAD  # HTTP/1 (the dashboard), an unknown service, ...


def refusal(address: str, code: str, details: str, token: Token | None, mode: str | None) -> str | None:
    """The one line that says why `address` cannot be joined and what to do, or None to join.
    `code` and `details` are the gRPC status of one call to its GCS; `mode` is RAY_AUTH_MODE as
    the driver will run (None: unset)."""
    if mode == "token" and token is None:
        return f"RAY_AUTH_MODE=token but no token is here: {_WHERE_TOKENS_GO}"
    answer = classify(code, details)
    if answer is Answer.OPEN:
        return None
    if answer is Answer.SILENT:
        return (f"no Ray head answers at {address}: {_why(code, details)}; start one (`ray start "
                "--head`) or check --address: auto, or HOST:PORT with the head's GCS port (6379 by default)")
    if answer is Answer.NOT_A_HEAD:
        return (f"{address} answers, but not as a Ray head's GCS: {_why(code, details)}; give the GCS "
                "port that `ray start --head` printed (6379 by default), not the dashboard's (8265)")
    if mode != "token":
        if token is None:
            return f"the Ray head at {address} wants token authentication and none is here: {_WHERE_TOKENS_GO}"
        return (f"the Ray head at {address} wants token authentication, but RAY_AUTH_MODE={mode} here: "
                f"unset it (the token in {token.source} is then used) or set RAY_AUTH_MODE=token")
    return (f"the Ray head at {address} refused the token from {token.source if token else '?'}: it is "
            "not this cluster's; get the right one with `ray get-auth-token` on the head")


def _why(code: str, details: str) -> str:
    """gRPC's long details, said short."""
    if code == "DEADLINE_EXCEEDED":
        return f"no reply within {PROBE_TIMEOUT_S:g} s"
    if "refused" in details.lower():
        return "connection refused"
    if "http1" in details.lower():
        return "an HTTP/1 server, such as the dashboard"
    return f"{code}: {' '.join(details.split())[:100]}"
