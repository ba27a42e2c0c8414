"""The fake upstreams against the official clients.

Bedrock is driven by boto3 (and the anthropic SDK's Bedrock client), whose SigV4 signatures and
event-stream parsing are the reference; Vertex by grants signed here with PyJWT and by the
anthropic SDK's Vertex client; OpenAI by the openai SDK. Each fake runs as its own process, as
the gateway's tests run it, and must exit 0 on SIGTERM.
"""

from __future__ import annotations

import base64
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anthropic
import boto3
import httpx2
import jwt
import openai
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.eventstream import EventStreamBuffer
from botocore.exceptions import ClientError, EventStreamError, ResponseStreamingError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from urllib3.exceptions import ProtocolError

pytestmark = pytest.mark.timeout(60)

HERE = Path(__file__).resolve().parent
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
HTTP_TIMEOUT = 15.0

ACCESS_KEY = "AKIDFAKEBEDROCK0001"
SECRET_KEY = "fake-secret-key-for-bedrock-tests-0001"
BEDROCK_API_KEY = "bedrock-api-key-for-tests"
REGION = "us-west-2"
MODEL_ID = "anthropic.claude-sonnet-4-5-20250929-v1:0"
BEDROCK_VERSION = "bedrock-2023-05-31"

VERTEX_PROJECT = "tollgate-fake-project"
VERTEX_REGION = "us-east5"
VERTEX_MODEL = "claude-sonnet-4-5@20250929"
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"

OPENAI_KEY = "sk-fake-openai-key-0001"

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}},
}
OPENAI_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
    },
}


class Fake:
    """One fake upstream process, started and stopped as the gateway's tests would."""

    def __init__(self, script: str, args: list[str], workdir: Path):
        workdir.mkdir(parents=True, exist_ok=True)
        self.stderr_path = workdir / f"{script}.stderr"
        self._stderr = open(self.stderr_path, "wb")
        self.argv = [sys.executable, str(HERE / script), *args]
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            start_new_session=True,
        )
        line = self._first_line()
        if not line.startswith("LISTENING "):
            self.kill()
            pytest.fail(f"{script} printed {line!r} instead of LISTENING\n{self.stderr()}")
        self.addr = line.split()[1]
        self.url = f"http://{self.addr}"
        self.http = httpx2.Client(base_url=self.url, timeout=HTTP_TIMEOUT, trust_env=False)

    def _first_line(self) -> str:
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + START_TIMEOUT
        buf = b""
        while b"\n" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(timeout=left):
                self.kill()
                pytest.fail(
                    f"{self.argv} did not print LISTENING within {START_TIMEOUT}s\n{self.stderr()}"
                )
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                self.kill()
                pytest.fail(
                    f"{self.argv} exited with {self.proc.wait(5)} before LISTENING\n{self.stderr()}"
                )
            buf += chunk
        sel.close()
        return buf.split(b"\n")[0].decode().strip()

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def requests(self) -> list[dict[str, Any]]:
        response = self.http.get("/_test/requests")
        response.raise_for_status()
        return response.json()

    def last(self) -> dict[str, Any]:
        seen = self.requests()
        assert seen, "the fake recorded no request"
        return seen[-1]

    def clear(self) -> None:
        self.http.delete("/_test/requests").raise_for_status()

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(STOP_TIMEOUT)

    def stop(self) -> int:
        """SIGTERM, then the exit code; a fake that needs SIGKILL fails the test."""
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
                pytest.fail(f"{self.argv} ignored SIGTERM for {STOP_TIMEOUT}s")
        self._stderr.close()
        if self.proc.stdout:
            self.proc.stdout.close()
        return self.proc.returncode


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- Bedrock ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bedrock(tmp_path_factory):
    fake = Fake(
        "bedrock_fake.py",
        [
            "--access-key",
            ACCESS_KEY,
            "--secret-key",
            SECRET_KEY,
            "--region",
            REGION,
            "--api-key",
            BEDROCK_API_KEY,
        ],
        tmp_path_factory.mktemp("bedrock"),
    )
    yield fake
    assert fake.stop() == 0, fake.stderr()


def bedrock_client(
    fake: Fake, secret: str = SECRET_KEY, access: str = ACCESS_KEY, region: str = REGION
):
    return boto3.client(
        "bedrock-runtime",
        region_name=region,
        endpoint_url=fake.url,
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        config=Config(
            retries={"mode": "standard", "total_max_attempts": 1},
            connect_timeout=5,
            read_timeout=HTTP_TIMEOUT,
        ),
    )


def bedrock_body(text: str = "Hello", **extra: Any) -> dict[str, Any]:
    return {
        "anthropic_version": BEDROCK_VERSION,
        "max_tokens": 256,
        "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
        **extra,
    }


