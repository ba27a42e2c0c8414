"""Clients of the other APIs the gateway speaks, against the gateway in front of the scripted
Anthropic upstream: the official `openai` SDK (Chat Completions), boto3 `bedrock-runtime`
(InvokeModel) and the `anthropic` SDK's Bedrock and Vertex clients (InvokeModel, rawPredict).

Each client parses the answers with its own code, so a framing or shape the real service would
not produce fails here. Every request must leave exactly one journal record, attributed to the
key's user and team, with the upstream's usage (120 in, 30 out) and its cost.

Credentials: botocore refuses a Bedrock API key (`AWS_BEARER_TOKEN_BEDROCK`) on a plain-HTTP
endpoint ("Bearer authorization requires an HTTPS endpoint"), so boto3 signs with dummy AWS
credentials and carries the gateway key in `x-tollgate-api-key`. The Bedrock API-key style itself
(`Authorization: Bearer`) is what `AnthropicBedrock(api_key=…)` sends.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from typing import Any, Iterator

import anthropic
import boto3
import botocore.exceptions
import httpx2
import openai
import pytest
from botocore.config import Config

from tollgate_shared_fixtures import header_value, header_values

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning"),
]

MODEL = "claude-sonnet-4-5"
# claude-sonnet-4-5: input $3 and output $15 per million tokens; the scripted upstream reports
# 120 input and 30 output tokens, and no cache use unless the body asks for caching.
COST_NANOS = 120 * 3_000 + 30 * 15_000
BEDROCK_VERSION = "bedrock-2023-05-31"
VERTEX_PROJECT = "p"
VERTEX_REGION = "us-east5"
VERTEX_MODEL_PATH = (
    f"/vertex/v1/projects/{VERTEX_PROJECT}/locations/{VERTEX_REGION}/publishers/anthropic/models"
)
# Quotes, nesting and numbers, so a tool input split across stream events is only valid JSON
# once every piece is back in place.
TOOL_INPUT = {"location": 'Paris "15e"', "days": [1, 2, 3], "units": {"temp": "celsius"}}
OPENAI_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"location": {"type": "string"}},
            "required": ["location"],
        },
    },
}
# Fields a gateway must not pass on to the Messages API: the Bedrock/Vertex envelope.
ENVELOPE_FIELDS = ("anthropic_version", "anthropic_beta")


@dataclass
class Exchange:
    label: str
    status: int
    request_id: str | None


class Exchanges:
    """Every answer the module's clients got from the gateway, in order."""

    def __init__(self) -> None:
        self.items: list[Exchange] = []

    def on_httpx_response(self, response: httpx2.Response) -> None:
        request = response.request
        self.items.append(
            Exchange(
                f"{request.method} {request.url.raw_path.decode()} -> {response.status_code}",
                response.status_code,
                response.headers.get("x-tollgate-request-id"),
            )
        )

    def httpx_hooks(self) -> dict[str, list]:
        return {"response": [self.on_httpx_response]}

    def on_botocore_after_call(self, http_response, model, **_: Any) -> None:
        self.items.append(
            Exchange(
                f"boto3 {model.name} {http_response.url} -> {http_response.status_code}",
                http_response.status_code,
                http_response.headers.get("x-tollgate-request-id"),
            )
        )


@pytest.fixture(scope="module")
def exchanges() -> Exchanges:
    return Exchanges()


@pytest.fixture(autouse=True)
def _fresh_upstream_recording(upstream):
    upstream.clear()


@pytest.fixture
def journal(gateway, gateway_key, exchanges):
    """Checks the journal records of the requests the current test sent, in order."""
    start = len(exchanges.items)

    def check(*expected: dict[str, Any]) -> list[dict[str, Any]]:
        mine = exchanges.items[start:]
        assert len(mine) == len(expected), (
            f"{len(mine)} requests sent, {len(expected)} expected: {[e.label for e in mine]}"
        )
        missing = [e.label for e in mine if not e.request_id]
        assert not missing, f"answers without x-tollgate-request-id: {missing}"
        wanted = {e.request_id for e in mine}
        found = gateway.wait_for_records(lambda r: r.get("id") in wanted, count=len(wanted))
        records = []
        for exchange, want in zip(mine, expected):
            matching = [r for r in found if r.get("id") == exchange.request_id]
            assert len(matching) == 1, (
                f"{exchange.label}: {len(matching)} journal records for {exchange.request_id}"
            )
            record = matching[0]
            if want.get("user") == "alice":
                want = {"key_id": gateway_key["id"], **want}
            wrong = [
                f"{field} = {record.get(field)!r}, want {value!r}"
                for field, value in want.items()
                if record.get(field) != value
            ]
            assert not wrong, f"journal record of {exchange.label}: {'; '.join(wrong)}\n{record}"
            records.append(record)
        return records

    return check


