"""The official `anthropic` SDK through the gateway to Bedrock, Vertex and OpenAI-compatible
upstreams, played by the strict fakes in tests/fakes.

The client always speaks Anthropic Messages; the gateway converts to the provider's dialect. The
fakes refuse what the real services refuse (SigV4 recomputed by botocore, JWT grants verified,
unknown body fields, invalid beta flags, forged thinking signatures), so a request that gets an
answer here is one the provider would have accepted. Every successful exchange is then looked up
in the journal, where tokens and cost must match what the fake reported.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import anthropic
import httpx2
import pytest

from tollgate_shared_fixtures import (
    BEDROCK_SECRET_KEY,
    OPENAI_KEY,
    VERTEX_PROJECT,
    VERTEX_REGION,
    bedrock_provider,
    gateway_toml,
    header_values,
    openai_provider,
    vertex_provider,
)

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning"),
]

MODEL = "claude-sonnet-4-5"
PROVIDER_IDS = {
    "bedrock": "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "vertex": "claude-sonnet-4-5@20250929",
    "oai": "gpt-test",
    "bedrock-wrong-secret": "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
}
# Listed, but only Bedrock serves it: the other providers must refuse it before any upstream call.
BEDROCK_ONLY_MODEL = "claude-haiku-4-5"
BEDROCK_ONLY_ID = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
# Not listed at all: it must reach the provider under its own id.
UNLISTED_BEDROCK_ID = "anthropic.claude-opus-4-1-20250805-v1:0"

ALL = ["bedrock", "vertex", "oai"]
ANTHROPIC_STYLE = ["bedrock", "vertex"]

# USD per million tokens, as nanos per token: claude-sonnet-4-5 input $3, output $15, 5-minute
# cache write $3.75, cache read $0.30.
SONNET_45 = (3_000, 15_000, 3_750, 300)
# claude-opus-4-1: input $15, output $75, cache write $18.75, cache read $1.50.
OPUS_41 = (15_000, 75_000, 18_750, 1_500)

TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": ["location"],
    },
}
WRONG_SECRET = "not-the-secret-the-fake-knows"
AMZN_REQUEST_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
THINKING = {"type": "enabled", "budget_tokens": 1024}
REASONING_MODEL = "reasoning-test"
CHAT_MODEL = "chat-test"
REPLAY_MODEL = "replay-test"


@pytest.fixture(scope="module")
def gw(configured_gateway_factory, bedrock_fake, vertex_fake, openai_fake):
    """One gateway in front of all three fakes; Bedrock, listed first, is the default."""
    config = gateway_toml(
        providers=[
            bedrock_provider(bedrock_fake),
            vertex_provider(vertex_fake),
            openai_provider(openai_fake),
            # The real fake behind a wrong secret: every signature it makes is refused.
            bedrock_provider(
                bedrock_fake,
                name="bedrock-wrong-secret",
                secret_access_key=WRONG_SECRET,
            ),
        ],
        models=[
            {"name": MODEL, "aliases": ["sonnet"], "providers": PROVIDER_IDS},
            {"name": BEDROCK_ONLY_MODEL, "providers": {"bedrock": BEDROCK_ONLY_ID}},
            # OpenAI model kinds the gateway must shape requests for (data/openai_models.toml).
            {"name": REASONING_MODEL, "providers": {"oai": "o4-mini"}},
            {"name": CHAT_MODEL, "providers": {"oai": "gpt-4.1"}},
            {"name": REPLAY_MODEL, "providers": {"oai": "deepseek-v4-pro"}},
        ],
        # A gateway that waits on a silent upstream fails the test in seconds, not minutes.
        server={"upstream_idle_timeout_secs": 20},
    )
    return configured_gateway_factory(config)


@pytest.fixture(scope="module")
def key(gw):
    return gw.create_key("alice", "platform", name="dialect-tests")


@pytest.fixture(scope="module")
def fakes(bedrock_fake, vertex_fake, openai_fake):
    return {
        "bedrock": bedrock_fake,
        "bedrock-wrong-secret": bedrock_fake,
        "vertex": vertex_fake,
        "oai": openai_fake,
    }


@pytest.fixture(autouse=True)
def _fresh_recordings(bedrock_fake, vertex_fake, openai_fake):
    for fake in (bedrock_fake, vertex_fake, openai_fake):
        fake.clear()


@pytest.fixture(scope="module")
def clients(gw, key):
    """SDK clients by provider name; `None` sends no `x-tollgate-provider` at all."""
    made: dict[str | None, anthropic.Anthropic] = {}

    def get(provider: str | None) -> anthropic.Anthropic:
        if provider not in made:
            headers = {"x-tollgate-provider": provider} if provider else {}
            made[provider] = anthropic.Anthropic(
                api_key=key["key"],
                base_url=gw.url,
                max_retries=0,
                timeout=30.0,
                default_headers=headers,
                http_client=anthropic.DefaultHttpxClient(trust_env=False),
            )
        return made[provider]

    yield get
    for client in made.values():
        client.close()


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


# --- what the fakes saw, and what the journal must say about it -------------------------------


def only_model_request(fake, gw) -> dict[str, Any]:
    seen = fake.model_requests()
    assert len(seen) == 1, (
        f"expected exactly one model request at {fake.script}, got {len(seen)}\n"
        f"{fake.summary()}\ngateway stderr:\n{gw.proc.tail(3000)}"
    )
    return seen[0]


def assert_accepted(record: dict[str, Any], fake) -> None:
    assert record["status"] == 200 and record.get("scenario") != "rejected", (
        f"{fake.script} refused the gateway's request: {record.get('error')}\n"
        f"{record['method']} {record['path']}\nbody: {record['body'][:3000]}"
    )


def assert_routed(provider: str, record: dict[str, Any], stream: bool, model_id: str) -> None:
    """The request went to the provider's endpoint for `model_id`, in that provider's shape."""
    body = json.loads(record["body"]) if record["body"] else {}
    if provider.startswith("bedrock"):
        operation = "invoke-with-response-stream" if stream else "invoke"
        assert record["model_id"] == model_id, record["path"]
        assert record["path"].split("?")[0].endswith(f"/{operation}"), record["path"]
        assert "model" not in body and "stream" not in body, sorted(body)
        assert body.get("anthropic_version") == "bedrock-2023-05-31", body.get("anthropic_version")
    elif provider == "vertex":
        method = "streamRawPredict" if stream else "rawPredict"
        assert record["path"] == (
            f"/v1/projects/{VERTEX_PROJECT}/locations/{VERTEX_REGION}/publishers/anthropic/"
            f"models/{model_id}:{method}"
        ), record["path"]
        assert "model" not in body, sorted(body)
        assert body.get("stream", False) is stream, body.get("stream")
    else:
        assert record["path"] == "/v1/chat/completions", record["path"]
        assert body.get("model") == model_id, body.get("model")
        assert bool(body.get("stream")) is stream, body.get("stream")
        assert header_values(record["headers"], "authorization") == [f"Bearer {OPENAI_KEY}"]


def assert_no_gateway_credentials(record: dict[str, Any], key: dict[str, Any]) -> None:
    # The gateway key is the client's secret; a provider must never see it.
    for name, value in record["headers"]:
        assert key["key"] not in value, f"gateway key leaked upstream in header {name}"
        assert not name.startswith("x-tollgate-"), f"{name} reached the upstream"
    assert key["key"] not in record["body"], "gateway key leaked upstream in the body"


def answered_usage(provider: str, record: dict[str, Any]) -> dict[str, int]:
    """The usage the fake answered, as Anthropic counts it (input excludes cached tokens)."""
    u = record.get("usage")
    assert isinstance(u, dict), f"the fake answered no usage: {record}"
    if provider == "oai":
        details = u.get("prompt_tokens_details") or {}
        read = details.get("cached_tokens") or 0
        written = details.get("cache_write_tokens") or 0
        return {
            "input_tokens": u["prompt_tokens"] - read - written,
            "output_tokens": u["completion_tokens"],
            "cache_creation_input_tokens": written,
            "cache_read_input_tokens": read,
        }
    return {
        k: u.get(k) or 0
        for k in (
            "input_tokens",
            "output_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
        )
    }


def cost_nanos(usage: dict[str, int], prices: tuple[int, int, int, int] = SONNET_45) -> int:
    return (
        usage["input_tokens"] * prices[0]
        + usage["output_tokens"] * prices[1]
        + usage["cache_creation_input_tokens"] * prices[2]
        + usage["cache_read_input_tokens"] * prices[3]
    )


def assert_journal(
    gw,
    request_id: str | None,
    provider: str,
    *,
    stream: bool,
    usage: dict[str, int],
    model: str = MODEL,
    prices: tuple[int, int, int, int] = SONNET_45,
) -> dict[str, Any]:
    assert request_id, "response lacks x-tollgate-request-id"
    record = gw.record(request_id)
    label = f"journal record {request_id}"
    assert record.get("status") == 200, f"{label}: {record}"
    assert record.get("provider") == provider, f"{label}: provider {record.get('provider')!r}"
    assert record.get("user") == "alice" and record.get("team") == "platform", f"{label}: {record}"
    assert record.get("model") == model, f"{label}: model {record.get('model')!r}"
    assert record.get("stream") is stream, f"{label}: stream {record.get('stream')!r}"
    assert record.get("input_tokens") == usage["input_tokens"] == 120, f"{label}: {record}"
    assert record.get("output_tokens") == usage["output_tokens"] == 30, f"{label}: {record}"
    for field in ("cache_creation_input_tokens", "cache_read_input_tokens"):
        assert (record.get(field) or 0) == usage[field], (
            f"{label}: {field} = {record.get(field)!r}, the provider reported {usage[field]}"
        )
    assert record.get("cost_unknown") is not True, f"{label}: cost unknown: {record}"
    assert record.get("cost_nanos") == cost_nanos(usage, prices), (
        f"{label}: cost_nanos {record.get('cost_nanos')!r} for usage {usage}"
    )
    assert not record.get("error_type"), f"{label}: error {record.get('error_type')!r}"
    return record


def assert_upstream_request_id(provider: str, journal: dict[str, Any], record: dict[str, Any]):
    """The id the provider's support asks for: its request-id header, where it sends one."""
    got = journal.get("upstream_request_id")
    if provider == "oai":
        # OpenAI names requests in `x-request-id`; the fake numbers them like its records.
        assert got == f"req_mock_{record['n']}", (
            f"upstream_request_id {got!r}, the provider's x-request-id was req_mock_{record['n']}"
        )
    elif provider == "bedrock":
        assert AMZN_REQUEST_ID.fullmatch(got or ""), (
            f"upstream_request_id {got!r} is not Bedrock's x-amzn-RequestId"
        )
    else:
        assert got, journal


