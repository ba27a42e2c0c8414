"""Hostile and malformed input against the real gateway, in front of the strict scripted upstream.

A seeded generator sends requests to every ingress (Anthropic Messages and count_tokens, OpenAI
Chat Completions, Bedrock InvokeModel, Vertex rawPredict) with fields of the wrong type, numbers
out of range, unknown content blocks, odd betas and flipped bytes, followed by hand-made hostile
bodies (deep nesting, compression bombs, oversized labels). Whatever it sends, the gateway must
answer every request in that ingress's own error dialect, never with a 500 or a dropped
connection, keep running, and leave exactly one journal record per request.
"""

from __future__ import annotations

import gzip
import http.client
import json
import random
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.timeout(300)

ROUNDS = 400
SEED = 20261126

MESSAGES = "/v1/messages"
OK_BODY = b'{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}'
PATHS = [
    MESSAGES,
    "/v1/messages?beta=true",
    "/v1/messages/count_tokens",
    "/v1/chat/completions",
    "/bedrock/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke",
    "/bedrock/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream",
    "/vertex/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-sonnet-4-5:rawPredict",
]


@dataclass
class Answer:
    path: str
    status: int
    body: bytes
    request_id: str | None


def dialect_error(path: str, body: bytes) -> bool:
    """Whether `body` is an error in the dialect of the ingress at `path`."""
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    if not isinstance(doc, dict):
        return False
    if path.startswith("/v1/chat/"):
        err = doc.get("error")
        return isinstance(err, dict) and isinstance(err.get("message"), str)
    if path.startswith("/bedrock/"):
        return isinstance(doc.get("message"), str)
    err = doc.get("error")
    return (
        doc.get("type") == "error"
        and isinstance(err, dict)
        and isinstance(err.get("type"), str)
        and isinstance(err.get("message"), str)
    )


