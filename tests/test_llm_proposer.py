"""The llm proposer through litellm against a fake provider speaking the real wire protocols."""

from __future__ import annotations

from typing import Any

import pytest

from swarm.core.config import PriceSpec, ProposerSpec
from swarm.core.values import Cost, TrialDigest
from tests.fake_llm import FakeLLM, Step
from workers.proposers.base import Proposal, ProposalContext, ProposalFailure
from workers.proposers.llm import LLMProposer

__all__: list[str] = []

TRAIN = "import math\n\nLR = 0.04\n\nSTEPS = 500\n"
CONTEXT = ProposalContext(program="Lower the loss.", files={"train.py": TRAIN}, editable=("train.py",),
                          readonly=("prepare.py",),
                          recent=(TrialDigest("00001", "w1", "LR 0.04 -> 0.08", "ok", 1.5, "discard"),))
GOOD = "Hypothesis: a lower LR\ntrain.py\n<<<<<<< SEARCH\nLR = 0.04\n=======\nLR = 0.03\n>>>>>>> REPLACE\n"
MALFORMED = "I think the learning rate is too high."
OUT_OF_SCOPE = "Hypothesis: cheat\nprepare.py\n<<<<<<< SEARCH\n=======\nx = 1\n>>>>>>> REPLACE\n"
PRICE = PriceSpec(input_per_mtok=3.0, output_per_mtok=15.0)  # 1000 in + 100 out = $0.0045


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test-openai")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-anthropic")


def propose(fake: FakeLLM, provider: str = "openai", **spec: Any) -> tuple[Proposal | ProposalFailure, list[float]]:
    base = fake.openai_base if provider == "openai" else fake.anthropic_base
    model = "openai/fake-model" if provider == "openai" else "anthropic/claude-fake"
    settings = {"model": model, "api_base": base, "price": PRICE, "retry_base_s": 0.5, **spec}
    slept: list[float] = []
    proposer = LLMProposer(ProposerSpec(kind="llm", **settings), sleep=slept.append)
    return proposer.propose(CONTEXT), slept


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_good_reply_becomes_a_proposal_with_its_cost(provider: str) -> None:
    with FakeLLM([Step(GOOD)]) as fake:
        result, _ = propose(fake, provider)
    assert result == Proposal({"train.py": TRAIN.replace("0.04", "0.03")}, "a lower LR",
                              Cost(1000, 100, pytest.approx(0.0045)))
    [request] = fake.requests
    assert request["path"] == ("/v1/chat/completions" if provider == "openai" else "/v1/messages")
    text = str(request["body"])
    assert "Lower the loss." in text and "LR = 0.04" in text and "[discard] 1.5: LR 0.04 -> 0.08" in text


def test_anthropic_requests_mark_the_stable_prefix_for_caching() -> None:
    with FakeLLM([Step(GOOD)]) as fake:
        propose(fake, "anthropic")
    system = fake.requests[0]["body"]["system"]
    assert system[0]["cache_control"] == {"type": "ephemeral"} and "Lower the loss." in system[0]["text"]
    assert fake.requests[0]["headers"]["x-api-key"] == "test-anthropic"


def test_an_unusable_reply_is_retried_once_with_the_error_shown() -> None:
    with FakeLLM([Step(MALFORMED), Step(GOOD)]) as fake:
        result, _ = propose(fake)
    assert isinstance(result, Proposal) and (result.cost.tokens_in, result.cost.tokens_out) == (2000, 200)
    last = fake.requests[1]["body"]["messages"][-1]["content"]
    assert last.startswith("That reply could not be used: the reply has no `Hypothesis: <one line>` line")