def stream_events(response: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(event["chunk"]["bytes"]) for event in response["body"]]


def signed(
    method: str, url: str, body: bytes, secret: str = SECRET_KEY, **headers: str
) -> AWSRequest:
    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    SigV4Auth(Credentials(ACCESS_KEY, secret), "bedrock", REGION).add_auth(request)
    return request


def send(fake: Fake, request: AWSRequest, body: bytes | None = None) -> httpx2.Response:
    path = request.url.split(fake.addr, 1)[1]
    return fake.http.request(
        request.method,
        path,
        headers=dict(request.headers.items()),
        content=request.body if body is None else body,
    )


def test_bedrock_invoke_model_with_boto3(bedrock):
    bedrock.clear()
    client = bedrock_client(bedrock)
    response = client.invoke_model(
        modelId=MODEL_ID, body=json.dumps(bedrock_body("Hi [[say:Bonjour]]"))
    )
    message = json.loads(response["body"].read())
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["content"] == [{"type": "text", "text": "Bonjour"}]
    assert message["model"] == "claude-sonnet-4-5-20250929"
    assert message["usage"]["input_tokens"] == 120 and message["usage"]["output_tokens"] == 30
    headers = response["ResponseMetadata"]["HTTPHeaders"]
    assert headers["x-amzn-bedrock-input-token-count"] == "120"
    assert headers["x-amzn-bedrock-output-token-count"] == "30"

    record = bedrock.last()
    # boto3 percent-encodes the model id's colon on the wire; the signature covered that path.
    assert record["path"] == "/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke"
    assert record["auth"] == "sigv4" and record["status"] == 200
    assert record["model_id"] == MODEL_ID
    assert record["scenario"] == "text"
    assert record["usage"]["output_tokens"] == 30


def test_bedrock_stream_with_boto3_tool_call_and_cache_usage(bedrock):
    client = bedrock_client(bedrock)
    body = bedrock_body(
        "[[scenario:tool]] weather?",
        tools=[WEATHER_TOOL],
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
    )
    response = client.invoke_model_with_response_stream(
        modelId="us.anthropic.claude-sonnet-4-5-20250929-v1:0", body=json.dumps(body)
    )
    assert response["contentType"] == "application/json"
    events = stream_events(response)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert events[0]["message"]["usage"]["cache_read_input_tokens"] == 1000
    assert events[0]["message"]["usage"]["cache_creation_input_tokens"] == 200
    starts = [e["content_block"] for e in events if e["type"] == "content_block_start"]
    assert [b["type"] for b in starts] == ["text", "tool_use"]
    assert starts[1]["name"] == "get_weather" and starts[1]["input"] == {}
    pieces = [
        e["delta"]["partial_json"]
        for e in events
        if e["type"] == "content_block_delta" and e["delta"]["type"] == "input_json_delta"
    ]
    assert len(pieces) > 1 and json.loads("".join(pieces)) == {"location": "Paris"}
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    metrics = events[-1]["amazon-bedrock-invocationMetrics"]
    assert metrics["inputTokenCount"] == 120 and metrics["outputTokenCount"] == 30
    assert metrics["cacheReadInputTokenCount"] == 1000
    assert metrics["cacheWriteInputTokenCount"] == 200
    assert "amazon-bedrock-invocationMetrics" not in json.dumps(events[:-1])
    assert bedrock.last()["usage"]["cache_read_input_tokens"] == 1000

    # The tool result comes back on the next turn.
    tool_use = {
        "type": "tool_use",
        "id": starts[1]["id"],
        "name": "get_weather",
        "input": {"location": "Paris"},
    }
    body["messages"] += [
        {"role": "assistant", "content": [tool_use]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": starts[1]["id"], "content": "sunny"}
            ],
        },
    ]
    message = json.loads(
        client.invoke_model(modelId=MODEL_ID, body=json.dumps(body))["body"].read()
    )
    assert message["content"] == [{"type": "text", "text": "tool result was: sunny"}]


