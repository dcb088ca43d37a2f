"""The coordinator's room: its state and decisions (pure), and the service that carries them out
over the run directory and the pool. Imports only `swarm.core`."""