def assert_error_journal(gw, exc: anthropic.APIStatusError, provider: str) -> dict[str, Any]:
    request_id = exc.response.headers.get("x-tollgate-request-id")
    assert request_id, "error response lacks x-tollgate-request-id"
    record = gw.record(request_id)
    assert record.get("status") == exc.status_code, record
    assert record.get("provider") == provider, record
    assert record.get("error_type") == exc.body["error"]["type"], record
    assert not record.get("input_tokens") and not record.get("output_tokens"), record
    assert record.get("cost_nanos") in (0, None), record
    return record


def assert_anthropic_error(exc: anthropic.APIStatusError, status: int, error_type: str) -> None:
    assert exc.status_code == status, f"status {exc.status_code}, body {exc.body!r}"
    assert isinstance(exc.body, dict) and exc.body.get("type") == "error", exc.body
    assert exc.body.get("error", {}).get("type") == error_type, exc.body
    assert exc.body["error"].get("message"), exc.body


# --- text, streams, tools, thinking ------------------------------------------------------------


@pytest.mark.parametrize("provider", ALL)
def test_text_non_stream(provider, clients, fakes, gw, key):
    raw = clients(provider).messages.with_raw_response.create(
        model=MODEL, max_tokens=64, messages=user(f"[[say:pong from {provider}]] hello")
    )
    message = raw.parse()
    fake = fakes[provider]
    record = only_model_request(fake, gw)
    assert_accepted(record, fake)
    assert_routed(provider, record, False, PROVIDER_IDS[provider])
    assert_no_gateway_credentials(record, key)

    assert [b.type for b in message.content] == ["text"], message
    assert message.content[0].text == f"pong from {provider}"
    assert message.stop_reason == "end_turn"
    assert message.role == "assistant" and message.type == "message"
    usage = answered_usage(provider, record)
    assert message.usage.input_tokens == usage["input_tokens"]
    assert message.usage.output_tokens == usage["output_tokens"]
    journal = assert_journal(
        gw, raw.headers.get("x-tollgate-request-id"), provider, stream=False, usage=usage
    )
    assert_upstream_request_id(provider, journal, record)