def test_bedrock_frames_decode_with_botocore_event_stream_buffer(bedrock):
    url = f"{bedrock.url}/model/{MODEL_ID.replace(':', '%3A')}/invoke-with-response-stream"
    request = signed(
        "POST", url, json.dumps(bedrock_body()).encode(), **{"Content-Type": "application/json"}
    )
    with bedrock.http.stream(
        request.method,
        url.split(bedrock.addr, 1)[1],
        headers=dict(request.headers.items()),
        content=request.body,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/vnd.amazon.eventstream"
        assert response.headers["transfer-encoding"] == "chunked"
        raw = b"".join(response.iter_raw())
    buffer = EventStreamBuffer()
    buffer.add_data(raw)
    messages = list(buffer)  # raises on a bad prelude or message CRC
    assert messages
    texts = []
    for message in messages:
        assert message.headers == {
            ":event-type": "chunk",
            ":content-type": "application/json",
            ":message-type": "event",
        }
        event = json.loads(base64.b64decode(json.loads(message.payload)["bytes"]))
        if event["type"] == "content_block_delta":
            texts.append(event["delta"]["text"])
    assert "".join(texts) == "Hello from the scripted upstream."

    # One flipped payload byte must break the frame's checksum.
    damaged = bytearray(raw)
    damaged[20] ^= 0x01
    broken = EventStreamBuffer()
    broken.add_data(bytes(damaged))
    with pytest.raises(Exception, match="(?i)checksum|crc"):
        list(broken)


def test_bedrock_wrong_secret_is_refused(bedrock):
    bedrock.clear()
    client = bedrock_client(bedrock, secret="not-the-secret")
    with pytest.raises(ClientError) as err:
        client.invoke_model(modelId=MODEL_ID, body=json.dumps(bedrock_body()))
    error = err.value.response["Error"]
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert error["Code"] == "InvalidSignatureException"
    assert error["Message"].startswith("The request signature we calculated does not match")
    record = bedrock.last()
    assert record["status"] == 403 and record["scenario"] == "rejected"
    assert "canonical request" in record["error"]


@pytest.mark.parametrize(
    "kwargs, code",
    [
        ({"access": "AKIDSOMEBODYELSE"}, "UnrecognizedClientException"),
        ({"region": "us-east-1"}, "InvalidSignatureException"),
    ],
)
def test_bedrock_foreign_credentials_are_refused(bedrock, kwargs, code):
    with pytest.raises(ClientError) as err:
        bedrock_client(bedrock, **kwargs).invoke_model(
            modelId=MODEL_ID, body=json.dumps(bedrock_body())
        )
    assert err.value.response["Error"]["Code"] == code
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_bedrock_signature_covers_body_and_path(bedrock):
    body = json.dumps(bedrock_body()).encode()
    url = f"{bedrock.url}/model/{MODEL_ID.replace(':', '%3A')}/invoke"
    request = signed("POST", url, body)
    assert send(bedrock, request).status_code == 200
    tampered = send(bedrock, request, body.replace(b"Hello", b"Hellp"))
    assert tampered.status_code == 403
    assert tampered.headers["x-amzn-errortype"].startswith("InvalidSignatureException")
    # The same path with the colon left raw is a different canonical URI.
    raw_path = signed("POST", url, body)
    response = bedrock.http.post(
        f"/model/{MODEL_ID}/invoke", headers=dict(raw_path.headers.items()), content=body
    )
    assert response.status_code == 403
    no_auth = bedrock.http.post(f"/model/{MODEL_ID}/invoke", content=body)
    assert no_auth.status_code == 403
    assert no_auth.headers["x-amzn-errortype"].startswith("MissingAuthenticationTokenException")


def test_bedrock_bearer_api_key(bedrock):
    path = f"/model/{MODEL_ID}/invoke"
    body = json.dumps(bedrock_body("[[say:keyed]]"))
    ok = bedrock.http.post(
        path, content=body, headers={"Authorization": f"Bearer {BEDROCK_API_KEY}"}
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["content"][0]["text"] == "keyed"
    assert bedrock.last()["auth"] == "bearer"
    wrong = bedrock.http.post(path, content=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403


@pytest.mark.parametrize(
    "change, message",
    [
        ({"model": MODEL_ID}, "extraneous key [model]"),
        ({"stream": True}, "extraneous key [stream]"),
        ({"anthropic_version": None}, "required key [anthropic_version]"),
        ({"anthropic_version": "2023-06-01"}, "anthropic_version"),
        ({"anthropic_beta": ["claude-code-20250219"]}, "invalid beta flag: claude-code-20250219"),
        ({"anthropic_beta": "context-1m-2025-08-07"}, "anthropic_beta"),
        ({"max_tokens": None}, "required key [max_tokens]"),
        ({"messages": []}, "minimum item count"),
    ],
)
def test_bedrock_body_rules(bedrock, change, message):
    body = bedrock_body()
    for key, value in change.items():
        if value is None:
            body.pop(key)
        else:
            body[key] = value
    with pytest.raises(ClientError) as err:
        bedrock_client(bedrock).invoke_model(modelId=MODEL_ID, body=json.dumps(body))
    assert err.value.response["Error"]["Code"] == "ValidationException"
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert message in err.value.response["Error"]["Message"]


def test_bedrock_accepts_documented_betas_and_refuses_foreign_models(bedrock):
    client = bedrock_client(bedrock)
    body = bedrock_body(anthropic_beta=["interleaved-thinking-2025-05-14", "context-1m-2025-08-07"])
    assert (
        client.invoke_model(modelId=MODEL_ID, body=json.dumps(body))["ResponseMetadata"][
            "HTTPStatusCode"
        ]
        == 200
    )
    with pytest.raises(ClientError) as err:
        client.invoke_model(modelId="amazon.nova-pro-v1:0", body=json.dumps(body))
    assert err.value.response["Error"]["Code"] == "ValidationException"


def test_bedrock_throttling_before_the_stream(bedrock):
    client = bedrock_client(bedrock)
    body = json.dumps(bedrock_body("[[scenario:error:429:rate_limit_error]]"))
    for call in (client.invoke_model, client.invoke_model_with_response_stream):
        with pytest.raises(ClientError) as err:
            call(modelId=MODEL_ID, body=body)
        assert err.value.response["Error"]["Code"] == "ThrottlingException"
        assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429


def test_bedrock_throttling_exception_frame_mid_stream(bedrock):
    client = bedrock_client(bedrock)
    body = json.dumps(bedrock_body("[[scenario:midstream-error:429:ThrottlingException]]"))
    response = client.invoke_model_with_response_stream(modelId=MODEL_ID, body=body)
    received = []
    with pytest.raises(EventStreamError) as err:
        for event in response["body"]:
            received.append(json.loads(event["chunk"]["bytes"]))
    assert err.value.response["Error"]["Code"] == "throttlingException"
    assert received and received[0]["type"] == "message_start"
    assert bedrock.last()["usage"]["output_tokens"] == 1


def test_bedrock_broken_stream_is_cut(bedrock):
    client = bedrock_client(bedrock)
    response = client.invoke_model_with_response_stream(
        modelId=MODEL_ID, body=json.dumps(bedrock_body("[[scenario:broken]]"))
    )
    received = []
    # botocore surfaces a body that ends without its last chunk as urllib3's ProtocolError.
    with pytest.raises((ProtocolError, ResponseStreamingError)):
        for event in response["body"]:
            received.append(json.loads(event["chunk"]["bytes"]))
    assert [e["type"] for e in received] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
    ]


def test_bedrock_thinking_signature_round_trip(bedrock):
    client = bedrock_client(bedrock)
    body = bedrock_body("[[scenario:thinking]] go", tools=[WEATHER_TOOL])
    first = json.loads(client.invoke_model(modelId=MODEL_ID, body=json.dumps(body))["body"].read())
    thinking, call = first["content"]
    assert thinking["type"] == "thinking" and thinking["signature"]
    body["messages"] += [
        {"role": "assistant", "content": first["content"]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "ok"}],
        },
    ]
    second = json.loads(client.invoke_model(modelId=MODEL_ID, body=json.dumps(body))["body"].read())
    assert second["content"][-1] == {"type": "text", "text": "tool result was: ok"}
    body["messages"][1]["content"][0] = {**thinking, "thinking": thinking["thinking"] + " (edited)"}
    with pytest.raises(ClientError) as err:
        client.invoke_model(modelId=MODEL_ID, body=json.dumps(body))
    assert "thinking signature mismatch" in err.value.response["Error"]["Message"]


