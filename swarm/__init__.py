"""The swarm package: `core/`, the foundation every part stands on, and `shell/`, what users
touch. The two actors' rooms, `coordinator/` and `workers/`, stand between them."""

# What `swarm --version` says when the package runs from a checkout that was never installed;
# tests/test_cli_conventions.py holds it to pyproject.toml's version.
__version__ = "0.1.0"