def value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(10 if depth < 3 else 6)
    if kind < 6:
        return rng.choice([None, True, 0, -1, 1.5, 10**30, "", "x" * rng.randrange(40), "é\u0000"])
    if kind < 8:
        return [value(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["type", "text", "role", "content", "id", "name", "input", "source", "cache_control"]
    return {rng.choice(keys): value(rng, depth + 1) for _ in range(rng.randrange(4))}


def block(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(["text", "image", "tool_use", "tool_result", "thinking", "document", "bogus"])
    b: dict[str, Any] = {"type": kind}
    fields = ["text", "source", "id", "name", "input", "tool_use_id", "content", "signature"]
    for field in rng.sample(fields, rng.randrange(4)):
        b[field] = value(rng, 1)
    if kind == "text" and rng.random() < 0.7:
        b["text"] = "hello"
    return b


def body(rng: random.Random, path: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "max_tokens": rng.choice([1, 100, 0, -1, 2**63, 1.0, "5", None]),
        "messages": [
            {
                "role": rng.choice(["user", "assistant", "system", "tool", 1]),
                "content": rng.choice(["hi", [block(rng) for _ in range(rng.randrange(4))], None, 5]),
            }
            for _ in range(rng.randrange(4))
        ],
    }
    if path.startswith("/v1/"):
        doc["model"] = rng.choice(["claude-sonnet-4-5", "claude-haiku-4-5", "nope", 5, None, ""])
    elif path.startswith("/bedrock/"):
        doc["anthropic_version"] = rng.choice(["bedrock-2023-05-31", 3])
    else:
        doc["anthropic_version"] = rng.choice(["vertex-2023-10-16", None])
    extras = ["stream", "system", "tools", "tool_choice", "metadata", "thinking", "temperature"]
    for field in rng.sample(extras, rng.randrange(4)):
        doc[field] = rng.choice(
            [
                value(rng),
                True,
                {"type": "enabled", "budget_tokens": rng.choice([1024, -5, 10**20])},
                [{"name": "t", "input_schema": value(rng)}],
                {"type": rng.choice(["auto", "any", "tool", "none"]), "name": "t"},
            ]
        )
    for field in ("model", "max_tokens"):
        if field in doc and rng.random() < 0.1:
            del doc[field]
    return doc


class Client:
    def __init__(self, url: str, key: str):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.key = key

    def send(self, path: str, data: bytes, headers: dict[str, str] | None = None) -> Answer:
        all_headers = {
            "x-api-key": self.key,
            "anthropic-version": "2023-06-01",
            "content-type": "application/json",
            **(headers or {}),
        }
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            conn.request("POST", path, body=data, headers=all_headers)
            resp = conn.getresponse()
            return Answer(path, resp.status, resp.read(), resp.getheader("x-tollgate-request-id"))
        finally:
            conn.close()


def hostile_cases() -> list[tuple[str, bytes, dict[str, str]]]:
    deep = 200_000
    nested = (
        '{"model":"claude-sonnet-4-5","max_tokens":5,"messages":' + "[" * deep + "]" * deep + "}"
    ).encode()
    bomb = gzip.compress(
        b'{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[{"role":"user","content":"'
        + b"a" * (40 << 20)
        + b'"}]}'
    )
    ok = OK_BODY
    return [
        (MESSAGES, nested, {}),
        ("/v1/chat/completions", nested, {}),
        (MESSAGES, bomb, {"content-encoding": "gzip"}),
        (MESSAGES, b"not gzip", {"content-encoding": "gzip"}),
        (MESSAGES, ok, {"content-encoding": "lzma"}),
        (MESSAGES, ok, {"x-claude-code-session-id": "s" * 4000}),
        (MESSAGES, ok, {"x-tollgate-tags": ",".join(f"t{i}" for i in range(100))}),
        (MESSAGES, b'{"model":"' + b"m" * 5000 + b'","max_tokens":5,"messages":[]}', {}),
        (MESSAGES, OK_BODY.replace(b"hi", b"\xff"), {}),
        (MESSAGES, b"", {}),
        (MESSAGES, b"[]", {}),
        (MESSAGES, b'{"model":"claude-sonnet-4-5","model":"claude-opus-4-1","max_tokens":5}', {}),
    ]


def test_hostile_input_gets_dialect_errors_and_one_record_each(gateway_factory):
    gw = gateway_factory()
    key = gw.create_key("mallory", "platform", name="hostile")["key"]
    client = Client(gw.url, key)
    rng = random.Random(SEED)
    answers: list[Answer] = []
    for _ in range(ROUNDS):
        path = rng.choice(PATHS)
        data = json.dumps(body(rng, path)).encode()
        if rng.random() < 0.1:
            at = rng.randrange(len(data))
            data = data[:at] + bytes([rng.randrange(256)]) + data[at + 1 :]
        headers = {}
        if rng.random() < 0.2:
            headers["anthropic-beta"] = rng.choice(
                ["interleaved-thinking-2025-05-14", "x,y,,", "context-1m-2025-08-07"]
            )
        answers.append(client.send(path, data, headers))
    for path, data, headers in hostile_cases():
        answers.append(client.send(path, data, headers))

    for a in answers:
        assert a.status < 500, f"{a.path} answered {a.status}: {a.body[:300]!r}"
        if a.status >= 400:
            assert dialect_error(a.path, a.body), f"{a.path} {a.status}: {a.body[:300]!r}"
        assert a.request_id, f"{a.path} {a.status} carried no request id"
    refused = [a for a in answers if a.status >= 400]
    assert len(refused) > ROUNDS // 2, "the generator should mostly send unacceptable requests"
    hostile = answers[ROUNDS:]
    expected = [400, 400, 413, 400, 415, 400, 400, 400, 400, 400, 400, 400]
    assert [a.status for a in hostile] == expected, [a.body[:120] for a in hostile]

    # Still serving, and every request above has exactly one journal record.
    ok = client.send(MESSAGES, OK_BODY)
    assert ok.status == 200, ok.body[:300]
    wanted = {a.request_id for a in answers} | {ok.request_id}
    records = gw.wait_for_records(lambda r: r.get("id") in wanted, count=len(wanted))
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)) == len(wanted), (
        f"{len(wanted)} requests, {len(ids)} records, {len(set(ids))} distinct"
    )
    by_id = {r["id"]: r for r in records}
    for a in answers:
        assert by_id[a.request_id]["status"] == a.status, (a.path, a.status, by_id[a.request_id])
