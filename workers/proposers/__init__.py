"""Proposers: what turns a baseline into one proposed change."""

from __future__ import annotations

from swarm.core.config import ProposerSpec
from workers.proposers.base import Proposal, ProposalContext, ProposalFailure, Proposer

__all__ = ["Proposal", "ProposalContext", "ProposalFailure", "Proposer", "make_proposer"]


def make_proposer(spec: ProposerSpec, seed: int | None) -> Proposer:
    """The proposer a config names; `seed` differs per worker so workers explore differently."""
    if spec.kind == "mutate":
        from workers.proposers.mutate import MutateProposer
        return MutateProposer(seed=seed)
    if spec.kind == "llm":
        from workers.proposers.llm import LLMProposer
        return LLMProposer(spec)
    if spec.kind == "agent":
        from workers.proposers.agent import AgentProposer
        return AgentProposer(spec)
    raise ValueError(f"proposer.kind {spec.kind!r} is not available")