def model_call(stream: bool, **fields: Any) -> dict[str, Any]:
    """The journal record of a request the upstream answered with its default usage."""
    return {
        "status": 200,
        "user": "alice",
        "team": "platform",
        "provider": "anthropic",
        "model": MODEL,
        "stream": stream,
        "input_tokens": 120,
        "output_tokens": 30,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cost_nanos": COST_NANOS,
        "cost_unknown": False,
        **fields,
    }


def forwarded(record: dict[str, Any], upstream, path: str = "/v1/messages") -> dict[str, Any]:
    """Checks what the upstream received for one request and returns the body it got."""
    assert record["path"] == path, f"upstream path {record['path']!r}"
    headers = record["headers"]
    assert header_values(headers, "authorization") == [], "client Authorization reached upstream"
    assert header_values(headers, "x-api-key") == [upstream.api_key], (
        "upstream must see exactly one x-api-key, the provider's key"
    )
    leaked = [name for name, _ in headers if name.lower().startswith("x-tollgate-")]
    assert leaked == [], f"x-tollgate-* headers reached upstream: {leaked}"
    assert header_value(headers, "anthropic-version"), "anthropic-version missing upstream"
    assert (header_value(headers, "content-type") or "").startswith("application/json"), headers
    body = json.loads(record["body"])
    left = [f for f in ENVELOPE_FIELDS if f in body]
    assert left == [], f"envelope fields {left} reached the Messages API: {record['body'][:500]}"
    return body


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


# --- OpenAI Chat Completions -----------------------------------------------------------------


@pytest.fixture(scope="module")
def make_openai(gateway, exchanges):
    made: list[openai.OpenAI] = []

    def make(key: str) -> openai.OpenAI:
        client = openai.OpenAI(
            base_url=gateway.url + "/v1",
            api_key=key,
            max_retries=0,
            timeout=30.0,
            http_client=openai.DefaultHttpxClient(
                event_hooks=exchanges.httpx_hooks(), trust_env=False
            ),
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture(scope="module")
def oai(make_openai, gateway_key):
    return make_openai(gateway_key["key"])


def test_openai_non_streaming(oai, upstream, journal):
    completion = oai.chat.completions.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "[[say:pong-oai]] hello"},
        ],
        max_tokens=64,
    )
    assert completion.object == "chat.completion"
    assert completion.model == MODEL
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "pong-oai"
    assert choice.finish_reason == "stop"
    assert not choice.message.tool_calls
    assert completion.usage.prompt_tokens == 120
    assert completion.usage.completion_tokens == 30
    assert completion.usage.total_tokens == 150

    body = forwarded(upstream.only_request(), upstream)
    assert body["model"] == MODEL
    assert body["max_tokens"] == 64
    assert body.get("stream") in (None, False)
    assert "Be brief." in json.dumps(body.get("system")), body
    assert body["messages"][-1]["role"] == "user"
    assert "pong-oai" in json.dumps(body["messages"][-1]["content"])
    journal(model_call(stream=False, path="/v1/chat/completions"))


