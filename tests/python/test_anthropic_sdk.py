"""The official `anthropic` Python SDK against the gateway, in front of the scripted upstream.

Every exchange with the module's gateway is recorded through an httpx event hook, so the last test
can check the journal: exactly one record per request, with the identity, tokens and cost the
request should have produced.

Note on credentials: anthropic 2.x sends both `api_key=` and `auth_token=` as
`Authorization: Bearer`; the `x-api-key` style is exercised with an explicit header.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import time
import uuid
from typing import Any

import anthropic
import httpx2
import pytest

from tollgate_shared_fixtures import header_value, header_values

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning"),
]

MODEL = "claude-sonnet-4-5"
# claude-sonnet-4-5 per million tokens: input $3, output $15, 5-minute cache write $3.75,
# cache read $0.30; the scripted upstream's default usage is 120 in / 30 out, plus 200 written
# and 1000 read from the cache when the body contains "cache_control".
COST_NANOS = 120 * 3_000 + 30 * 15_000
COST_NANOS_CACHED = COST_NANOS + 200 * 3_750 + 1_000 * 300

TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": ["location"],
    },
}

# In an expectation: the journal field must be set (non-null), whatever its value.
ANY = object()

# Headers a proxy may legitimately rewrite or must not forward.
HOP_OR_CREDENTIAL = {
    "authorization",
    "x-api-key",
    "host",
    "content-length",
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "upgrade",
    "accept-encoding",
}


class Exchanges:
    """What the tests sent to the gateway and what came back, in order."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.last_sent: httpx2.Request | None = None

    def on_request(self, request: httpx2.Request) -> None:
        request.read()
        self.last_sent = request

    def on_response(self, response: httpx2.Response) -> None:
        self.items.append(
            {
                "base": f"{response.request.url.scheme}://{response.request.url.netloc.decode()}",
                "method": response.request.method,
                "path": response.request.url.raw_path.decode(),
                "status": response.status_code,
                "request_id": response.headers.get("x-tollgate-request-id"),
                "expect": {},
            }
        )

    def expect(self, **fields: Any) -> None:
        """What the journal record of the latest exchange must contain."""
        assert self.items, "no exchange recorded"
        self.items[-1]["expect"].update(fields)

    def last(self) -> dict[str, Any]:
        assert self.items, "no exchange recorded"
        return self.items[-1]

    def hooks(self) -> dict[str, list]:
        return {"request": [self.on_request], "response": [self.on_response]}


@pytest.fixture(scope="module")
def exchanges() -> Exchanges:
    return Exchanges()


@pytest.fixture(scope="module")
def make_client(gateway, exchanges):
    """Builds SDK clients for a gateway key in one of three credential styles."""
    made: list[anthropic.Anthropic] = []

    def make(key: str, style: str = "api_key", base_url: str | None = None) -> anthropic.Anthropic:
        http_client = anthropic.DefaultHttpxClient(event_hooks=exchanges.hooks(), trust_env=False)
        common = dict(
            base_url=base_url or gateway.url,
            max_retries=0,
            timeout=30.0,
            http_client=http_client,
        )
        if style == "api_key":
            client = anthropic.Anthropic(api_key=key, **common)
        elif style == "auth_token":
            client = anthropic.Anthropic(auth_token=key, **common)
        elif style == "x-api-key":
            # An explicit credential keeps the SDK from searching the environment; the omitted
            # Authorization leaves x-api-key as the only credential on the wire.
            client = anthropic.Anthropic(
                api_key=key,
                default_headers={"Authorization": anthropic.omit, "x-api-key": key},
                **common,
            )
        else:
            raise ValueError(style)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture(scope="module")
def client(make_client, gateway_key):
    return make_client(gateway_key["key"])


@pytest.fixture(scope="module")
def raw_http(exchanges):
    """A plain HTTP client for bodies the SDK would never send."""
    http = httpx2.Client(event_hooks=exchanges.hooks(), timeout=30.0, trust_env=False)
    yield http
    http.close()