# The pinned anthropic SDK (2.14.0) defaults the body's anthropic_version to its Messages API
# version (2026-10-21) on Bedrock and Vertex too; the fakes hold to the documented values, so the
# SDK tests set them explicitly.
BEDROCK_SDK_BODY = {"anthropic_version": BEDROCK_VERSION}
VERTEX_SDK_BODY = {"anthropic_version": "vertex-2023-10-16"}


def test_bedrock_with_the_anthropic_sdk(bedrock):
    # A second signer: the SDK signs every header it sends (x-stainless-*, anthropic-version...)
    # and leaves the model id's colon raw in the path.
    bedrock.clear()
    client = anthropic.AnthropicBedrock(
        aws_access_key=ACCESS_KEY,
        aws_secret_key=SECRET_KEY,
        aws_region=REGION,
        base_url=bedrock.url,
        max_retries=0,
        timeout=HTTP_TIMEOUT,
    )
    message = client.messages.create(
        model=MODEL_ID,
        max_tokens=64,
        messages=[{"role": "user", "content": "[[say:via sdk]]"}],
        extra_body=BEDROCK_SDK_BODY,
    )
    assert message.content[0].text == "via sdk"
    with client.messages.stream(
        model=MODEL_ID,
        max_tokens=64,
        messages=[{"role": "user", "content": "[[scenario:bash]]"}],
        tools=[{"name": "Bash", "input_schema": {"type": "object"}}],
        extra_body=BEDROCK_SDK_BODY,
    ) as stream:
        final = stream.get_final_message()
    assert (
        final.stop_reason == "tool_use" and final.content[-1].input["command"] == "echo wire-test"
    )
    signed_headers = [r for r in bedrock.requests() if r["auth"] == "sigv4"]
    assert len(signed_headers) == 2