def test_openai_streaming_with_usage_chunk(oai, upstream, journal):
    stream = oai.chat.completions.create(
        model=MODEL,
        messages=user("[[say:streamed pong-oai]] hello"),
        max_completion_tokens=64,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks, "no chunks"
    assert all(c.object == "chat.completion.chunk" for c in chunks), chunks
    assert len({c.id for c in chunks}) == 1, "chunks of one completion must share its id"
    text = "".join(ch.delta.content or "" for c in chunks for ch in c.choices)
    assert text == "streamed pong-oai"
    finishes = [ch.finish_reason for c in chunks for ch in c.choices if ch.finish_reason]
    assert finishes == ["stop"], finishes
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1, f"usage chunks: {usage_chunks}"
    usage_chunk = usage_chunks[0]
    # OpenAI sends usage in a final chunk with no choices.
    assert usage_chunk is chunks[-1] and usage_chunk.choices == [], usage_chunk
    assert usage_chunk.usage.prompt_tokens == 120
    assert usage_chunk.usage.completion_tokens == 30

    body = forwarded(upstream.only_request(), upstream)
    assert body["stream"] is True
    assert body["max_tokens"] == 64
    journal(model_call(stream=True, path="/v1/chat/completions"))


def test_openai_streaming_without_include_usage_has_no_usage_chunk(oai, journal):
    chunks = list(
        oai.chat.completions.create(
            model=MODEL, messages=user("[[say:no usage]] hi"), max_tokens=16, stream=True
        )
    )
    assert "".join(ch.delta.content or "" for c in chunks for ch in c.choices) == "no usage"
    assert [c for c in chunks if c.usage is not None] == []
    # The gateway still reads the usage from the upstream stream for the journal.
    journal(model_call(stream=True))


def collect_tool_stream(stream) -> tuple[str, dict[int, dict[str, Any]], list[str]]:
    """Text, tool calls by index (with every argument piece), and finish reasons of a stream."""
    text, calls, finishes = [], {}, []
    for chunk in stream:
        for choice in chunk.choices:
            delta = choice.delta
            if delta.content:
                text.append(delta.content)
            for call in delta.tool_calls or []:
                slot = calls.setdefault(call.index, {"id": None, "name": None, "pieces": []})
                if call.id:
                    assert slot["id"] in (None, call.id), f"tool call id changed: {call}"
                    slot["id"] = call.id
                if call.function and call.function.name:
                    slot["name"] = call.function.name
                if call.function and call.function.arguments:
                    slot["pieces"].append(call.function.arguments)
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    return "".join(text), calls, finishes


def test_openai_streaming_tool_call_round_trip(oai, upstream, journal):
    scenario = {"x-mock-scenario": "tool", "x-mock-tool-input": json.dumps(TOOL_INPUT)}
    messages: list[dict[str, Any]] = user("What is the weather in Paris?")
    text, calls, finishes = collect_tool_stream(
        oai.chat.completions.create(
            model=MODEL, messages=messages, tools=[OPENAI_TOOL], max_tokens=256, stream=True,
            stream_options={"include_usage": True}, extra_headers=scenario,
        )  # fmt: skip
    )
    assert text == "Let me check."
    assert finishes == ["tool_calls"], finishes
    assert list(calls) == [0], calls
    call = calls[0]
    assert call["id"], call
    assert call["name"] == "get_weather"
    # The upstream streams the input in several pieces; only their concatenation is JSON.
    assert len(call["pieces"]) >= 2, call["pieces"]
    arguments = "".join(call["pieces"])
    assert json.loads(arguments) == TOOL_INPUT, arguments

    first_body = forwarded(upstream.only_request(), upstream)
    assert [t["name"] for t in first_body["tools"]] == ["get_weather"]
    assert first_body["tools"][0]["input_schema"] == OPENAI_TOOL["function"]["parameters"]
    upstream.clear()

    messages = messages + [
        {
            "role": "assistant",
            "content": text,
            "tool_calls": [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call["id"], "content": "18C and sunny"},
    ]
    text, calls, finishes = collect_tool_stream(
        oai.chat.completions.create(
            model=MODEL, messages=messages, tools=[OPENAI_TOOL], max_tokens=256, stream=True,
            extra_headers=scenario,
        )  # fmt: skip
    )
    assert text == "tool result was: 18C and sunny"
    assert calls == {}
    assert finishes == ["stop"], finishes

    second_body = forwarded(upstream.only_request(), upstream)
    assistant, tool_turn = second_body["messages"][-2], second_body["messages"][-1]
    assert assistant["role"] == "assistant", second_body["messages"]
    tool_uses = [b for b in assistant["content"] if b.get("type") == "tool_use"]
    assert tool_uses == [
        {"type": "tool_use", "id": call["id"], "name": "get_weather", "input": TOOL_INPUT}
    ], assistant
    assert tool_turn["role"] == "user", second_body["messages"]
    results = [b for b in tool_turn["content"] if b.get("type") == "tool_result"]
    assert len(results) == 1 and results[0]["tool_use_id"] == call["id"], tool_turn
    assert "18C and sunny" in json.dumps(results[0].get("content")), results[0]
    journal(model_call(stream=True), model_call(stream=True))


def test_openai_invalid_key_is_authentication_error(make_openai, upstream, journal):
    client = make_openai("tg-not-a-real-key")
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model=MODEL, messages=user("hi"), max_tokens=16)
    error = caught.value
    assert error.status_code == 401
    body = error.response.json()
    # OpenAI's error shape, not Anthropic's `{"type":"error",…}`.
    assert set(body) == {"error"}, body
    assert isinstance(body["error"].get("message"), str) and body["error"]["message"], body
    assert isinstance(body["error"].get("type"), str) and body["error"]["type"], body
    assert error.response.headers.get("x-should-retry") == "false"
    assert upstream.model_requests() == []
    journal({"status": 401, "user": None, "input_tokens": 0, "cost_nanos": 0})


def test_openai_api_key_header(gateway, gateway_key, exchanges, upstream, journal):
    # Azure-style OpenAI clients send the key as `api-key`.
    with httpx2.Client(
        event_hooks=exchanges.httpx_hooks(), timeout=30.0, trust_env=False
    ) as http:
        response = http.post(
            f"{gateway.url}/v1/chat/completions",
            headers={"api-key": gateway_key["key"]},
            json={"model": MODEL, "messages": user("[[say:azure style]] hi"), "max_tokens": 16},
        )
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "azure style"
    forwarded(upstream.only_request(), upstream)
    journal(model_call(stream=False))


def test_openai_models_list(oai, upstream, journal):
    page = oai.models.list()
    ids = [m.id for m in page.data]
    assert MODEL in ids, ids
    assert "claude-opus-5-5" in ids, ids
    assert all(m.object == "model" for m in page.data), page.data
    assert upstream.model_requests() == []
    journal({"status": 200, "user": "alice", "team": "platform", "cost_nanos": 0})


def test_models_list_without_anthropic_version_is_openai_shaped(
    gateway, gateway_key, exchanges, journal
):
    with httpx2.Client(
        event_hooks=exchanges.httpx_hooks(), timeout=30.0, trust_env=False
    ) as http:
        bare = http.get(
            f"{gateway.url}/v1/models", headers={"authorization": f"Bearer {gateway_key['key']}"}
        )
        anthropic_style = http.get(
            f"{gateway.url}/v1/models",
            headers={"x-api-key": gateway_key["key"], "anthropic-version": "2023-06-01"},
        )
    assert bare.status_code == 200, bare.text
    listing = bare.json()
    assert listing["object"] == "list", listing
    assert all({"id", "object", "created", "owned_by"} <= set(m) for m in listing["data"])
    assert anthropic_style.status_code == 200, anthropic_style.text
    assert "object" not in anthropic_style.json()
    assert all(m.get("type") == "model" for m in anthropic_style.json()["data"])
    journal(*[{"status": 200, "user": "alice", "cost_nanos": 0}] * 2)


# --- Bedrock InvokeModel with boto3 ----------------------------------------------------------


@pytest.fixture(scope="module")
def make_bedrock_runtime(gateway, exchanges):
    """boto3 `bedrock-runtime` clients on the gateway's Bedrock mount, one per gateway key."""
    with pytest.MonkeyPatch.context() as env:
        # Nothing from the machine's AWS setup may change how the clients sign or where they go.
        for name in (
            "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE", "AWS_BEARER_TOKEN_BEDROCK", "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
        ):  # fmt: skip
            env.delenv(name, raising=False)
        env.setenv("AWS_CONFIG_FILE", os.devnull)
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)

        def make(key: str):
            session = boto3.Session(
                aws_access_key_id="AKIDTOLLGATEDUMMY0001",
                aws_secret_access_key="dummy-secret-the-gateway-does-not-check",
                region_name="us-east-1",
            )
            client = session.client(
                "bedrock-runtime",
                endpoint_url=gateway.url + "/bedrock",
                config=Config(
                    retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30
                ),
            )

            def add_key(request, **_: Any) -> None:
                request.headers["x-tollgate-api-key"] = key

            client.meta.events.register("before-sign.bedrock-runtime", add_key)
            client.meta.events.register(
                "after-call.bedrock-runtime", exchanges.on_botocore_after_call
            )
            return client

        yield make