@pytest.mark.parametrize("provider", ALL)
def test_text_stream(provider, clients, fakes, gw, key):
    with clients(provider).messages.stream(
        model=MODEL, max_tokens=64, messages=user(f"[[say:streamed pong from {provider}]] hi")
    ) as stream:
        events = []
        for event in stream:
            events.append(event.type)
        final = stream.get_final_message()
        request_id = stream.response.headers.get("x-tollgate-request-id")
        content_type = stream.response.headers.get("content-type", "")
    fake = fakes[provider]
    record = only_model_request(fake, gw)
    assert_accepted(record, fake)
    assert_routed(provider, record, True, PROVIDER_IDS[provider])
    assert_no_gateway_credentials(record, key)

    assert content_type.startswith("text/event-stream"), content_type
    assert events[0] == "message_start" and events[-1] == "message_stop", events
    assert "".join(b.text for b in final.content if b.type == "text") == (
        f"streamed pong from {provider}"
    )
    assert final.stop_reason == "end_turn"
    usage = answered_usage(provider, record)
    assert final.usage.input_tokens == usage["input_tokens"]
    assert final.usage.output_tokens == usage["output_tokens"]
    journal = assert_journal(gw, request_id, provider, stream=True, usage=usage)
    assert_upstream_request_id(provider, journal, record)


def _create(client, stream: bool, **params):
    """One Messages call, streamed or not, as (final message, gateway request id)."""
    if stream:
        with client.messages.stream(**params) as s:
            final = s.get_final_message()
            return final, s.response.headers.get("x-tollgate-request-id")
    raw = client.messages.with_raw_response.create(**params)
    return raw.parse(), raw.headers.get("x-tollgate-request-id")


def _answer_tool_call(client, fake, stream: bool, messages, first, params):
    """Sends `first` back with a result for its tool call (its thinking block echoed as the
    client received it); returns the answer, its gateway request id and every request the fake
    has seen, and fails clearly when the echoed block is refused."""
    call = first.content[1]
    result = {"type": "tool_result", "tool_use_id": call.id, "content": "ok"}
    messages = messages + [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [result]},
    ]
    try:
        second, second_id = _create(client, stream, messages=messages, **params)
    except anthropic.APIStatusError as exc:
        pytest.fail(
            f"the echoed thinking block was refused: {exc.status_code} {exc.body}\n"
            f"{fake.summary()}",
            pytrace=False,
        )
    seen = fake.model_requests()
    assert len(seen) == 2, fake.summary()
    assert_accepted(seen[1], fake)
    return second, second_id, seen


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("provider", ALL)
def test_tool_use_round_trip(provider, stream, clients, fakes, gw):
    client = clients(provider)
    fake = fakes[provider]
    messages = user("[[scenario:tool]] What is the weather in Paris?")
    first, first_id = _create(
        client, stream, model=MODEL, max_tokens=256, tools=[TOOL], messages=messages
    )
    seen = fake.model_requests()
    assert len(seen) == 1, fake.summary()
    assert_accepted(seen[0], fake)
    assert first.stop_reason == "tool_use", first
    assert [b.type for b in first.content] == ["text", "tool_use"], first.content
    assert first.content[0].text == "Let me check."
    call = first.content[1]
    assert call.name == "get_weather"
    assert call.input == {"location": "Paris"}
    assert call.id, call
    assert_journal(gw, first_id, provider, stream=stream, usage=answered_usage(provider, seen[0]))

    messages = messages + [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": call.id, "content": "18°C and sunny"}
            ],
        },
    ]
    second, second_id = _create(
        client, stream, model=MODEL, max_tokens=256, tools=[TOOL], messages=messages
    )
    seen = fake.model_requests()
    assert len(seen) == 2, fake.summary()
    assert_accepted(seen[1], fake)
    assert second.stop_reason == "end_turn", second
    assert [b.type for b in second.content] == ["text"], second.content
    assert second.content[0].text == "tool result was: 18°C and sunny"
    assert_journal(gw, second_id, provider, stream=stream, usage=answered_usage(provider, seen[1]))

    if provider == "oai":
        # The call id the client saw must be the one the provider issued, or the pairing breaks.
        body = json.loads(seen[1]["body"])
        tool_msgs = [m for m in body["messages"] if m.get("role") == "tool"]
        calls = [c for m in body["messages"] for c in (m.get("tool_calls") or [])]
        assert [m["tool_call_id"] for m in tool_msgs] == [c["id"] for c in calls], body["messages"]
        assert json.loads(calls[0]["function"]["arguments"]) == {"location": "Paris"}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("provider", ANTHROPIC_STYLE)