@pytest.fixture(autouse=True)
def _fresh_upstream_recording(upstream):
    upstream.clear()


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


def decoded_body(record: dict[str, Any]) -> bytes:
    return base64.b64decode(record["body_b64"])


def assert_clean_upstream_headers(record: dict[str, Any], upstream) -> None:
    headers = record["headers"]
    assert header_values(headers, "authorization") == [], "client Authorization reached upstream"
    assert header_values(headers, "x-api-key") == [upstream.api_key], (
        "upstream must see exactly one x-api-key, the provider's key"
    )
    leaked = [name for name, _ in headers if name.lower().startswith("x-tollgate-")]
    assert leaked == [], f"x-tollgate-* headers reached upstream: {leaked}"


def assert_anthropic_error(exc: anthropic.APIStatusError, status: int, error_type: str) -> None:
    assert exc.status_code == status, f"status {exc.status_code}, body {exc.body!r}"
    assert isinstance(exc.body, dict), f"error body is not JSON: {exc.body!r}"
    assert exc.body.get("type") == "error", exc.body
    assert exc.body.get("error", {}).get("type") == error_type, exc.body
    assert isinstance(exc.body["error"].get("message"), str) and exc.body["error"]["message"]
    assert exc.response.headers.get("x-tollgate-request-id"), "error lacks x-tollgate-request-id"


def message_number(message_id: str) -> str:
    match = re.fullmatch(r"msg_mock_(\d+)", message_id)
    assert match, f"message id {message_id!r} is not the upstream's"
    return match.group(1)


# --- success paths ---------------------------------------------------------------------------


def test_non_streaming_message(client, upstream, exchanges):
    raw = client.messages.with_raw_response.create(
        model=MODEL, max_tokens=64, messages=user("[[say:pong-7]] hello")
    )
    message = raw.parse()
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "pong-7"
    assert message.model == MODEL
    assert message.stop_reason == "end_turn"

    record = upstream.only_request()
    answered = record["usage"]
    assert message.usage.input_tokens == answered["input_tokens"] == 120
    assert message.usage.output_tokens == answered["output_tokens"] == 30
    assert message.usage.cache_creation_input_tokens == answered["cache_creation_input_tokens"]
    assert message.usage.cache_read_input_tokens == answered["cache_read_input_tokens"]

    n = message_number(message.id)
    assert message._request_id == f"req_mock_{n}", "upstream request-id header not passed back"
    assert raw.headers.get("x-tollgate-request-id")
    assert record["path"] == "/v1/messages"
    assert_clean_upstream_headers(record, upstream)
    exchanges.expect(
        status=200, user="alice", team="platform", model=MODEL, provider="anthropic",
        stream=False, input_tokens=120, output_tokens=30, cache_creation_input_tokens=0,
        cache_read_input_tokens=0, cost_nanos=COST_NANOS, upstream_request_id=f"req_mock_{n}",
    )  # fmt: skip