@pytest.fixture(scope="module")
def bedrock_runtime(make_bedrock_runtime, gateway_key):
    return make_bedrock_runtime(gateway_key["key"])


@contextlib.contextmanager
def boto_scenario(client, scenario: str) -> Iterator[None]:
    """Sends `x-mock-scenario` on the client's requests inside the block."""

    def add(request, **_: Any) -> None:
        request.headers["x-mock-scenario"] = scenario

    client.meta.events.register("before-sign.bedrock-runtime", add)
    try:
        yield
    finally:
        client.meta.events.unregister("before-sign.bedrock-runtime", add)


def bedrock_body(text: str, **extra: Any) -> str:
    return json.dumps(
        {"anthropic_version": BEDROCK_VERSION, "max_tokens": 64, "messages": user(text), **extra}
    )


def test_boto3_invoke_model(bedrock_runtime, upstream, journal):
    response = bedrock_runtime.invoke_model(
        modelId=MODEL,
        contentType="application/json",
        accept="application/json",
        body=bedrock_body("[[say:pong-bedrock]] hello", anthropic_beta=["effort-2025-11-24"]),
    )
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert response["contentType"] == "application/json"
    message = json.loads(response["body"].read())
    assert message["type"] == "message" and message["role"] == "assistant"
    assert [b["text"] for b in message["content"]] == ["pong-bedrock"]
    assert message["stop_reason"] == "end_turn"
    assert message["usage"]["input_tokens"] == 120 and message["usage"]["output_tokens"] == 30

    record = upstream.only_request()
    body = forwarded(record, upstream)
    assert body["model"] == MODEL
    assert body.get("stream") in (None, False)
    assert body["max_tokens"] == 64
    # The body's beta list becomes the header the Messages API reads.
    betas = ",".join(header_values(record["headers"], "anthropic-beta"))
    assert "effort-2025-11-24" in betas, record["headers"]
    journal(model_call(stream=False, path=f"/bedrock/model/{MODEL}/invoke"))