# --- Vertex -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vertex(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("vertex")
    port = free_port()
    key_file = workdir / "service-account.json"
    made = subprocess.run(
        [
            sys.executable,
            str(HERE / "make_service_account.py"),
            str(key_file),
            f"http://127.0.0.1:{port}/token",
            "--project",
            VERTEX_PROJECT,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    fake = Fake(
        "vertex_fake.py",
        ["--service-account", str(key_file), "--region", VERTEX_REGION, "--port", str(port)],
        workdir,
    )
    fake.account = json.loads(key_file.read_text())
    yield fake
    assert fake.stop() == 0, fake.stderr()


def grant(
    account: dict[str, Any], key: Any = None, headers: dict[str, Any] | None = None, **claims: Any
) -> str:
    now = int(time.time())
    payload = {
        "iss": account["client_email"],
        "scope": CLOUD_PLATFORM,
        "aud": account["token_uri"],
        "iat": now,
        "exp": now + 3600,
        **claims,
    }
    payload = {k: v for k, v in payload.items() if v is not None}
    if key is None:
        key = serialization.load_pem_private_key(account["private_key"].encode(), password=None)
    return jwt.encode(
        payload,
        key,
        algorithm="RS256",
        headers=headers if headers is not None else {"kid": account["private_key_id"]},
    )


def exchange(
    fake: Fake, assertion: str, grant_type: str = "urn:ietf:params:oauth:grant-type:jwt-bearer"
):
    return fake.http.post("/token", data={"grant_type": grant_type, "assertion": assertion})


def access_token(fake: Fake) -> str:
    response = exchange(fake, grant(fake.account))
    assert response.status_code == 200, response.text
    token = response.json()
    assert token["token_type"] == "Bearer" and token["expires_in"] == 3600
    return token["access_token"]


def vertex_path(
    model: str = VERTEX_MODEL,
    method: str = "rawPredict",
    project: str = VERTEX_PROJECT,
    region: str = VERTEX_REGION,
) -> str:
    return f"/v1/projects/{project}/locations/{region}/publishers/anthropic/models/{model}:{method}"


def vertex_body(text: str = "Hello", **extra: Any) -> dict[str, Any]:
    return {
        "anthropic_version": "vertex-2023-10-16",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def parse_sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_vertex_token_then_raw_predict_stream_and_count_tokens(vertex):
    vertex.clear()
    token = access_token(vertex)
    assert vertex.last()["claims"]["iss"] == vertex.account["client_email"]
    auth = {"Authorization": f"Bearer {token}"}

    response = vertex.http.post(
        vertex_path(), json=vertex_body("[[say:from vertex]]"), headers=auth
    )
    assert response.status_code == 200, response.text
    message = response.json()
    assert message["content"] == [{"type": "text", "text": "from vertex"}]
    assert message["model"] == VERTEX_MODEL and message["id"].startswith("msg_vrtx_")

    cached = vertex_body(
        "[[scenario:tool]]",
        stream=True,
        tools=[WEATHER_TOOL],
        system=[{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}],
    )
    with vertex.http.stream(
        "POST", vertex_path(method="streamRawPredict"), json=cached, headers=auth
    ) as streamed:
        assert streamed.status_code == 200
        assert streamed.headers["content-type"].startswith("text/event-stream")
        events = parse_sse(streamed.read().decode())
    names = [name for name, _ in events]
    assert names[:2] == ["message_start", "ping"] and names[-1] == "message_stop"
    assert events[0][1]["message"]["usage"]["cache_read_input_tokens"] == 1000
    assert vertex.last()["usage"]["cache_creation_input_tokens"] == 200
    partial = "".join(
        d["delta"]["partial_json"]
        for n, d in events
        if n == "content_block_delta" and d["delta"]["type"] == "input_json_delta"
    )
    assert json.loads(partial) == {"location": "Paris"}

    counted = vertex.http.post(
        vertex_path("count-tokens"),
        headers=auth,
        json={
            "anthropic_version": "vertex-2023-10-16",
            "model": VERTEX_MODEL,
            "messages": [{"role": "user", "content": "count me"}],
        },
    )
    assert counted.status_code == 200, counted.text
    assert counted.json()["input_tokens"] > 0
    assert vertex.last()["scenario"] == "count_tokens"


def other_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize(
    "case, error, description",
    [
        ("foreign key", "invalid_grant", "Invalid JWT Signature."),
        ("expired", "invalid_grant", "short-lived token"),
        ("too long", "invalid_grant", "short-lived token"),
        ("audience", "invalid_grant", "Failed audience check"),
        ("issuer", "invalid_grant", "account not found"),
        ("scope", "invalid_scope", "cloud-platform"),
        ("grant type", "unsupported_grant_type", "Invalid grant_type"),
        ("kid", "invalid_grant", "Invalid JWT Signature."),
        ("garbage", "invalid_grant", "Invalid JWT"),
    ],
)
def test_vertex_bad_grants_are_refused(vertex, case, error, description):
    account = vertex.account
    now = int(time.time())
    grant_type = "urn:ietf:params:oauth:grant-type:jwt-bearer"
    if case == "foreign key":
        assertion = grant(account, key=other_key())
    elif case == "expired":
        assertion = grant(account, iat=now - 7200, exp=now - 3600)
    elif case == "too long":
        assertion = grant(account, exp=now + 7200)
    elif case == "audience":
        assertion = grant(account, aud="https://oauth2.googleapis.com/token")
    elif case == "issuer":
        assertion = grant(account, iss="someone@else.iam.gserviceaccount.com")
    elif case == "scope":
        assertion = grant(account, scope="https://www.googleapis.com/auth/userinfo.email")
    elif case == "grant type":
        assertion, grant_type = grant(account), "client_credentials"
    elif case == "kid":
        assertion = grant(account, headers={"kid": "0" * 40})
    else:
        assertion = "not.a.jwt"
    response = exchange(vertex, assertion, grant_type)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error
    assert description in response.json()["error_description"]


def test_vertex_predict_needs_an_issued_token_and_the_right_resource(vertex):
    body = vertex_body()
    for headers in ({}, {"Authorization": "Bearer ya29.made-up"}):
        refused = vertex.http.post(vertex_path(), json=body, headers=headers)
        assert refused.status_code == 401
        assert refused.json()["error"]["status"] == "UNAUTHENTICATED"
    auth = {"Authorization": f"Bearer {access_token(vertex)}"}
    other_project = vertex.http.post(vertex_path(project="someone-else"), json=body, headers=auth)
    assert other_project.status_code == 403
    assert other_project.json()["error"]["status"] == "PERMISSION_DENIED"
    other_region = vertex.http.post(vertex_path(region="europe-west1"), json=body, headers=auth)
    assert other_region.status_code == 404


@pytest.mark.parametrize(
    "change, method, message",
    [
        ({"model": VERTEX_MODEL}, "rawPredict", "model: Extra inputs are not permitted"),
        ({"anthropic_version": None}, "rawPredict", "anthropic_version: Field required"),
        ({"anthropic_version": "bedrock-2023-05-31"}, "rawPredict", "vertex-2023-10-16"),
        ({"stream": True}, "rawPredict", "streamRawPredict"),
        ({}, "streamRawPredict", "stream: must be true"),
        ({"max_tokens": None}, "rawPredict", "max_tokens"),
    ],
)
def test_vertex_body_rules(vertex, change, method, message):
    body = vertex_body()
    for key, value in change.items():
        if value is None:
            body.pop(key)
        else:
            body[key] = value
    auth = {"Authorization": f"Bearer {access_token(vertex)}"}
    response = vertex.http.post(vertex_path(method=method), json=body, headers=auth)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert message in error["error"]["message"]


def test_vertex_with_the_anthropic_sdk(vertex):
    client = anthropic.AnthropicVertex(
        region=VERTEX_REGION,
        project_id=VERTEX_PROJECT,
        access_token=access_token(vertex),
        base_url=f"{vertex.url}/v1",
        max_retries=0,
        timeout=HTTP_TIMEOUT,
    )
    tools = [{"name": "Bash", "input_schema": {"type": "object"}}]
    messages: list[dict[str, Any]] = [{"role": "user", "content": "[[scenario:thinking]]"}]
    with client.messages.stream(
        model=VERTEX_MODEL,
        max_tokens=64,
        messages=messages,
        tools=tools,
        extra_body=VERTEX_SDK_BODY,
    ) as stream:
        first = stream.get_final_message()
    assert [b.type for b in first.content] == ["thinking", "tool_use"]
    messages += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": first.content[1].id, "content": "wire-test"}
            ],
        },
    ]
    second = client.messages.create(
        model=VERTEX_MODEL,
        max_tokens=64,
        messages=messages,
        tools=tools,
        extra_body=VERTEX_SDK_BODY,
    )
    assert second.content[-1].text == "tool result was: wire-test"
    counted = client.messages.count_tokens(
        model=VERTEX_MODEL, messages=messages[:1], extra_body=VERTEX_SDK_BODY
    )
    assert counted.input_tokens > 0
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(
            model=VERTEX_MODEL,
            max_tokens=64,
            messages=[{"role": "user", "content": "[[scenario:error:429:rate_limit_error]]"}],
            extra_body=VERTEX_SDK_BODY,
        )


