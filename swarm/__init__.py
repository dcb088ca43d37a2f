"""The swarm package: `core/`, the foundation every part stands on, and `shell/`, what users
touch. The two actors' rooms, `coordinator/` and `workers/`, stand between them."""