def test_boto3_invoke_model_with_response_stream(bedrock_runtime, upstream, journal):
    response = bedrock_runtime.invoke_model_with_response_stream(
        modelId=MODEL,
        contentType="application/json",
        accept="application/json",
        body=bedrock_body("[[say:streamed pong-bedrock]] hello"),
    )
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 200
    # botocore decodes the AWS event-stream framing (prelude and message CRCs included).
    events = []
    for event in response["body"]:
        assert set(event) == {"chunk"}, f"unexpected event-stream member: {event}"
        events.append(json.loads(event["chunk"]["bytes"]))
    types = [e["type"] for e in events]
    assert types[0] == "message_start", types
    assert types[-1] == "message_stop", types
    assert "message_delta" in types, types
    text = "".join(
        e["delta"]["text"]
        for e in events
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "text_delta"
    )
    assert text == "streamed pong-bedrock"
    assert events[0]["message"]["usage"]["input_tokens"] == 120
    delta = next(e for e in events if e["type"] == "message_delta")
    assert delta["usage"]["output_tokens"] == 30
    assert delta["delta"]["stop_reason"] == "end_turn"

    body = forwarded(upstream.only_request(), upstream)
    assert body["model"] == MODEL
    assert body["stream"] is True
    journal(model_call(stream=True, path=f"/bedrock/model/{MODEL}/invoke-with-response-stream"))


@pytest.mark.parametrize("operation", ["invoke_model", "invoke_model_with_response_stream"])
def test_boto3_default_content_type(operation, bedrock_runtime, upstream, journal):
    """boto3 sends no Content-Type unless `contentType` is given; Bedrock takes the body as JSON."""
    call = getattr(bedrock_runtime, operation)
    try:
        response = call(modelId=MODEL, body=bedrock_body("[[say:no content type]] hi"))
    except botocore.exceptions.ClientError as exc:
        seen = upstream.model_requests()
        pytest.fail(
            f"{operation} without contentType failed: {exc.response['Error']} "
            f"(HTTP {exc.response['ResponseMetadata']['HTTPStatusCode']})\n"
            "upstream received: "
            + json.dumps([{k: r[k] for k in ("path", "status", "headers")} for r in seen]),
            pytrace=False,
        )
    if operation == "invoke_model":
        assert json.loads(response["body"].read())["content"][0]["text"] == "no content type"
    else:
        events = [json.loads(e["chunk"]["bytes"]) for e in response["body"]]
        assert events[-1]["type"] == "message_stop", events
    forwarded(upstream.only_request(), upstream)
    journal(model_call(stream=operation != "invoke_model"))