# --- OpenAI -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def oai(tmp_path_factory):
    fake = Fake("openai_fake.py", ["--api-key", OPENAI_KEY], tmp_path_factory.mktemp("openai"))
    yield fake
    assert fake.stop() == 0, fake.stderr()


def openai_client(fake: Fake, key: str = OPENAI_KEY) -> openai.OpenAI:
    return openai.OpenAI(
        api_key=key, base_url=f"{fake.url}/v1", max_retries=0, timeout=HTTP_TIMEOUT
    )


def test_openai_non_stream(oai):
    oai.clear()
    client = openai_client(oai)
    completion = client.chat.completions.create(
        model="gpt-5.5", messages=[{"role": "user", "content": "Hi [[say:hello there]]"}]
    )
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == "hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens == 120 and completion.usage.completion_tokens == 30
    assert completion.usage.prompt_tokens_details.cached_tokens == 0
    assert oai.last()["usage"]["total_tokens"] == 150

    cached = client.chat.completions.create(
        model="gpt-5.5", prompt_cache_key="session-1", messages=[{"role": "user", "content": "Hi"}]
    )
    assert cached.usage.prompt_tokens_details.cached_tokens == 1000
    assert cached.usage.prompt_tokens == 120 + 200 + 1000


def test_openai_stream_with_tools(oai):
    client = openai_client(oai)
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "[[scenario:tool]] weather in Paris?"}
    ]
    stream = client.chat.completions.create(
        model="gpt-5.5",
        messages=messages,
        tools=[OPENAI_TOOL],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].id and calls[0].function.name == "get_weather"
    argument_pieces = [tc.function.arguments for tc in calls[1:]]
    assert len(argument_pieces) > 1
    arguments = "".join(argument_pieces)
    assert json.loads(arguments) == {"location": "Paris"}
    finishes = [
        c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason
    ]
    assert finishes == ["tool_calls"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 30
    assert all(c.usage is None for c in chunks[:-1])

    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": calls[0].id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": calls[0].id, "content": "sunny"},
    ]
    plain = list(
        client.chat.completions.create(
            model="gpt-5.5", messages=messages, tools=[OPENAI_TOOL], stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in plain if c.choices)
    assert text == "tool result was: sunny"
    # Without include_usage the stream carries no usage at all.
    assert all(getattr(c, "usage", None) is None for c in plain)
    assert oai.last()["usage_reported"] is False


def test_openai_rejects_an_unknown_field(oai):
    client = openai_client(oai)
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model="gpt-5.5",
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"thinking": {"type": "enabled"}},
        )
    assert err.value.status_code == 400
    body = err.value.body
    assert body["type"] == "invalid_request_error" and body["param"] == "thinking"
    assert "Unrecognized request argument supplied: thinking" in body["message"]
    assert oai.last()["scenario"] == "rejected"