def test_thinking_round_trip(provider, stream, clients, fakes, gw):
    """The signature of a thinking block must come back byte for byte on the next turn, or the
    provider refuses the conversation."""
    client = clients(provider)
    fake = fakes[provider]
    params = dict(model=MODEL, max_tokens=2048, thinking=THINKING, tools=[TOOL])
    messages = user("[[scenario:thinking]] Think, then check the weather.")
    first, first_id = _create(client, stream, messages=messages, **params)
    seen = fake.model_requests()
    assert len(seen) == 1, fake.summary()
    assert_accepted(seen[0], fake)
    sent = json.loads(seen[0]["body"])
    assert sent.get("thinking") == THINKING, f"thinking not forwarded: {sorted(sent)}"
    assert [b.type for b in first.content] == ["thinking", "tool_use"], first.content
    thinking = first.content[0]
    assert thinking.thinking.startswith("The script for turn"), thinking
    assert thinking.signature, "signature lost on the way back"
    assert_journal(gw, first_id, provider, stream=stream, usage=answered_usage(provider, seen[0]))

    second, second_id, seen = _answer_tool_call(client, fake, stream, messages, first, params)
    echoed = json.loads(seen[1]["body"])["messages"][1]["content"][0]
    assert echoed == {
        "type": "thinking",
        "thinking": thinking.thinking,
        "signature": thinking.signature,
    }, echoed
    assert [b.type for b in second.content] == ["thinking", "text"], second.content
    assert second.content[1].text == "tool result was: ok"
    assert_journal(gw, second_id, provider, stream=stream, usage=answered_usage(provider, seen[1]))


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_reasoning_becomes_thinking(stream, clients, fakes, gw):
    """`reasoning_content` of an OpenAI-compatible server (vLLM, DeepSeek, Ollama) arrives as a
    thinking block before the answer, with an empty signature (none is made up); sent back on the
    next turn, it is dropped, and the strict fake (which refuses unknown message members) takes
    the request."""
    client = clients("oai")
    fake = fakes["oai"]
    params = dict(model=MODEL, max_tokens=2048, thinking=THINKING, tools=[TOOL])
    messages = user("[[scenario:thinking]] Think, then check the weather.")
    if stream:
        with client.messages.stream(messages=messages, **params) as s:
            events = [(e.type, getattr(e, "content_block", None)) for e in s]
            first = s.get_final_message()
        starts = [b.type for kind, b in events if kind == "content_block_start"]
        assert starts == ["thinking", "tool_use"], events
        assert not any(kind == "signature" for kind, _ in events), events
    else:
        first, _ = _create(client, False, messages=messages, **params)
    seen = fake.model_requests()
    assert len(seen) == 1, fake.summary()
    assert_accepted(seen[0], fake)
    assert json.loads(seen[0]["body"]).get("reasoning_effort") == "low"
    assert [b.type for b in first.content] == ["thinking", "tool_use"], first.content
    thinking = first.content[0]
    assert thinking.thinking == (
        f"The script for turn {seen[0]['n']} says what to do next; following it."
    )
    assert thinking.signature == "", thinking

    second, second_id, seen = _answer_tool_call(client, fake, stream, messages, first, params)
    replayed = json.loads(seen[1]["body"])["messages"][1]
    assert replayed["role"] == "assistant" and "reasoning_content" not in replayed, replayed
    assert [b.type for b in second.content] == ["thinking", "text"], second.content
    assert second.content[0].thinking.startswith(f"The script for turn {seen[1]['n']} ")
    assert second.content[1].text == "tool result was: ok"
    assert_journal(gw, second_id, "oai", stream=stream, usage=answered_usage("oai", seen[1]))


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_reasoning_goes_back_to_models_that_require_it(stream, clients, fakes):
    """DeepSeek V4 refuses a tool loop whose earlier reasoning is missing: for it, the thinking
    block Claude Code sends back becomes `reasoning_content` on the assistant message."""
    client = clients("oai")
    fake = fakes["oai"]
    params = dict(model=REPLAY_MODEL, max_tokens=2048, thinking=THINKING, tools=[TOOL])
    messages = user("[[scenario:thinking]] Think, then check the weather.")
    first, _ = _create(client, stream, messages=messages, **params)
    thinking, call = first.content
    messages = messages + [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "ok"}],
        },
    ]
    second, _ = _create(client, stream, messages=messages, **params)
    seen = fake.model_requests()
    assert len(seen) == 2, fake.summary()
    assert_accepted(seen[1], fake)
    replayed = json.loads(seen[1]["body"])["messages"][1]
    assert replayed["reasoning_content"] == thinking.thinking, replayed
    assert second.content[-1].text == "tool result was: ok"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_reasoning_and_chat_models_get_the_parameters_they_take(stream, clients, fakes):
    """Claude Code sends thinking and may send temperature 1: a reasoning model gets
    `reasoning_effort` and `max_completion_tokens` but no temperature, a chat model gets its
    temperature but no `reasoning_effort`. The fake refuses each mismatch as OpenAI does."""
    client = clients("oai")
    fake = fakes["oai"]
    # This SDK no longer offers `temperature`; older ones and Claude Code still send it.
    common = dict(
        max_tokens=2048, thinking=THINKING, extra_body={"temperature": 1}, messages=user("hi")
    )
    _create(client, stream, model=REASONING_MODEL, **common)
    _create(client, stream, model=CHAT_MODEL, **common)
    seen = fake.model_requests()
    assert len(seen) == 2, fake.summary()
    for record in seen:
        assert_accepted(record, fake)
    reasoning, chat = (json.loads(r["body"]) for r in seen)
    assert reasoning["model"] == "o4-mini" and reasoning["reasoning_effort"] == "low"
    assert reasoning["max_completion_tokens"] == 2048
    assert "temperature" not in reasoning and "max_tokens" not in reasoning, reasoning
    assert chat["model"] == "gpt-4.1" and chat["temperature"] == 1
    assert "reasoning_effort" not in chat, chat