@pytest.mark.parametrize("operation", ["invoke_model", "invoke_model_with_response_stream"])
def test_boto3_upstream_429_is_throttling_exception(operation, bedrock_runtime, upstream, journal):
    call = getattr(bedrock_runtime, operation)
    with boto_scenario(bedrock_runtime, "error:429:rate_limit_error"):
        with pytest.raises(bedrock_runtime.exceptions.ThrottlingException) as caught:
            call(modelId=MODEL, contentType="application/json", body=bedrock_body("hi"))
    error = caught.value.response
    assert error["Error"]["Code"] == "ThrottlingException", error
    assert error["Error"]["Message"] == "Number of request tokens has exceeded your rate limit"
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 429
    headers = error["ResponseMetadata"]["HTTPHeaders"]
    assert headers.get("x-amzn-errortype", "").startswith("ThrottlingException"), headers
    assert [r["status"] for r in upstream.model_requests()] == [429]
    journal(
        {
            "status": 429, "user": "alice", "team": "platform", "error_type": "rate_limit_error",
            "input_tokens": 0, "output_tokens": 0, "cost_nanos": 0,
        }  # fmt: skip
    )


def test_boto3_invalid_key_is_a_bedrock_error(make_bedrock_runtime, upstream, journal):
    client = make_bedrock_runtime("tg-not-a-real-key")
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        client.invoke_model(modelId=MODEL, contentType="application/json", body=bedrock_body("hi"))
    error = caught.value.response
    assert error["Error"]["Code"] == "UnrecognizedClientException", error
    assert error["Error"]["Message"], error
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 403
    headers = error["ResponseMetadata"]["HTTPHeaders"]
    assert headers.get("x-amzn-errortype") == "UnrecognizedClientException", headers
    assert headers.get("x-should-retry") == "false", headers
    assert upstream.model_requests() == []
    journal({"status": 401, "user": None, "cost_nanos": 0})


# --- the anthropic SDK's Bedrock and Vertex clients ------------------------------------------


@pytest.fixture(scope="module")
def anthropic_bedrock(gateway, gateway_key, exchanges):
    client = anthropic.AnthropicBedrock(
        api_key=gateway_key["key"],
        aws_region="us-east-1",
        base_url=gateway.url + "/bedrock",
        max_retries=0,
        timeout=30.0,
        http_client=anthropic.DefaultHttpxClient(
            event_hooks=exchanges.httpx_hooks(), trust_env=False
        ),
    )
    yield client
    client.close()


def make_vertex(gateway, key: str, exchanges, base_path: str) -> anthropic.AnthropicVertex:
    return anthropic.AnthropicVertex(
        region=VERTEX_REGION,
        project_id=VERTEX_PROJECT,
        access_token=key,
        base_url=gateway.url + base_path,
        max_retries=0,
        timeout=30.0,
        http_client=anthropic.DefaultHttpxClient(
            event_hooks=exchanges.httpx_hooks(), trust_env=False
        ),
    )


@pytest.fixture(scope="module")
def anthropic_vertex(gateway, gateway_key, exchanges):
    # The SDK's own default base URLs end in /v1 (`https://{region}-aiplatform.googleapis.com/v1`)
    # and it appends `/projects/…`.
    client = make_vertex(gateway, gateway_key["key"], exchanges, "/vertex/v1")
    yield client
    client.close()


def test_anthropic_bedrock_non_streaming(anthropic_bedrock, upstream, journal):
    raw = anthropic_bedrock.messages.with_raw_response.create(
        model=MODEL, max_tokens=64, messages=user("[[say:sdk bedrock]] hi")
    )
    message = raw.parse()
    assert message.content[0].text == "sdk bedrock"
    assert message.usage.input_tokens == 120 and message.usage.output_tokens == 30
    sent = raw.http_request.headers
    assert sent.get("authorization") == f"Bearer {anthropic_bedrock.api_key}"
    assert raw.http_request.url.path == f"/bedrock/model/{MODEL}/invoke"
    body = forwarded(upstream.only_request(), upstream)
    assert body["model"] == MODEL
    journal(model_call(stream=False, path=f"/bedrock/model/{MODEL}/invoke"))