def test_streaming_message(client, upstream, exchanges):
    with client.messages.stream(
        model=MODEL, max_tokens=64, messages=user("[[say:streamed pong-8]] hello")
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "streamed pong-8"
    assert final.content[0].text == "streamed pong-8"
    assert final.stop_reason == "end_turn"
    record = upstream.only_request()
    assert json.loads(decoded_body(record))["stream"] is True
    assert final.usage.input_tokens == record["usage"]["input_tokens"] == 120
    assert final.usage.output_tokens == record["usage"]["output_tokens"] == 30
    message_number(final.id)
    exchanges.expect(
        status=200, user="alice", team="platform", model=MODEL, stream=True,
        input_tokens=120, output_tokens=30, cost_nanos=COST_NANOS,
    )  # fmt: skip


def test_stream_passes_unknown_events_and_fields(gateway, gateway_key, raw_http, exchanges):
    body = {"model": MODEL, "max_tokens": 32, "stream": True, "messages": user("hi")}
    with raw_http.stream(
        "POST",
        f"{gateway.url}/v1/messages",
        json=body,
        headers={
            "x-api-key": gateway_key["key"],
            "anthropic-version": "2023-06-01",
            "x-mock-scenario": "unknown-event",
        },
    ) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        raw = response.read().decode()
    assert "event: mystery_event\ndata: " in raw, "unknown SSE event dropped"
    assert '"zzz_extra":true' in raw, "unknown message field dropped"
    assert "event: ping\n" in raw
    assert raw.rstrip().endswith('event: message_stop\ndata: {"type":"message_stop"}')
    exchanges.expect(status=200, user="alice", stream=True, input_tokens=120, output_tokens=30)


def test_count_tokens(client, upstream, exchanges):
    counted = client.messages.count_tokens(
        model=MODEL, messages=user("How many tokens is this sentence?"), tools=[TOOL]
    )
    record = upstream.only_request()
    assert record["path"].split("?")[0] == "/v1/messages/count_tokens"
    assert record["scenario"] == "count_tokens"
    assert counted.input_tokens == record["body_len"] // 4
    assert_clean_upstream_headers(record, upstream)
    exchanges.expect(status=200, user="alice", team="platform")


def test_tool_use_round_trip(client, upstream, exchanges):
    scenario = {"x-mock-scenario": "tool"}
    messages = user("What is the weather in Paris?")
    first = client.messages.create(
        model=MODEL, max_tokens=256, tools=[TOOL], messages=messages, extra_headers=scenario
    )
    assert first.stop_reason == "tool_use"
    tool_uses = [b for b in first.content if b.type == "tool_use"]
    assert len(tool_uses) == 1
    call = tool_uses[0]
    assert call.name == "get_weather"
    assert call.input == {"location": "Paris"}
    exchanges.expect(status=200, user="alice", input_tokens=120, output_tokens=30)

    messages = messages + [
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": call.id, "content": "18°C and sunny"}
            ],
        },
    ]
    second = client.messages.create(
        model=MODEL, max_tokens=256, tools=[TOOL], messages=messages, extra_headers=scenario
    )
    assert second.stop_reason == "end_turn"
    assert second.content[0].text == "tool result was: 18°C and sunny"
    exchanges.expect(status=200, user="alice", input_tokens=120, output_tokens=30)
    assert len(upstream.model_requests()) == 2


def test_tool_use_streaming(client, exchanges):
    with client.messages.stream(
        model=MODEL, max_tokens=256, tools=[TOOL], messages=user("Weather?"),
        extra_headers={"x-mock-scenario": "tool", "x-mock-tool-input": '{"location":"Zurich","days":3}'},
    ) as stream:  # fmt: skip
        final = stream.get_final_message()
    call = [b for b in final.content if b.type == "tool_use"]
    assert len(call) == 1 and call[0].input == {"location": "Zurich", "days": 3}
    assert final.stop_reason == "tool_use"
    exchanges.expect(status=200, stream=True, output_tokens=30)


def test_beta_messages_forward_betas_and_query(client, upstream, exchanges):
    betas = ["interleaved-thinking-2025-05-14", "context-management-2025-06-27", "effort-2025-11-24"]
    # anthropic 2.x no longer adds `?beta=true` by itself; Claude Code does, so send it too.
    message = client.beta.messages.create(
        model=MODEL, max_tokens=32, messages=user("[[say:beta ok]] hi"), betas=betas,
        extra_query={"beta": "true"},
    )  # fmt: skip
    assert message.content[0].text == "beta ok"
    sent = exchanges.last_sent
    assert sent.url.query == b"beta=true"
    record = upstream.only_request()
    assert record["path"] == "/v1/messages?beta=true"
    assert header_value(record["headers"], "anthropic-beta") == ",".join(betas)
    assert header_value(record["headers"], "anthropic-beta") == sent.headers["anthropic-beta"]
    assert header_value(record["headers"], "anthropic-version") == sent.headers["anthropic-version"]
    exchanges.expect(status=200, user="alice", team="platform", input_tokens=120)