def test_a_temperature_a_reasoning_model_would_ignore_is_refused(clients, fakes):
    # Dropping it would change the answer without telling anyone: a 400 in the client's dialect.
    with pytest.raises(anthropic.BadRequestError) as err:
        clients("oai").messages.create(
            model=REASONING_MODEL,
            max_tokens=64,
            extra_body={"temperature": 0.2},
            messages=user("hi"),
        )
    assert_anthropic_error(err.value, 400, "invalid_request_error")
    message = err.value.body["error"]["message"]
    assert "temperature" in message and "o4-mini" in message, message
    assert fakes["oai"].model_requests() == [], fakes["oai"].summary()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("provider", ALL)
def test_cache_tokens_reach_the_journal(provider, stream, clients, fakes, gw):
    """A prompt with a cache breakpoint: whatever cache use the provider reports is recorded and
    priced, and the client sees the same numbers."""
    system = [
        {"type": "text", "text": "You are terse. " * 40, "cache_control": {"type": "ephemeral"}}
    ]
    final, request_id = _create(
        clients(provider), stream, model=MODEL, max_tokens=64, system=system,
        messages=user("[[say:cached]] hi"),
    )  # fmt: skip
    fake = fakes[provider]
    record = only_model_request(fake, gw)
    assert_accepted(record, fake)
    usage = answered_usage(provider, record)
    if provider != "oai":
        # Anthropic-style providers report cache use whenever the body asks for caching.
        cached = (usage["cache_creation_input_tokens"], usage["cache_read_input_tokens"])
        assert cached == (200, 1000), usage
    else:
        sent = json.loads(record["body"])
        assert "cache_control" not in record["body"], "Anthropic cache_control leaked to OpenAI"
        assert sent["messages"][0]["role"] in ("system", "developer"), sent["messages"][0]
    assert final.content[0].text == "cached"
    assert final.usage.input_tokens == usage["input_tokens"]
    assert (final.usage.cache_creation_input_tokens or 0) == usage["cache_creation_input_tokens"]
    assert (final.usage.cache_read_input_tokens or 0) == usage["cache_read_input_tokens"]
    assert_journal(gw, request_id, provider, stream=stream, usage=usage)


# --- count_tokens ------------------------------------------------------------------------------