@pytest.mark.parametrize(
    "model, params, param",
    [
        ("o4-mini", {"temperature": 0.5}, "temperature"),
        ("gpt-5.5", {"top_p": 0.9}, "top_p"),
        ("o3", {"max_tokens": 100}, "max_tokens"),
        ("gpt-4.1", {"reasoning_effort": "low"}, "reasoning_effort"),
        ("gpt-5-chat-latest", {"reasoning_effort": "low"}, "reasoning_effort"),
    ],
)
def test_openai_parameters_must_fit_the_model(oai, model, params, param):
    # As the real service: reasoning models take no sampling and no max_tokens, chat models no
    # reasoning_effort.
    client = openai_client(oai)
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}], **params
        )
    assert err.value.body["param"] == param, err.value.body
    assert err.value.body["code"] in ("unsupported_value", "unsupported_parameter")


def test_openai_parameters_that_fit_the_model_are_taken(oai):
    client = openai_client(oai)
    user = [{"role": "user", "content": "hi"}]
    client.chat.completions.create(
        model="o4-mini", messages=user, temperature=1, reasoning_effort="high",
        max_completion_tokens=100,
    )  # fmt: skip
    client.chat.completions.create(model="gpt-4.1", messages=user, temperature=0.2, max_tokens=9)
    # Ids of neither kind (compatible servers) take everything.
    client.chat.completions.create(
        model="gpt-test", messages=user, temperature=0.2, reasoning_effort="low"
    )


ASSISTANT_CALL = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
    ],
}


