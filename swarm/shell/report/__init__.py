"""`swarm report`: a run seen at a glance (report.md, progress.png, lineage.svg)."""