def test_count_tokens_forwarded_to_vertex(clients, vertex_fake, gw, key):
    raw = clients("vertex").messages.with_raw_response.count_tokens(
        model=MODEL, messages=user("How many tokens is this sentence?"), tools=[TOOL]
    )
    counted = raw.parse()
    record = only_model_request(vertex_fake, gw)
    assert_accepted(record, vertex_fake)
    assert record["scenario"] == "count_tokens", record
    assert record["path"] == (
        f"/v1/projects/{VERTEX_PROJECT}/locations/{VERTEX_REGION}/publishers/anthropic/"
        "models/count-tokens:rawPredict"
    ), record["path"]
    body = json.loads(record["body"])
    assert body["model"] == PROVIDER_IDS["vertex"], body.get("model")
    assert body["tools"][0]["name"] == "get_weather"
    assert counted.input_tokens == max(1, record["body_len"] // 4)
    assert_no_gateway_credentials(record, key)

    journal = gw.record(raw.headers.get("x-tollgate-request-id"))
    assert journal.get("status") == 200, journal
    assert journal.get("provider") == "vertex", journal
    assert not journal.get("error_type"), journal
    # Counting is free: a known zero, not an unknown cost.
    assert journal.get("cost_nanos") == 0 and journal.get("cost_unknown") is not True, journal


@pytest.mark.parametrize("provider", ["bedrock", "oai"])
def test_count_tokens_not_offered(provider, clients, fakes, gw):
    """Bedrock's InvokeModel and Chat Completions cannot count tokens; Claude Code tolerates a
    404 `not_found_error` there and estimates instead."""
    started = time.monotonic()
    with pytest.raises(anthropic.NotFoundError) as caught:
        clients(provider).messages.count_tokens(model=MODEL, messages=user("count me"))
    assert time.monotonic() - started < 10
    assert_anthropic_error(caught.value, 404, "not_found_error")
    assert provider in caught.value.body["error"]["message"], caught.value.body
    assert fakes[provider].model_requests() == [], fakes[provider].summary()
    assert_error_journal(gw, caught.value, provider)


# --- errors ------------------------------------------------------------------------------------


RATE_LIMIT_SCENARIOS = {
    "bedrock": "error:429:ThrottlingException",
    "vertex": "error:429:RESOURCE_EXHAUSTED",
    "oai": "error:429:rate_limit_exceeded",
}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("provider", ALL)
def test_upstream_429_is_rate_limit_error(provider, stream, clients, fakes, gw):
    """Each provider's own throttling answer becomes the error Anthropic clients retry."""
    scenario = RATE_LIMIT_SCENARIOS[provider]
    with pytest.raises(anthropic.RateLimitError) as caught:
        _create(
            clients(provider), stream, model=MODEL, max_tokens=16,
            messages=user(f"[[scenario:{scenario}]] hi"),
        )  # fmt: skip
    assert_anthropic_error(caught.value, 429, "rate_limit_error")
    if provider != "bedrock":
        # The provider said when to come back; clients wait that long before retrying.
        headers = caught.value.response.headers
        assert headers.get("retry-after") == "7", dict(headers)
    seen = fakes[provider].model_requests()
    assert len(seen) == 1 and seen[0]["status"] == 429, fakes[provider].summary()
    assert_error_journal(gw, caught.value, provider)


def test_openai_400_is_bad_request(clients, openai_fake, gw):
    with pytest.raises(anthropic.BadRequestError) as caught:
        clients("oai").messages.create(
            model=MODEL, max_tokens=16,
            messages=user("[[scenario:error:400:invalid_request_error]] hi"),
        )  # fmt: skip
    assert_anthropic_error(caught.value, 400, "invalid_request_error")
    message = caught.value.body["error"]["message"]
    assert "Scripted invalid_request_error" in message, message
    assert "oai" in message, f"error does not name the provider: {message!r}"
    seen = openai_fake.model_requests()
    assert len(seen) == 1 and seen[0]["status"] == 400, openai_fake.summary()
    assert_error_journal(gw, caught.value, "oai")


@pytest.mark.parametrize("provider", ALL)
def test_midstream_error_raises_while_iterating(provider, clients, fakes, gw):
    """An error after the stream has started must reach the client as an error event, never as
    a stream that simply ends."""
    received = []
    request_id = None
    with pytest.raises(anthropic.APIError) as caught:
        with clients(provider).messages.stream(
            model=MODEL, max_tokens=16, messages=user("[[scenario:midstream-error]] hi")
        ) as stream:
            request_id = stream.response.headers.get("x-tollgate-request-id")
            for event in stream:
                received.append(event.type)
            stream.get_final_message()
    assert "message_start" in received, f"failed before any event: {caught.value!r}"
    assert "message_stop" not in received, received
    seen = fakes[provider].model_requests()
    assert len(seen) == 1, fakes[provider].summary()
    record = gw.record(request_id)
    assert record.get("provider") == provider, record
    assert record.get("error_type"), f"journal does not show the stream failed: {record}"


@pytest.mark.parametrize("provider", ALL)
def test_broken_stream_raises(provider, clients, fakes, gw):
    """A stream the provider cuts without its terminator is an error for the client."""
    received = []
    request_id = None
    with pytest.raises((anthropic.APIError, httpx2.HTTPError)):
        with clients(provider).messages.stream(
            model=MODEL, max_tokens=16, messages=user("[[scenario:broken]] [[say:cut short]] hi")
        ) as stream:
            request_id = stream.response.headers.get("x-tollgate-request-id")
            for event in stream:
                received.append(event.type)
            stream.get_final_message()
    assert "message_stop" not in received, f"a cut stream looked complete: {received}"
    assert request_id
    record = gw.record(request_id)
    assert record.get("provider") == provider, record
    assert record.get("error_type"), f"journal does not show the stream failed: {record}"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_wrong_bedrock_secret_names_the_provider(stream, clients, bedrock_fake, gw):
    """A misconfigured credential is answered at once, and the message says which provider it is:
    the gateway's operator, not the model, has to fix it."""
    started = time.monotonic()
    with pytest.raises(anthropic.APIStatusError) as caught:
        _create(clients("bedrock-wrong-secret"), stream, model=MODEL, max_tokens=16,
                messages=user("hi"))  # fmt: skip
    elapsed = time.monotonic() - started
    assert elapsed < 10, f"took {elapsed:.1f}s"
    exc = caught.value
    seen = bedrock_fake.model_requests()
    assert len(seen) == 1, bedrock_fake.summary()
    assert seen[0]["status"] == 403 and "signature mismatch" in (seen[0]["error"] or ""), seen[0]
    assert isinstance(exc.body, dict) and exc.body.get("type") == "error", exc.body
    assert 400 <= exc.status_code < 600, exc.status_code
    message = exc.body["error"].get("message", "")
    assert "bedrock-wrong-secret" in message, (
        f"the error does not name the provider: {exc.status_code} {exc.body}"
    )
    for secret in (WRONG_SECRET, BEDROCK_SECRET_KEY):
        assert secret not in json.dumps(exc.body), f"error exposes a secret: {exc.body}"
    assert_error_journal(gw, exc, "bedrock-wrong-secret")


# --- betas and model mapping -------------------------------------------------------------------


def test_bedrock_receives_only_accepted_betas(clients, bedrock_fake, gw):
    betas = [
        "claude-code-20250219",
        "interleaved-thinking-2025-05-14",
        "context-management-2025-06-27",
        "advanced-tool-use-2025-11-20",
        "prompt-caching-scope-2026-01-05",
        "some-future-beta-2099-01-01",
    ]
    raw = clients("bedrock").beta.messages.with_raw_response.create(
        model=MODEL, max_tokens=32, messages=user("[[say:betas ok]] hi"), betas=betas,
        extra_query={"beta": "true"},
    )  # fmt: skip
    message = raw.parse()
    record = only_model_request(bedrock_fake, gw)
    assert_accepted(record, bedrock_fake)
    assert_routed("bedrock", record, False, PROVIDER_IDS["bedrock"])
    sent = json.loads(record["body"]).get("anthropic_beta")
    assert isinstance(sent, list), f"anthropic_beta in the body: {sent!r}"
    assert "claude-code-20250219" not in sent
    # Forwarded as is, or under Bedrock's name for the same feature; the rest dropped.
    assert sorted(sent) == sorted(
        [
            "interleaved-thinking-2025-05-14",
            "context-management-2025-06-27",
            "tool-search-tool-2025-10-19",
        ]
    ), sent
    assert message.content[0].text == "betas ok"
    assert_journal(
        gw, raw.headers.get("x-tollgate-request-id"), "bedrock", stream=False,
        usage=answered_usage("bedrock", record),
    )  # fmt: skip


def test_bedrock_claude_code_beta_alone_is_dropped(clients, bedrock_fake, gw):
    with clients("bedrock").messages.stream(
        model=MODEL, max_tokens=32, messages=user("[[say:no betas]] hi"),
        extra_headers={"anthropic-beta": "claude-code-20250219"},
    ) as stream:  # fmt: skip
        final = stream.get_final_message()
        request_id = stream.response.headers.get("x-tollgate-request-id")
    record = only_model_request(bedrock_fake, gw)
    assert_accepted(record, bedrock_fake)
    assert json.loads(record["body"]).get("anthropic_beta") in (None, []), record["body"]
    assert final.content[0].text == "no betas"
    assert_journal(gw, request_id, "bedrock", stream=True, usage=answered_usage("bedrock", record))


@pytest.mark.parametrize("provider", ALL)
def test_alias_maps_to_the_provider_model_id(provider, clients, fakes, gw):
    """`sonnet` is an alias of the catalogue entry: the provider gets its own id, and the cost is
    the catalogue model's."""
    raw = clients(provider).messages.with_raw_response.create(
        model="sonnet", max_tokens=32, messages=user("[[say:alias ok]] hi")
    )
    message = raw.parse()
    fake = fakes[provider]
    record = only_model_request(fake, gw)
    assert_accepted(record, fake)
    assert_routed(provider, record, False, PROVIDER_IDS[provider])
    assert message.content[0].text == "alias ok"
    journal = gw.record(raw.headers.get("x-tollgate-request-id"))
    assert journal.get("provider") == provider, journal
    assert journal.get("model") in ("sonnet", MODEL), journal
    usage = answered_usage(provider, record)
    assert (journal.get("input_tokens"), journal.get("output_tokens")) == (120, 30), journal
    assert journal.get("cost_nanos") == cost_nanos(usage), (
        f"alias priced as {journal.get('cost_nanos')!r} (unknown={journal.get('cost_unknown')}), "
        f"want {cost_nanos(usage)}: {journal}"
    )


def test_unlisted_model_goes_through_under_its_own_id(clients, bedrock_fake, gw):
    raw = clients("bedrock").messages.with_raw_response.create(
        model=UNLISTED_BEDROCK_ID, max_tokens=32, messages=user("[[say:own id]] hi")
    )
    record = only_model_request(bedrock_fake, gw)
    assert_accepted(record, bedrock_fake)
    assert_routed("bedrock", record, False, UNLISTED_BEDROCK_ID)
    assert raw.parse().content[0].text == "own id"
    assert_journal(
        gw, raw.headers.get("x-tollgate-request-id"), "bedrock", stream=False,
        usage=answered_usage("bedrock", record), model=UNLISTED_BEDROCK_ID, prices=OPUS_41,
    )  # fmt: skip


@pytest.mark.parametrize("provider", ["vertex", "oai"])
def test_model_not_served_by_provider_is_refused_before_the_call(provider, clients, fakes, gw):
    with pytest.raises(anthropic.NotFoundError) as caught:
        clients(provider).messages.create(
            model=BEDROCK_ONLY_MODEL, max_tokens=16, messages=user("hi")
        )
    assert_anthropic_error(caught.value, 404, "not_found_error")
    assert provider in caught.value.body["error"]["message"], caught.value.body
    assert fakes[provider].model_requests() == [], fakes[provider].summary()


def test_first_provider_is_the_default(clients, bedrock_fake, vertex_fake, openai_fake, gw):
    raw = clients(None).messages.with_raw_response.create(
        model=BEDROCK_ONLY_MODEL, max_tokens=16, messages=user("[[say:default]] hi")
    )
    record = only_model_request(bedrock_fake, gw)
    assert_accepted(record, bedrock_fake)
    assert_routed("bedrock", record, False, BEDROCK_ONLY_ID)
    assert vertex_fake.model_requests() == [] and openai_fake.model_requests() == []
    assert raw.parse().content[0].text == "default"
    journal = gw.record(raw.headers.get("x-tollgate-request-id"))
    assert journal.get("provider") == "bedrock", journal
    assert (journal.get("input_tokens"), journal.get("output_tokens")) == (120, 30), journal
    assert isinstance(journal.get("cost_nanos"), int) and journal["cost_nanos"] > 0, journal


# --- OpenAI client, OpenAI-dialect upstream: the body passes through ---------------------------

# Fields the Anthropic form cannot carry; a pass-through must deliver every one unchanged.
OPENAI_ONLY_FIELDS: dict[str, Any] = {
    "logprobs": True,
    "top_logprobs": 2,
    "n": 2,
    "seed": 7,
    "response_format": {
        "type": "json_schema",
        "json_schema": {"name": "w", "schema": {"type": "object"}, "strict": True},
    },
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ],
    "tool_choice": "required",
    "parallel_tool_calls": False,
}


