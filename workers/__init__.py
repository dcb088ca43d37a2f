"""The workers' room: the loop, its clone, the sandbox, the result-block parser, the hardware
class and the proposers. Imports only `swarm.core`."""
