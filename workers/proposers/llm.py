"""The llm proposer: one chat completion through litellm, answered in SEARCH/REPLACE format.

Every provider goes through litellm (`anthropic/...`, `openai/...`, any OpenAI-compatible
server through `api_base`); keys come from the provider's usual environment variables.
- Provider errors that pass (rate limits, overload, timeouts, dropped connections) are retried
  with exponential backoff and full jitter, never sooner than the server's Retry-After; one
  that persists, or one that will not pass (bad request, context too long, authentication),
  fails the proposal with the reason, never the worker.
- A reply that cannot be used (malformed, SEARCH text absent, a path outside `editable`) gets
  one retry with the error shown to the model; a second failure fails the proposal.
- Tokens and dollars of every request, retries included, are added to the proposal.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from typing import Any

from swarm.core.config import ProposerSpec
from swarm.core.retry import backoff_s, retry_after_s
from swarm.core.scope import scope_violation
from swarm.core.values import Cost
from workers.proposers.base import Proposal, ProposalContext, ProposalFailure
from workers.proposers.edits import EditError, apply_edits, parse_reply
from workers.proposers.prompt import retry_prompt, system_prompt, user_prompt

__all__ = ["LLMProposer", "ProviderError"]

REPLY_ATTEMPTS = 2  # the first reply and one retry with its error shown
MAX_BACKOFF_S = 60.0
TRANSIENT_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504, 529})  # 529: Anthropic's overload


class ProviderError(Exception):
    """The provider did not answer usably, after the retries its error deserves."""


def _litellm() -> Any:
    # Import never fetches the price table from the network: the copy inside the package is used.
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    return litellm


class LLMProposer:
    def __init__(self, spec: ProposerSpec, sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None) -> None:
        if not spec.model:
            raise ValueError("the llm proposer needs proposer.model")
        self.spec = spec
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._litellm = _litellm()

    def propose(self, context: ProposalContext) -> Proposal | ProposalFailure:
        messages = self._messages(context)
        spent: list[Cost] = []  # every request's, retries included
        error = ""
        for _attempt in range(REPLY_ATTEMPTS):
            try:
                reply = self._complete(messages, spent)
            except ProviderError as exc:
                return ProposalFailure(f"provider: {exc}"[:500], sum(spent, Cost()))
            try:
                return self._proposal(reply, context, sum(spent, Cost()))
            except EditError as exc:
                error = str(exc)
                messages += [{"role": "assistant", "content": reply},
                             {"role": "user", "content": retry_prompt(error)}]
        return ProposalFailure(f"unusable reply after {REPLY_ATTEMPTS} tries: {error}"[:500],
                               sum(spent, Cost()))

    def _messages(self, context: ProposalContext) -> list[dict[str, Any]]:
        system: dict[str, Any] = {"type": "text", "text": system_prompt(context.program, context.briefing)}
        if self.spec.model and self.spec.model.startswith("anthropic/"):
            system["cache_control"] = {"type": "ephemeral"}  # the stable prefix: cached by the provider
        return [{"role": "system", "content": [system]}, {"role": "user", "content": user_prompt(context)}]

    def _proposal(self, reply: str, context: ProposalContext, spent: Cost) -> Proposal:
        parsed = parse_reply(reply)
        files = apply_edits(context.files, parsed.edits)
        outside = scope_violation(sorted(files), list(context.editable), list(context.readonly))
        if context.editable and outside:
            raise EditError(f"the change {outside}; you may edit only {', '.join(context.editable)}")
        return Proposal(files, parsed.hypothesis, spent)

    def _complete(self, messages: list[dict[str, Any]], spent: list[Cost]) -> str:
        """The reply's text, retrying provider errors that may pass with exponential backoff."""
        litellm = self._litellm
        for attempt in range(self.spec.max_retries + 1):
            try:
                response = litellm.completion(
                    model=self.spec.model, messages=messages, api_base=self.spec.api_base,
                    temperature=self.spec.temperature, max_tokens=self.spec.max_tokens,
                    timeout=self.spec.timeout_s, max_retries=0)
            except Exception as exc:  # noqa: BLE001  (every provider failure is judged below)
                if isinstance(exc, litellm.ContextWindowExceededError):
                    raise ProviderError(f"the prompt is too long for {self.spec.model}: {exc}") from exc
                if not self._transient(exc):
                    raise ProviderError(f"{type(exc).__name__}: {exc}") from exc
                if attempt == self.spec.max_retries:
                    raise ProviderError(f"{type(exc).__name__} after {attempt + 1} tries: {exc}") from exc
                self._sleep(backoff_s(attempt, self.spec.retry_base_s, MAX_BACKOFF_S, self._rng,
                                      _server_asks_s(exc)))
                continue
            spent.append(self._cost_of(response))
            return str(response.choices[0].message.content or "")
        raise AssertionError("unreachable")

    def _transient(self, exc: Exception) -> bool:
        """Whether waiting may help: rate limits, overload, server errors, timeouts, dropped links."""
        litellm = self._litellm
        passing = (litellm.RateLimitError, litellm.InternalServerError, litellm.ServiceUnavailableError,
                   litellm.Timeout, litellm.APIConnectionError)
        return isinstance(exc, passing) or getattr(exc, "status_code", None) in TRANSIENT_STATUS

    def _cost_of(self, response: Any) -> Cost:
        usage = getattr(response, "usage", None)
        tokens_in = int(getattr(usage, "prompt_tokens", 0) or 0)
        tokens_out = int(getattr(usage, "completion_tokens", 0) or 0)
        return Cost(tokens_in, tokens_out, self._dollars(response, tokens_in, tokens_out))

    def _dollars(self, response: Any, tokens_in: int, tokens_out: int) -> float:
        price = self.spec.price
        if price is not None:
            return (tokens_in * price.input_per_mtok + tokens_out * price.output_per_mtok) / 1e6
        try:
            return float(self._litellm.completion_cost(completion_response=response))
        except Exception:  # noqa: BLE001  (a model missing from the price table costs what we know: 0)
            return 0.0


def _server_asks_s(exc: Exception) -> float | None:
    """The Retry-After of the failed response, wherever litellm kept its headers."""
    headers = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None)
    if not headers:
        return None
    try:
        return retry_after_s(dict(headers.items()), time.time())
    except AttributeError:
        return None