@pytest.fixture(scope="module")
def oai_client(gw, key):
    import openai

    client = openai.OpenAI(
        api_key=key["key"],
        base_url=f"{gw.url}/v1",
        max_retries=0,
        timeout=30.0,
        default_headers={"x-tollgate-provider": "oai"},
        http_client=openai.DefaultHttpxClient(trust_env=False),
    )
    yield client
    client.close()


def test_openai_client_body_passes_through(oai_client, fakes, gw):
    fake = fakes["oai"]
    messages = [{"role": "user", "content": "[[say:passed through]] hi"}]
    raw = oai_client.chat.completions.with_raw_response.create(
        model=MODEL, messages=messages, **OPENAI_ONLY_FIELDS
    )
    record = only_model_request(fake, gw)
    assert_accepted(record, fake)
    sent = json.loads(record["body"])
    assert sent == {"model": PROVIDER_IDS["oai"], "messages": messages, **OPENAI_ONLY_FIELDS}, sent

    # The upstream's answer, untouched: its id, its model, both choices, the log probabilities.
    answer = json.loads(raw.http_response.content)
    assert answer["id"] == f"chatcmpl-mock{record['n']}", answer["id"]
    assert answer["model"] == PROVIDER_IDS["oai"], answer["model"]
    completion = raw.parse()
    assert [c.index for c in completion.choices] == [0, 1]
    assert all(c.message.content == "passed through" for c in completion.choices)
    tokens = completion.choices[0].logprobs.content
    assert "".join(t.token for t in tokens) == "passed through", tokens
    assert all(len(t.top_logprobs) == 1 for t in tokens), tokens
    assert completion.usage.prompt_tokens == record["usage"]["prompt_tokens"]
    assert_journal(
        gw,
        raw.headers.get("x-tollgate-request-id"),
        "oai",
        stream=False,
        usage=answered_usage("oai", record),
    )