@pytest.mark.parametrize("style", ["api_key", "auth_token", "x-api-key"])
def test_credential_styles(style, make_client, gateway_key, upstream, exchanges):
    client = make_client(gateway_key["key"], style)
    message = client.messages.create(
        model=MODEL, max_tokens=16, messages=user(f"[[say:auth {style}]] hi")
    )
    assert message.content[0].text == f"auth {style}"
    sent = exchanges.last_sent.headers
    if style == "x-api-key":
        assert sent.get("x-api-key") == gateway_key["key"] and "authorization" not in sent
    else:
        assert sent.get("authorization") == f"Bearer {gateway_key['key']}"
        assert "x-api-key" not in sent
    assert_clean_upstream_headers(upstream.only_request(), upstream)
    exchanges.expect(status=200, user="alice", team="platform", key_id=gateway_key["id"])


def test_sdk_request_reaches_upstream_byte_for_byte(make_client, gateway_key, upstream, exchanges):
    client = make_client(gateway_key["key"])
    session = str(uuid.uuid4())
    client.messages.create(
        model=MODEL,
        max_tokens=100,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=user("Ünïcödé ✓ and \"quotes\" [[say:fidelity]]"),
        metadata={"user_id": json.dumps({"device_id": "d" * 64, "session_id": session})},
        extra_headers={"X-Claude-Code-Session-Id": session, "X-Acme-Trace": "trace-1"},
        extra_body={"zz_unknown_field": {"nested": [1, 2.5, None, True]}},
    )
    sent = exchanges.last_sent
    record = upstream.only_request()
    assert decoded_body(record) == sent.content, "request body changed on the way upstream"
    assert record["body_len"] == len(sent.content)
    assert_clean_upstream_headers(record, upstream)

    upstream_headers: dict[str, list[str]] = {}
    for name, value in record["headers"]:
        upstream_headers.setdefault(name.lower(), []).append(value)
    for name, value in sent.headers.multi_items():
        if name.lower() in HOP_OR_CREDENTIAL:
            continue
        assert upstream_headers.get(name.lower()) == [value], (
            f"header {name}: sent {value!r}, upstream saw {upstream_headers.get(name.lower())!r}"
        )
    exchanges.expect(
        status=200, user="alice", session_id=session, input_tokens=120, output_tokens=30,
        cache_creation_input_tokens=200, cache_read_input_tokens=1000, cost_nanos=COST_NANOS_CACHED,
    )  # fmt: skip


