"""`swarm dashboard`: a read-only page that follows a run live (see server.py)."""