def test_openai_client_gets_the_upstream_retry_and_rate_limit_headers(oai_client, fakes, gw):
    """What the OpenAI SDK acts on comes through a pass-through: it waits as the upstream says."""
    import openai

    client = oai_client.with_options(max_retries=0)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "[[scenario:error:429:rate_limit_exceeded]] hi"}],
        )
    headers = caught.value.response.headers
    assert headers.get("retry-after") == "7", dict(headers)
    assert headers.get("x-should-retry") == "true", dict(headers)
    assert headers.get("x-ratelimit-remaining-requests") == "0", dict(headers)
    assert headers.get("x-ratelimit-reset-requests") == "7s", dict(headers)

    for stream in (False, True):
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=stream
        )
        record = fakes["oai"].model_requests()[-1]
        assert raw.headers.get("x-request-id") == f"req_mock_{record['n']}", dict(raw.headers)
        # Only what clients act on: the upstream's other headers stay behind.
        assert "openai-processing-ms" not in raw.headers, dict(raw.headers)
        assert raw.headers.get("x-tollgate-request-id"), dict(raw.headers)
        raw.parse()


@pytest.mark.parametrize("include_usage", [False, True], ids=["no-usage", "usage"])
def test_openai_client_stream_passes_through(include_usage, oai_client, fakes, gw):
    """The gateway asks for usage to meter the stream; a client that did not ask gets exactly
    the stream it would get direct, without the usage chunk."""
    fake = fakes["oai"]
    extra = {"stream_options": {"include_usage": True}} if include_usage else {}
    stream = oai_client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": "[[say:streamed through]] hi"}],
        stream=True,
        logprobs=True,
        n=2,
        **extra,
    )
    request_id = stream.headers.get("x-tollgate-request-id")
    chunks = list(stream.parse())
    record = only_model_request(fake, gw)
    assert_accepted(record, fake)
    sent = json.loads(record["body"])
    assert sent["stream_options"] == {"include_usage": True}, sent
    assert sent["n"] == 2 and sent["logprobs"] is True, sent
    assert record["usage_reported"] is True

    for i in (0, 1):
        text = "".join(
            c.delta.content or "" for ch in chunks for c in ch.choices if c.index == i
        )
        assert text == "streamed through", (i, chunks)
    assert any(c.logprobs for ch in chunks for c in ch.choices), chunks
    assert all(ch.model == PROVIDER_IDS["oai"] for ch in chunks)
    if include_usage:
        assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 30
    else:
        assert all(ch.choices for ch in chunks), chunks[-1]
        assert all(getattr(ch, "usage", None) is None for ch in chunks)
    assert_journal(gw, request_id, "oai", stream=True, usage=answered_usage("oai", record))


def test_openai_stream_without_usage_has_no_usage_member(gw, key, fakes):
    # The SDK reads a missing member and `"usage": null` alike; the bytes tell them apart.
    response = httpx2.post(
        f"{gw.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {key['key']}", "x-tollgate-provider": "oai"},
        json={"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "hi"}]},
        timeout=30.0,
    )
    assert response.status_code == 200, response.text
    record = only_model_request(fakes["oai"], gw)
    assert json.loads(record["body"])["stream_options"] == {"include_usage": True}
    assert "usage" not in response.text, response.text
    assert response.text.endswith("data: [DONE]\n\n"), response.text[-200:]


def test_openai_only_fields_towards_an_anthropic_upstream_are_refused(gw, key, fakes):
    """Only a conversion would lose `n`: towards Bedrock the client gets a 400 naming it."""
    import openai

    with openai.OpenAI(
        api_key=key["key"],
        base_url=f"{gw.url}/v1",
        max_retries=0,
        default_headers={"x-tollgate-provider": "bedrock"},
        http_client=openai.DefaultHttpxClient(trust_env=False),
    ) as client:
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}], n=2
            )
    assert err.value.body["type"] == "invalid_request_error", err.value.body
    assert "n" in err.value.body["message"], err.value.body
    assert fakes["bedrock"].model_requests() == []


def test_a_policy_clamp_reaches_a_passed_through_body(configured_gateway_factory, openai_fake):
    import openai

    config = gateway_toml(
        providers=[openai_provider(openai_fake)],
        models=[{"name": MODEL, "providers": {"oai": PROVIDER_IDS["oai"]}}],
    )
    config += '\n[[policies]]\nscope = "org"\nmax_tokens = { ceiling = 50, action = "clamp" }\n'
    clamped = configured_gateway_factory(config)
    key = clamped.create_key("alice", "platform", name="clamp")
    with openai.OpenAI(
        api_key=key["key"],
        base_url=f"{clamped.url}/v1",
        max_retries=0,
        http_client=openai.DefaultHttpxClient(trust_env=False),
    ) as client:
        hi = [{"role": "user", "content": "hi"}]
        client.chat.completions.create(model=MODEL, messages=hi, max_completion_tokens=500)
        client.chat.completions.create(model=MODEL, messages=hi, max_tokens=20, n=2)
        client.chat.completions.create(model=MODEL, messages=hi)
    bodies = [json.loads(r["body"]) for r in openai_fake.model_requests()]
    assert bodies[0]["max_completion_tokens"] == 50, bodies[0]
    # Below the ceiling, and a body only the pass-through can carry: as the client sent it.
    assert bodies[1]["max_tokens"] == 20 and bodies[1]["n"] == 2, bodies[1]
    assert bodies[2]["max_completion_tokens"] == 50, bodies[2]