def test_raw_claude_code_shaped_body_is_forwarded_verbatim(gateway, gateway_key, raw_http, upstream, exchanges):
    session = str(uuid.uuid4())
    # Odd key order, spacing, escapes and fields no schema knows: any re-serialisation shows.
    body = (
        '{"stream":false,  "max_tokens":64,"model":"' + MODEL + '",\n'
        ' "messages":[{"role":"user","content":[{"type":"text","text":"caf\\u00e9 \\ud83d\\ude00 [[say:raw]]"}]},'
        '{"role":"system","content":[{"type":"text","text":"# Environment","cache_control":{"type":"ephemeral"}}],'
        '"output_config":{"effort":"medium"}}],\n'
        ' "system":[{"type":"text","text":"x-anthropic-billing-header: cc_version=2.1.332.abc; cc_entrypoint=sdk-cli;"}],'
        '"thinking":{"type":"adaptive","display":"omitted"},'
        '"context_management":{"edits":[{"type":"clear_thinking_20251015","keep":"all"}]},'
        '"output_config":{"effort":"medium"},"safeguards":[{"type":"dangerous_tool_use"}],'
        '"metadata":{"user_id":"{\\"device_id\\":\\"abc\\",\\"account_uuid\\":\\"\\",\\"session_id\\":\\"' + session + '\\"}"},'
        '"zz_number":1.50e+2 }'
    ).encode()
    response = raw_http.post(
        f"{gateway.url}/gw/anthropic/v1/messages?beta=true",
        content=body,
        headers={
            "authorization": f"Bearer {gateway_key['key']}",
            "content-type": "application/json",
            "anthropic-version": "2023-06-01",
            "anthropic-beta": "claude-code-20250219,advanced-tool-use-2025-11-20",
            "x-claude-code-session-id": session,
            "x-tollgate-project": "fidelity",
            "x-tollgate-tags": "alpha,beta",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["content"][0]["text"] == "raw"
    record = upstream.only_request()
    assert decoded_body(record) == body
    assert record["path"] == "/v1/messages?beta=true", "prefix must be dropped, query kept"
    assert header_value(record["headers"], "anthropic-beta") == (
        "claude-code-20250219,advanced-tool-use-2025-11-20"
    )
    assert_clean_upstream_headers(record, upstream)
    exchanges.expect(
        status=200, user="alice", team="platform", project="fidelity", session_id=session,
        cache_creation_input_tokens=200, cache_read_input_tokens=1000, cost_nanos=COST_NANOS_CACHED,
        tags=("alpha", "beta"),
    )  # fmt: skip


def test_custom_headers_pass_through(client, upstream, exchanges):
    session = str(uuid.uuid4())
    agent = "a0123456789abcdef"
    client.messages.create(
        model=MODEL, max_tokens=16, messages=user("hi"),
        extra_headers={
            "X-Claude-Code-Session-Id": session, "x-claude-code-agent-id": agent,
            "x-app": "cli", "X-Acme-Routing": "blue",
        },
    )  # fmt: skip
    headers = upstream.only_request()["headers"]
    assert header_value(headers, "x-claude-code-session-id") == session
    assert header_value(headers, "x-claude-code-agent-id") == agent
    assert header_value(headers, "x-app") == "cli"
    assert header_value(headers, "x-acme-routing") == "blue"
    exchanges.expect(status=200, user="alice", session_id=session, agent_id=agent)


def test_gzip_request_body_is_decoded(gateway, gateway_key, raw_http, upstream, exchanges):
    body = json.dumps(
        {"model": MODEL, "max_tokens": 16, "messages": user("[[say:gzip ok]] " + "pad " * 500)}
    ).encode()
    response = raw_http.post(
        f"{gateway.url}/v1/messages",
        content=gzip.compress(body),
        headers={
            "x-api-key": gateway_key["key"],
            "content-type": "application/json",
            "content-encoding": "gzip",
            "anthropic-version": "2023-06-01",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["content"][0]["text"] == "gzip ok"
    record = upstream.only_request()
    assert decoded_body(record) == body
    assert header_values(record["headers"], "content-encoding") == []
    exchanges.expect(status=200, user="alice", input_tokens=120, output_tokens=30)


# --- errors ----------------------------------------------------------------------------------


def test_invalid_gateway_key(make_client, upstream, exchanges):
    client = make_client("tg-not-a-real-key-" + uuid.uuid4().hex)
    with pytest.raises(anthropic.AuthenticationError) as caught:
        client.messages.create(model=MODEL, max_tokens=16, messages=user("hi"))
    exc = caught.value
    assert_anthropic_error(exc, 401, "authentication_error")
    assert exc.response.headers.get("x-should-retry") == "false"
    assert upstream.model_requests() == []
    exchanges.expect(status=401, error_type="authentication_error")


def test_missing_gateway_key(gateway, raw_http, upstream, exchanges):
    response = raw_http.post(
        f"{gateway.url}/v1/messages",
        json={"model": MODEL, "max_tokens": 16, "messages": user("hi")},
        headers={"anthropic-version": "2023-06-01"},
    )
    assert response.status_code == 401, response.text
    assert response.json()["error"]["type"] == "authentication_error"
    assert response.headers.get("x-should-retry") == "false"
    assert upstream.model_requests() == []
    exchanges.expect(status=401)


def test_revoked_key_is_refused_at_once(gateway, make_client, upstream, exchanges):
    key = gateway.create_key("alice", "platform", name="to-revoke")
    client = make_client(key["key"])
    client.messages.create(model=MODEL, max_tokens=16, messages=user("before revoke"))
    exchanges.expect(status=200, user="alice", key_id=key["id"])

    gateway.revoke_key(key["id"])
    started = time.monotonic()
    with pytest.raises(anthropic.AuthenticationError) as caught:
        client.messages.create(model=MODEL, max_tokens=16, messages=user("after revoke"))
    assert time.monotonic() - started < 5
    assert_anthropic_error(caught.value, 401, "authentication_error")
    assert caught.value.response.headers.get("x-should-retry") == "false"
    assert len(upstream.model_requests()) == 1, "a revoked key's request reached the upstream"
    exchanges.expect(status=401)


def test_upstream_429_keeps_retry_after(client, exchanges):
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(
            model=MODEL, max_tokens=16, messages=user("hi"),
            extra_headers={"x-mock-scenario": "error:429:rate_limit_error"},
        )  # fmt: skip
    exc = caught.value
    assert_anthropic_error(exc, 429, "rate_limit_error")
    assert exc.body["error"]["message"] == "Number of request tokens has exceeded your rate limit"
    assert exc.response.headers.get("retry-after") == "7"
    assert exc.response.headers.get("x-should-retry") == "true"
    assert re.fullmatch(r"req_mock_\d+", exc.response.headers.get("request-id", "")), (
        "upstream request-id not passed back"
    )
    exchanges.expect(status=429, user="alice", error_type="rate_limit_error")


def test_upstream_529_overloaded(client, exchanges):
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(
            model=MODEL, max_tokens=16, messages=user("hi"),
            extra_headers={"x-mock-scenario": "error:529:overloaded_error"},
        )  # fmt: skip
    exc = caught.value
    assert isinstance(exc, anthropic.InternalServerError), type(exc)
    assert_anthropic_error(exc, 529, "overloaded_error")
    exchanges.expect(status=529, user="alice", error_type="overloaded_error")


def test_malformed_json_body(gateway, gateway_key, raw_http, upstream, exchanges):
    response = raw_http.post(
        f"{gateway.url}/v1/messages",
        content=b'{"model": "' + MODEL.encode() + b'", "max_tokens": 16, "messages": [',
        headers={
            "x-api-key": gateway_key["key"],
            "content-type": "application/json",
            "anthropic-version": "2023-06-01",
        },
    )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error", body
    assert body["error"]["message"]
    assert response.headers.get("x-tollgate-request-id")
    assert upstream.model_requests() == [], "malformed JSON was forwarded"
    exchanges.expect(status=400, user="alice", error_type="invalid_request_error")


def test_oversize_body_is_413(gateway_factory, upstream):
    small = gateway_factory(max_body_bytes=1024)
    key = small.create_key("alice", "platform")["key"]
    client = anthropic.Anthropic(api_key=key, base_url=small.url, max_retries=0, timeout=30.0)
    with client:
        fits = client.messages.create(model=MODEL, max_tokens=16, messages=user("[[say:fits]]"))
        assert fits.content[0].text == "fits"
        upstream.clear()

        with pytest.raises(anthropic.APIStatusError) as caught:
            client.messages.create(model=MODEL, max_tokens=16, messages=user("x" * 4096))
        exc = caught.value
        assert isinstance(exc, anthropic.ContentTooLargeError), type(exc)
        assert_anthropic_error(exc, 413, "request_too_large")

    # Without a content-length the limit must hold while reading.
    def chunks():
        yield b'{"model":"' + MODEL.encode() + b'","max_tokens":16,"messages":[{"role":"user","content":"'
        for _ in range(8):
            yield b"y" * 512
        yield b'"}]}'

    with httpx2.Client(timeout=30.0, trust_env=False) as http:
        response = http.post(
            f"{small.url}/v1/messages",
            content=chunks(),
            headers={
                "x-api-key": key,
                "content-type": "application/json",
                "anthropic-version": "2023-06-01",
            },
        )
    assert response.status_code == 413, response.text
    assert response.json()["error"]["type"] == "request_too_large"
    assert upstream.model_requests() == []

    records = small.wait_for_records(lambda r: r.get("status") == 413, count=2)
    assert len(records) == 2, f"journal of the small gateway: {small.logs()}"
    assert all(r.get("user") == "alice" or r.get("user") is None for r in records)


def test_midstream_error_raises_while_iterating(client, exchanges):
    received = []
    with pytest.raises(anthropic.APIError) as caught:
        with client.messages.stream(
            model=MODEL, max_tokens=16, messages=user("[[say:never finished]] hi"),
            extra_headers={"x-mock-scenario": "midstream-error"},
        ) as stream:  # fmt: skip
            for event in stream:
                received.append(event.type)
    assert "message_start" in received, f"stream failed before any event: {caught.value!r}"
    exc = caught.value
    if isinstance(exc, anthropic.APIStatusError):
        assert exc.body.get("error", {}).get("type") == "overloaded_error", exc.body
    exchanges.expect(status=200, user="alice", stream=True, error_type="overloaded_error")


def test_broken_stream_raises(client, exchanges):
    received = []
    with pytest.raises((anthropic.APIError, httpx2.HTTPError)):
        with client.messages.stream(
            model=MODEL, max_tokens=16, messages=user("[[say:cut short]] hi"),
            extra_headers={"x-mock-scenario": "broken"},
        ) as stream:  # fmt: skip
            for event in stream:
                received.append(event.type)
            stream.get_final_message()
    assert "message_stop" not in received
    exchanges.expect(user="alice", stream=True, error_type=ANY)


# --- the journal -----------------------------------------------------------------------------


def _matches(expected: Any, actual: Any) -> bool:
    if isinstance(expected, tuple):  # tags: a list, or one comma-separated string
        if isinstance(actual, str):
            actual = [t.strip() for t in actual.split(",") if t.strip()]
        return list(actual or []) == list(expected)
    return actual == expected


def test_journal_has_one_record_per_request(gateway, exchanges):
    """Runs last: every exchange above has exactly one journal record with the expected fields."""
    mine = [e for e in exchanges.items if e["base"] == gateway.url]
    assert len(mine) >= 10, f"only {len(mine)} exchanges recorded; did the tests above run?"
    problems = [
        f"{e['method']} {e['path']} -> {e['status']}: no x-tollgate-request-id"
        for e in mine
        if not e["request_id"]
    ]
    wanted = {e["request_id"] for e in mine if e["request_id"]}
    records = gateway.wait_for_records(lambda r: r.get("id") in wanted, count=len(wanted))
    by_id: dict[str, list[dict]] = {}
    for record in records:
        by_id.setdefault(record["id"], []).append(record)

    for e in mine:
        if not e["request_id"]:
            continue
        found = by_id.get(e["request_id"], [])
        label = f"{e['method']} {e['path']} -> {e['status']} ({e['request_id']})"
        if len(found) != 1:
            problems.append(f"{label}: {len(found)} journal records")
            continue
        record = found[0]
        expect = {"status": e["status"], **e["expect"]}
        if expect["status"] == 200 and "user" in expect:
            expect.setdefault("model", MODEL)
            expect.setdefault("provider", "anthropic")
        for field, value in expect.items():
            if value is ANY:
                if record.get(field) is None:
                    problems.append(f"{label}: {field} is null")
            elif not _matches(value, record.get(field)):
                problems.append(f"{label}: {field} = {record.get(field)!r}, want {value!r}")
        if record.get("status") == 200 and record.get("input_tokens"):
            if record.get("cost_nanos") is None or record.get("cost_unknown"):
                problems.append(f"{label}: cost unknown for known model {record.get('model')!r}")

    model_records = [
        r for r in gateway.logs() if "/v1/" in (r.get("path") or "")
    ]
    if len(model_records) != len(mine):
        problems.append(
            f"{len(model_records)} model-API journal records for {len(mine)} requests sent"
        )
    assert not problems, "journal problems:\n  " + "\n  ".join(problems)
