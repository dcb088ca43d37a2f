"""One base error: its message names the file, key or value and says how to fix it."""

from __future__ import annotations

__all__ = ["SwarmError", "ConfigError", "GitError", "RunDirError", "CoordinatorLost", "CoordinatorUnreachable"]


class SwarmError(Exception):
    """Anything the user can fix; the CLI prints it as one line, no traceback."""


class ConfigError(SwarmError):
    """A config file or command-line value that is not valid."""


class GitError(SwarmError):
    """A git operation on a target repository that failed."""


class RunDirError(SwarmError):
    """A run directory that cannot be created, resumed or read."""


class CoordinatorLost(SwarmError):
    """The coordinator died for good; the run directory holds everything it had recorded."""


class CoordinatorUnreachable(SwarmError):
    """The coordinator did not answer a call until its deadline (it may be overloaded, or its
    node cut off); nothing it recorded is lost."""