@pytest.mark.parametrize(
    "body, param",
    [
        ({"model": "gpt-5.5"}, "messages"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
        ({"model": "gpt-5.5", "messages": []}, "messages"),
        (
            {
                "model": "gpt-5.5",
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "tool", "tool_call_id": "call_1", "content": "x"},
                ],
            },
            "messages.[1].role",
        ),
        (
            {
                "model": "gpt-5.5",
                "messages": [
                    {"role": "user", "content": "hi"},
                    ASSISTANT_CALL,
                    {"role": "user", "content": "again"},
                ],
            },
            "messages.[1].role",
        ),
        (
            {
                "model": "gpt-5.5",
                "messages": [
                    {"role": "user", "content": "hi"},
                    ASSISTANT_CALL,
                    {"role": "tool", "tool_call_id": "call_2", "content": "x"},
                ],
            },
            "messages.[2].tool_call_id",
        ),
        (
            {
                "model": "gpt-5.5",
                "messages": [
                    {"role": "user", "content": "hi"},
                    {
                        **ASSISTANT_CALL,
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": {}},
                            }
                        ],
                    },
                    {"role": "tool", "tool_call_id": "call_1", "content": "x"},
                ],
            },
            "messages[1].tool_calls[0].function.arguments",
        ),
        (
            {
                "model": "gpt-5.5",
                "max_tokens": 5,
                "max_completion_tokens": 5,
                "messages": [{"role": "user", "content": "hi"}],
            },
            "max_tokens",
        ),
        (
            {
                "model": "gpt-5.5",
                "stream_options": {"include_usage": True},
                "messages": [{"role": "user", "content": "hi"}],
            },
            "stream_options",
        ),
        (
            {
                "model": "gpt-5.5",
                "tool_choice": "auto",
                "messages": [{"role": "user", "content": "hi"}],
            },
            "tool_choice",
        ),
        (
            {
                "model": "gpt-5.5",
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}
                        ],
                    }
                ],
            },
            "messages[0].content[0].cache_control",
        ),
        (
            {
                "model": "gpt-5.5",
                "messages": [{"role": "user", "content": "hi"}],
                "tools": [{"type": "function", "function": {"name": "bad name"}}],
            },
            "tools[0].function.name",
        ),
    ],
)
def test_openai_request_rules(oai, body, param):
    response = oai.http.post(
        "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {OPENAI_KEY}"}
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param, error


def test_openai_auth_errors_models_and_broken_streams(oai):
    with pytest.raises(openai.AuthenticationError):
        openai_client(oai, key="sk-wrong").chat.completions.create(
            model="gpt-5.5", messages=[{"role": "user", "content": "hi"}]
        )
    client = openai_client(oai)
    assert {m.id for m in client.models.list()} >= {"gpt-5.5"}
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(
            model="gpt-5.5",
            messages=[{"role": "user", "content": "[[scenario:error:429:rate_limit_exceeded]]"}],
        )
    assert err.value.response.headers["retry-after"] == "7"
    with pytest.raises(openai.APIConnectionError):
        list(
            client.chat.completions.create(
                model="gpt-5.5",
                stream=True,
                messages=[{"role": "user", "content": "[[scenario:broken]]"}],
            )
        )
    with pytest.raises(openai.APIError, match="The server had an error"):
        list(
            client.chat.completions.create(
                model="gpt-5.5",
                stream=True,
                messages=[{"role": "user", "content": "[[scenario:midstream-error]]"}],
            )
        )


def test_openai_azure_deployments(oai):
    client = openai.AzureOpenAI(
        api_key=OPENAI_KEY,
        api_version="2024-10-21",
        azure_endpoint=oai.url,
        max_retries=0,
        timeout=HTTP_TIMEOUT,
    )
    completion = client.chat.completions.create(
        model="my-deployment", messages=[{"role": "user", "content": "[[say:azure]]"}]
    )
    assert completion.choices[0].message.content == "azure"
    record = oai.last()
    assert (
        record["path"]
        == "/openai/deployments/my-deployment/chat/completions?api-version=2024-10-21"
    )
    path = "/openai/deployments/my-deployment/chat/completions"
    body = {"messages": [{"role": "user", "content": "hi"}]}
    assert oai.http.post(path, json=body, headers={"api-key": OPENAI_KEY}).status_code == 404
    wrong = oai.http.post(path + "?api-version=2024-10-21", json=body, headers={"api-key": "nope"})
    assert wrong.status_code == 401


# --- common behaviour -------------------------------------------------------------------------


def test_sigterm_with_an_idle_keep_alive_connection(tmp_path):
    fake = Fake("openai_fake.py", ["--api-key", OPENAI_KEY, "--quiet"], tmp_path)
    # A pooled connection stays open after this request; shutting down must not wait for it.
    assert (
        fake.http.get("/v1/models", headers={"Authorization": f"Bearer {OPENAI_KEY}"}).status_code
        == 200
    )
    assert len(fake.requests()) == 1
    fake.proc.send_signal(signal.SIGTERM)
    assert fake.proc.wait(STOP_TIMEOUT) == 0
    assert fake.stop() == 0