def test_anthropic_bedrock_streaming(anthropic_bedrock, upstream, journal):
    with anthropic_bedrock.messages.stream(
        model=MODEL, max_tokens=64, messages=user("[[say:sdk bedrock stream]] hi")
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "sdk bedrock stream"
    assert final.stop_reason == "end_turn"
    assert final.usage.input_tokens == 120 and final.usage.output_tokens == 30
    body = forwarded(upstream.only_request(), upstream)
    assert body["stream"] is True
    journal(model_call(stream=True, path=f"/bedrock/model/{MODEL}/invoke-with-response-stream"))


def test_anthropic_vertex_non_streaming(anthropic_vertex, gateway_key, upstream, journal):
    raw = anthropic_vertex.messages.with_raw_response.create(
        model=MODEL, max_tokens=64, messages=user("[[say:sdk vertex]] hi")
    )
    message = raw.parse()
    assert message.content[0].text == "sdk vertex"
    assert message.usage.input_tokens == 120 and message.usage.output_tokens == 30
    assert raw.http_request.url.path == f"{VERTEX_MODEL_PATH}/{MODEL}:rawPredict"
    assert raw.http_request.headers.get("authorization") == f"Bearer {gateway_key['key']}"
    body = forwarded(upstream.only_request(), upstream)
    assert body["model"] == MODEL
    assert body.get("stream") in (None, False)
    journal(model_call(stream=False, path=f"{VERTEX_MODEL_PATH}/{MODEL}:rawPredict"))


def test_anthropic_vertex_streaming(anthropic_vertex, upstream, journal):
    with anthropic_vertex.messages.stream(
        model=MODEL, max_tokens=64, messages=user("[[say:sdk vertex stream]] hi")
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "sdk vertex stream"
    assert final.usage.input_tokens == 120 and final.usage.output_tokens == 30
    body = forwarded(upstream.only_request(), upstream)
    assert body["model"] == MODEL
    assert body["stream"] is True
    journal(model_call(stream=True, path=f"{VERTEX_MODEL_PATH}/{MODEL}:streamRawPredict"))


def test_anthropic_vertex_count_tokens(anthropic_vertex, upstream, journal):
    counted = anthropic_vertex.messages.count_tokens(
        model=MODEL, messages=user("How many tokens is this sentence?")
    )
    record = upstream.only_request()
    assert record["scenario"] == "count_tokens"
    assert counted.input_tokens == record["body_len"] // 4
    journal(
        {
            "status": 200, "user": "alice", "team": "platform", "provider": "anthropic",
            "model": MODEL, "path": f"{VERTEX_MODEL_PATH}/count-tokens:rawPredict",
            "input_tokens": 0, "output_tokens": 0, "cost_nanos": 0,
        }  # fmt: skip
    )
    # The shared count-tokens endpoint keeps the model in the body, and the Vertex envelope
    # (`anthropic_version`) must still go: the Messages API refuses fields it does not know.
    body = forwarded(record, upstream, path="/v1/messages/count_tokens")
    assert body["model"] == MODEL


def test_anthropic_vertex_with_documented_base_url(
    gateway, gateway_key, exchanges, upstream, journal
):
    """docs/reference.md gives `ANTHROPIC_VERTEX_BASE_URL=http://HOST:8780/vertex`; this SDK
    reads that variable too and appends `/projects/…` to it."""
    client = make_vertex(gateway, gateway_key["key"], exchanges, "/vertex")
    try:
        message = client.messages.create(
            model=MODEL, max_tokens=16, messages=user("[[say:documented url]] hi")
        )
    except anthropic.APIStatusError as exc:
        pytest.fail(
            f"POST {exc.request.url.path} -> {exc.status_code} {exc.body!r}", pytrace=False
        )
    finally:
        client.close()
    assert message.content[0].text == "documented url"
    forwarded(upstream.only_request(), upstream)
    journal(model_call(stream=False))


# --- the journal, once more, as a whole ------------------------------------------------------


def test_journal_has_no_record_without_a_request(gateway, exchanges):
    """Runs last: the journal holds one record per request the tests sent, and nothing else."""
    sent = {e.request_id for e in exchanges.items if e.request_id}
    assert len(sent) >= 20, f"only {len(sent)} requests recorded; did the tests above run?"
    gateway.wait_for_records(lambda r: r.get("id") in sent, count=len(sent))
    records = gateway.logs()
    stray = [
        (r.get("method"), r.get("path"), r.get("status"))
        for r in records
        if r.get("id") not in sent and not (r.get("path") or "").startswith("/admin/")
    ]
    assert stray == [], f"journal records no test request explains: {stray}"
    ids = [r.get("id") for r in records]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    assert duplicated == [], f"request ids journaled more than once: {duplicated}"