@pytest.mark.parametrize(("replies", "reason"), [
    ([MALFORMED], "unusable reply after 2 tries: the reply has no `Hypothesis: <one line>` line; "
                  "start with one"),
    ([OUT_OF_SCOPE], "unusable reply after 2 tries: the change changes paths agents may not edit: "
                     "prepare.py; you may edit only train.py"),
], ids=["malformed", "out-of-scope"])
def test_a_second_unusable_reply_fails_the_proposal_with_the_reason_and_its_cost(
        replies: list[str], reason: str) -> None:
    with FakeLLM([Step(r) for r in replies]) as fake:
        result, _ = propose(fake)
    assert result == ProposalFailure(reason, Cost(2000, 200, pytest.approx(0.009)))
    assert len(fake.requests) == 2


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_rate_limits_and_overload_are_retried_with_jittered_backoff(provider: str) -> None:
    with FakeLLM([Step(status=429), Step(status=529), Step(GOOD)]) as fake:
        result, slept = propose(fake, provider)
    assert isinstance(result, Proposal) and len(fake.requests) == 3
    # full jitter under a ceiling doubling from retry_base_s
    assert len(slept) == 2 and 0 <= slept[0] <= 0.5 and 0 <= slept[1] <= 1.0


def test_jitter_spreads_the_retries_of_workers_that_failed_together() -> None:
    waits = set()
    for _ in range(5):
        with FakeLLM([Step(status=429), Step(GOOD)]) as fake:
            _, slept = propose(fake, retry_base_s=10.0)
        waits.add(round(slept[0], 6))
    assert len(waits) == 5 and all(0 <= w <= 10.0 for w in waits)


@pytest.mark.parametrize(("provider", "header"), [
    ("openai", {"retry-after": "3"}), ("anthropic", {"retry-after": "3"}),
    ("openai", {"retry-after-ms": "3000"}),
], ids=["openai-seconds", "anthropic-seconds", "openai-ms"])
def test_a_servers_retry_after_is_never_cut_short(provider: str, header: dict[str, str]) -> None:
    with FakeLLM([Step(status=429, headers=header), Step(GOOD)]) as fake:
        result, slept = propose(fake, provider)
    assert isinstance(result, Proposal) and len(slept) == 1
    assert slept == [3.0]  # the jitter (at most 0.5 s here) never cuts the server's ask short


def test_a_provider_that_stays_down_fails_the_proposal_not_the_worker() -> None:
    with FakeLLM([Step(status=529)]) as fake:
        result, slept = propose(fake, "anthropic", max_retries=2)
    assert isinstance(result, ProposalFailure) and result.reason.startswith("provider: ")
    assert "after 3 tries" in result.reason and len(fake.requests) == 3 and len(slept) == 2


def test_a_slow_reply_times_out_and_counts_as_a_provider_error() -> None:
    with FakeLLM([Step(GOOD, delay_s=3.0)]) as fake:
        result, _ = propose(fake, timeout_s=0.5, max_retries=1)
    assert isinstance(result, ProposalFailure) and "Timeout" in result.reason


def test_a_bad_request_is_not_retried() -> None:
    with FakeLLM([Step(status=400)]) as fake:
        result, slept = propose(fake)
    assert isinstance(result, ProposalFailure) and result.reason.startswith("provider: BadRequestError")
    assert len(fake.requests) == 1 and slept == []


def test_without_a_price_override_the_cost_comes_from_litellms_table() -> None:
    with FakeLLM([Step(GOOD, prompt_tokens=1_000_000, completion_tokens=0)]) as fake:
        result, _ = propose(fake, model="openai/gpt-4o", price=None)
    assert isinstance(result, Proposal) and result.cost.usd > 0.5  # gpt-4o: dollars per million in


# The fake itself must speak the protocols as the real SDKs expect, streaming included.

def test_the_fake_streams_to_litellm_and_the_anthropic_sdk() -> None:
    import anthropic

    from workers.proposers.llm import _litellm

    litellm = _litellm()
    with FakeLLM([Step("streamed reply text, long enough for several chunks")]) as fake:
        chunks = litellm.completion(model="openai/fake", api_base=fake.openai_base, stream=True,
                                    messages=[{"role": "user", "content": "hi"}], max_retries=0)
        assert "".join(c.choices[0].delta.content or "" for c in chunks).startswith("streamed reply")
        client = anthropic.Anthropic(base_url=fake.anthropic_base, api_key="test", max_retries=0)
        with client.messages.stream(model="claude-fake", max_tokens=64,
                                    messages=[{"role": "user", "content": "hi"}]) as stream:
            assert "".join(stream.text_stream).startswith("streamed reply")
        message = client.messages.create(model="claude-fake", max_tokens=64,
                                         messages=[{"role": "user", "content": "hi"}])
        assert message.usage.input_tokens == 1000
