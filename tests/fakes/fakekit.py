"""Plumbing shared by the fake upstreams: serving, recording, and scripted assistant turns.

The fakes are separate programs so they can stand in for a provider in any test, Rust or Python;
this module holds what they have in common so that their scenarios behave alike:

* `serve` runs a `ThreadingHTTPServer` speaking HTTP/1.1 with keep-alive, prints
  `LISTENING 127.0.0.1:PORT` once bound and exits 0 on SIGTERM or SIGINT.
* Every request except the `/_test/requests` endpoint itself is recorded before it is answered;
  `GET /_test/requests` lists the records, `DELETE /_test/requests` clears them.
* `plan` turns a scenario name into an Anthropic-style assistant turn (or an error), following
  the scripted Rust upstream in `crates/testkit`, so a test may switch provider and keep its
  scenario tags.
"""

from __future__ import annotations

import base64
import json
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# Refuses bodies a test could never mean to send, before reading them into memory.
MAX_BODY = 64 * 1024 * 1024

# A keep-alive connection idle this long is closed, so abandoned clients do not pin threads.
IDLE_TIMEOUT = 600

DEFAULT_TEXT = "Hello from the scripted upstream."

SCENARIO_TAG = "[[scenario:"
SAY_TAG = "[[say:"

BASH_INPUT = '{"command":"echo wire-test","description":"Print a marker"}'
AGENT_INPUT = (
    '{"description":"Scripted subagent","prompt":"[[scenario:subagent]] Report back.",'
    '"subagent_type":"general-purpose","run_in_background":false}'
)
DEFAULT_TOOL_INPUT = '{"location":"Paris"}'


# --- requests, responses and records ---------------------------------------------------------


class Request:
    """One request as received: the raw target is kept because signatures cover it."""

    def __init__(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes):
        self.method = method
        self.target = target
        split = urlsplit(target)
        self.path = split.path
        self.query = parse_qs(split.query, keep_blank_values=True)
        self.raw_query = split.query
        self.headers = headers
        self.body = body
        self._json: Any = None
        self._json_error: str | None = None
        self._parsed = False

    def header(self, name: str) -> str | None:
        values = self.header_values(name)
        return values[0] if values else None

    def header_values(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k == name]

    def json(self) -> tuple[Any, str | None]:
        """The body parsed as JSON, or `(None, reason)`."""
        if not self._parsed:
            self._parsed = True
            try:
                self._json = json.loads(self.body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as exc:
                self._json_error = str(exc)
        return self._json, self._json_error


@dataclass
class Response:
    """A complete answer sent with a `content-length`."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Stream:
    """A chunked answer; each item of `chunks` goes on the wire as one chunk, flushed.

    With `abort`, the connection is closed after the last item without the terminating chunk,
    as a provider that crashes mid-answer would.
    """

    status: int
    chunks: Iterable[bytes]
    headers: list[tuple[str, str]] = field(default_factory=list)
    abort: bool = False


@dataclass
class Drop:
    """No answer at all: the connection is closed once the request has been read."""

    status: int = 0


def json_response(status: int, obj: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    body = json.dumps(obj, separators=(",", ":")).encode()
    return Response(status, body, [("Content-Type", "application/json")] + list(headers or []))


class Recorder:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[dict[str, Any]] = []
        self._next = 0

    def next_id(self) -> int:
        with self._lock:
            self._next += 1
            return self._next

    def add(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._records.append(record)

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._records)

    def clear(self) -> int:
        with self._lock:
            n = len(self._records)
            self._records.clear()
            return n


def new_record(req: Request) -> dict[str, Any]:
    # The same shape as the Rust scripted upstream's records, so helpers work on both.
    return {
        "method": req.method,
        "path": req.target,
        "headers": [[k, v] for k, v in req.headers],
        "body": req.body.decode("utf-8", errors="replace"),
        "body_b64": base64.b64encode(req.body).decode(),
        "body_len": len(req.body),
        "usage": None,
        "scenario": None,
        "status": None,
        "error": None,
    }


# An app answers one request and may fill in the record (scenario, usage, error, ...).
App = Callable[[Request, dict[str, Any]], "Response | Stream | Drop"]


# --- the HTTP server -------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Idle keep-alive connections block in a read; shutting down must not wait for them.
    block_on_close = False
    allow_reuse_address = True


def _handler(app: App, recorder: Recorder, name: str, quiet: bool) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = name
        sys_version = ""
        timeout = IDLE_TIMEOUT

        def setup(self) -> None:
            super().setup()
            # Streamed events are small writes that must not wait for Nagle.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
            if not quiet:
                sys.stderr.write(f"{name}: {self.address_string()} {format % args}\n")

        def do_GET(self) -> None:
            self._dispatch()

        do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

        def _read_body(self) -> bytes | None:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                out = bytearray()
                while True:
                    line = self.rfile.readline(1024)
                    size = int(line.split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                            pass
                        return bytes(out)
                    if len(out) + size > MAX_BODY:
                        return None
                    out += self.rfile.read(size)
                    self.rfile.readline(8)
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                return None
            return self.rfile.read(length) if length else b""

        def _dispatch(self) -> None:
            try:
                body = self._read_body()
            except ValueError:
                self._write(Response(400, b"bad request framing\n"))
                self.close_connection = True
                return
            if body is None:
                self._write(Response(413, b"body too large\n"))
                self.close_connection = True
                return
            headers = [(k.lower(), v) for k, v in self.headers.items()]
            req = Request(self.command, self.path, headers, body)
            if req.path == "/_test/requests":
                self._write(self._test_endpoint(req))
                return
            record = new_record(req)
            try:
                answer = app(req, record)
            except Exception as exc:  # a bug in a fake must show up as a clear 500, not a hang
                import traceback

                traceback.print_exc()
                answer = Response(500, f"fake upstream crashed: {exc!r}\n".encode())
            record["status"] = answer.status
            recorder.add(record)
            self._write(answer)

        def _test_endpoint(self, req: Request) -> Response:
            if req.method == "GET":
                return json_response(200, recorder.list())
            if req.method == "DELETE":
                return json_response(200, {"cleared": recorder.clear()})
            return json_response(405, {"message": "use GET or DELETE"})

        def _head(self, status: int, headers: list[tuple[str, str]]) -> None:
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)

        def _write(self, answer: Response | Stream | Drop) -> None:
            try:
                if isinstance(answer, Drop):
                    self.close_connection = True
                elif isinstance(answer, Response):
                    self._head(answer.status, answer.headers)
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(answer.body)
                    self.wfile.flush()
                else:
                    self._head(answer.status, answer.headers)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self.wfile.flush()
                    for chunk in answer.chunks:
                        if chunk:
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                            self.wfile.flush()
                    if answer.abort:
                        self.close_connection = True
                    else:
                        self.wfile.write(b"0\r\n\r\n")
                        self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    return Handler


def serve(app: App, host: str, port: int, name: str, quiet: bool = False) -> int:
    """Serves until SIGTERM or SIGINT; returns the exit code."""
    recorder = Recorder()
    server = _Server((host, port), _handler(app_with_ids(app, recorder), recorder, name, quiet))
    bound_host, bound_port = server.server_address[:2]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
    )
    thread.start()
    print(f"LISTENING {bound_host}:{bound_port}", flush=True)
    # A timed wait keeps the main thread returning to the interpreter, where signals are handled.
    while not stop.wait(0.2):
        pass
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)
    return 0


def app_with_ids(app: App, recorder: Recorder) -> App:
    # Ids and thinking texts must differ between requests so clients cannot confuse turns.
    def wrapped(req: Request, record: dict[str, Any]):
        record["n"] = recorder.next_id()
        return app(req, record)

    return wrapped


# --- Anthropic-style scripted turns ----------------------------------------------------------


@dataclass
class ApiError(Exception):
    status: int
    kind: str
    message: str
    headers: list[tuple[str, str]] = field(default_factory=list)

    def anthropic_body(self) -> dict[str, Any]:
        return {"type": "error", "error": {"type": self.kind, "message": self.message}}


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_request_error", message)


@dataclass
class Usage:
    input: int = 120
    output: int = 30
    cache_write: int = 0
    cache_read: int = 0

    def anthropic(self, output: int | None = None) -> dict[str, Any]:
        return {
            "input_tokens": self.input,
            "cache_creation_input_tokens": self.cache_write,
            "cache_read_input_tokens": self.cache_read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.cache_write,
                "ephemeral_1h_input_tokens": 0,
            },
            "output_tokens": self.output if output is None else output,
            "service_tier": "standard",
        }


def usage_for(
    header: Callable[[str], str | None], body: bytes, cache_markers: Iterable[bytes]
) -> Usage:
    """`x-mock-usage: IN,OUT,CW,CR`, else 120/30 plus 200 written and 1000 read from the cache
    when the body carries one of `cache_markers`."""
    spec = header("x-mock-usage")
    if spec is not None:
        try:
            numbers = [int(n.strip()) for n in spec.split(",")]
        except ValueError:
            numbers = []
        if len(numbers) != 4 or min(numbers) < 0:
            raise invalid("x-mock-usage: expected IN,OUT,CW,CR")
        return Usage(*numbers)
    cached = any(marker in body for marker in cache_markers)
    return Usage(cache_write=200 if cached else 0, cache_read=1000 if cached else 0)


def find_tag(text: str, tag: str) -> str | None:
    start = text.find(tag)
    if start < 0:
        return None
    start += len(tag)
    end = text.find("]]", start)
    return None if end < 0 else text[start:end]


def texts(message: Any) -> list[str]:
    """The typed text of a message: a string content, or the `text` parts of an array content.

    Anthropic and OpenAI share this shape."""
    if not isinstance(message, dict):
        return []
    content = message.get("content")
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [
            b["text"]
            for b in content
            if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
        ]
    return []


def messages_of(body: Any) -> list[Any]:
    messages = body.get("messages") if isinstance(body, dict) else None
    return messages if isinstance(messages, list) else []


def role(message: Any) -> str:
    return message.get("role", "") if isinstance(message, dict) else ""


def scenario_name(header: Callable[[str], str | None], body: Any) -> str:
    """`x-mock-scenario`, else the first `[[scenario:NAME]]` of the first user message, else `text`.

    A subagent's conversation starts with the Agent tool's prompt, so subagent requests need no
    special case."""
    name = header("x-mock-scenario")
    if name is not None:
        return name.strip()
    for message in messages_of(body):
        if role(message) == "user":
            for text in texts(message):
                tag = find_tag(text, SCENARIO_TAG)
                if tag is not None:
                    return tag.strip()
            break
    return "text"


def say(body: Any) -> str | None:
    """The `[[say:…]]` of the newest user message that has one."""
    for message in reversed(messages_of(body)):
        if role(message) == "user":
            for text in texts(message):
                tag = find_tag(text, SAY_TAG)
                if tag is not None:
                    return tag
    return None


def tool_input(header: Callable[[str], str | None]) -> str:
    raw = header("x-mock-tool-input")
    if raw is None:
        return DEFAULT_TOOL_INPUT
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise invalid("x-mock-tool-input: must be a JSON object")
    return json.dumps(value, separators=(",", ":"))


def error_message(kind: str) -> str:
    return {
        "overloaded_error": "Overloaded",
        "rate_limit_error": "Number of request tokens has exceeded your rate limit",
        "api_error": "Internal server error",
    }.get(kind, f"Scripted {kind}")


def parse_error_spec(spec: str) -> ApiError | None:
    """`STATUS:TYPE` as in `error:429:rate_limit_error`."""
    status, _, kind = spec.partition(":")
    try:
        code = int(status.strip())
    except ValueError:
        return None
    kind = kind.strip()
    if not (400 <= code <= 599) or not kind:
        return None
    err = ApiError(code, kind, error_message(kind))
    if code == 429:
        err.headers = [("retry-after", "7"), ("x-should-retry", "true")]
    return err


def signature_for(thinking: str) -> str:
    """A signature derived from the thinking text, so a later turn can be checked without state.

    FNV-1a, as the Rust scripted upstream computes it, so signatures are interchangeable."""
    h = 0xCBF29CE484222325
    for byte in thinking.encode():
        h ^= byte
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    raw = f"tollgate-mock-thinking:{len(thinking.encode())}:{h:016x}"
    return base64.b64encode(raw.encode()).decode()


def check_thinking_signatures(body: Any) -> None:
    """Rejects echoed thinking blocks whose signature this fake did not give."""
    for i, message in enumerate(messages_of(body)):
        if role(message) != "assistant" or not isinstance(message.get("content"), list):
            continue
        for j, block in enumerate(message["content"]):
            if not isinstance(block, dict) or block.get("type") != "thinking":
                continue
            thinking = block.get("thinking") if isinstance(block.get("thinking"), str) else ""
            if block.get("signature") != signature_for(thinking):
                raise invalid(f"messages.{i}.content.{j}: thinking signature mismatch")


def pending_tool_result(body: Any) -> str | None:
    """The text of the tool_result the model is answering, if the conversation ends with one.

    Trailing `system` messages are skipped: Claude Code may append one after a tool_result."""
    rest = [m for m in messages_of(body) if role(m) != "system"]
    if not rest or role(rest[-1]) != "user" or not isinstance(rest[-1].get("content"), list):
        return None
    for block in rest[-1]["content"]:
        if isinstance(block, dict) and block.get("type") == "tool_result":
            content = block.get("content")
            if content is None:
                return ""
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                parts = [
                    p.get("text", "")
                    for p in content
                    if isinstance(p, dict) and p.get("type") == "text"
                ]
                return "\n".join(parts) if parts else json.dumps(content, separators=(",", ":"))
            return json.dumps(content, separators=(",", ":"))
    return None


def anthropic_tool_names(body: Any) -> list[str]:
    tools = body.get("tools") if isinstance(body, dict) else None
    if not isinstance(tools, list):
        return []
    return [t["name"] for t in tools if isinstance(t, dict) and isinstance(t.get("name"), str)]


@dataclass
class Turn:
    """A complete assistant turn. Tool inputs stay JSON text so they stream in pieces."""

    id: str
    model: str
    blocks: list[dict[str, Any]]
    stop_reason: str
    usage: Usage


@dataclass
class Plan:
    """What to do for one request: `reply`, `fail`, `broken` (cut stream / dropped connection) or
    `midstream` (a stream that reports an error after its first delta)."""

    kind: str
    turn: Turn | None = None
    error: ApiError | None = None
    pace: float = 0.0


def plan(
    name: str,
    body: Any,
    header: Callable[[str], str | None],
    n: int,
    usage: Usage,
    model: str,
    id_prefix: str = "msg_mock_",
) -> Plan:
    """The scripted behaviour of scenario `name` for one Messages request."""
    unknown = invalid(f"unknown mock scenario {name!r}")
    result = pending_tool_result(body)
    text = say(body) or DEFAULT_TEXT
    pace = 0.0

    def tool_use(tool: str, input_json: str) -> dict[str, Any]:
        return {"type": "tool_use", "id": f"toolu_mock_{n}", "name": tool, "input_json": input_json}

    def text_block(t: str) -> dict[str, Any]:
        return {"type": "text", "text": t}

    kind = "reply"
    if name in ("text", "broken") or name.startswith("midstream-error"):
        blocks, stop = [text_block(text)], "end_turn"
        if name == "broken":
            kind = "broken"
        elif name != "text":
            kind = "midstream"
    elif name == "subagent":
        blocks, stop = [text_block("Subagent report: all good.")], "end_turn"
    elif name in ("tool", "bash", "agent"):
        if result is not None:
            reply = {
                "tool": f"tool result was: {result}",
                "bash": f"Bash said: {result}",
                "agent": "Agent finished.",
            }[name]
            blocks, stop = [text_block(reply)], "end_turn"
        else:
            if name == "tool":
                tools = anthropic_tool_names(body)
                call = tool_use(tools[0] if tools else "get_weather", tool_input(header))
            elif name == "bash":
                call = tool_use("Bash", BASH_INPUT)
            else:
                call = tool_use("Agent", AGENT_INPUT)
            blocks = [call] if name == "agent" else [text_block("Let me check."), call]
            stop = "tool_use"
    elif name == "thinking":
        thinking = f"The script for turn {n} says what to do next; following it."
        think = {"type": "thinking", "thinking": thinking, "signature": signature_for(thinking)}
        tools = anthropic_tool_names(body)
        if result is not None:
            blocks, stop = [think, text_block(f"tool result was: {result}")], "end_turn"
        elif tools:
            call = (
                tool_use("Bash", BASH_INPUT)
                if "Bash" in tools
                else tool_use(tools[0], tool_input(header))
            )
            blocks, stop = [think, call], "tool_use"
        else:
            blocks, stop = [think, text_block(text)], "end_turn"
    elif name.startswith("error:"):
        err = parse_error_spec(name[len("error:") :])
        if err is None:
            raise unknown
        return Plan("fail", error=err)
    elif name.startswith("slow:"):
        try:
            pace = int(name[len("slow:") :].strip()) / 1000.0
        except ValueError:
            raise unknown from None
        blocks, stop = [text_block(text)], "end_turn"
    else:
        raise unknown

    turn = Turn(f"{id_prefix}{n}", model, blocks, stop, usage)
    err = None
    if kind == "midstream":
        spec = name[len("midstream-error") :].lstrip(":")
        err = parse_error_spec(spec) if spec else ApiError(529, "overloaded_error", "Overloaded")
        if err is None:
            raise unknown
    return Plan(kind, turn=turn, error=err, pace=pace)


def block_json(block: dict[str, Any]) -> dict[str, Any]:
    if block["type"] == "tool_use":
        return {
            "type": "tool_use",
            "id": block["id"],
            "name": block["name"],
            "input": json.loads(block["input_json"]),
        }
    return dict(block)


def message_json(turn: Turn) -> dict[str, Any]:
    """The non-streaming Message body."""
    return {
        "id": turn.id,
        "type": "message",
        "role": "assistant",
        "model": turn.model,
        "content": [block_json(b) for b in turn.blocks],
        "stop_reason": turn.stop_reason,
        "stop_sequence": None,
        "usage": turn.usage.anthropic(),
    }


def pieces(s: str, n: int) -> list[str]:
    """Splits `s` into about `n` pieces, so consumers must reassemble deltas."""
    if not s:
        return []
    size = max(1, -(-len(s) // max(1, n)))
    return [s[i : i + size] for i in range(0, len(s), size)]


def _delta(index: int, delta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}


def message_start(turn: Turn) -> tuple[str, dict[str, Any]]:
    message = message_json(turn)
    message.update(content=[], stop_reason=None, usage=turn.usage.anthropic(output=1))
    return "message_start", {"type": "message_start", "message": message}


def block_events(index: int, block: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    start = {"type": "content_block_start", "index": index}
    if block["type"] == "text":
        out.append(
            ("content_block_start", {**start, "content_block": {"type": "text", "text": ""}})
        )
        out += [_delta(index, {"type": "text_delta", "text": p}) for p in pieces(block["text"], 2)]
    elif block["type"] == "thinking":
        out.append(
            (
                "content_block_start",
                {**start, "content_block": {"type": "thinking", "thinking": "", "signature": ""}},
            )
        )
        out += [
            _delta(index, {"type": "thinking_delta", "thinking": p})
            for p in pieces(block["thinking"], 2)
        ]
        out.append(_delta(index, {"type": "signature_delta", "signature": block["signature"]}))
    else:
        out.append(
            (
                "content_block_start",
                {
                    **start,
                    "content_block": {
                        "type": "tool_use",
                        "id": block["id"],
                        "name": block["name"],
                        "input": {},
                    },
                },
            )
        )
        out += [
            _delta(index, {"type": "input_json_delta", "partial_json": p})
            for p in pieces(block["input_json"], 3)
        ]
    out.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
    return out


def message_end(turn: Turn) -> list[tuple[str, dict[str, Any]]]:
    return [
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": turn.stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": turn.usage.output},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]


def stream_events(turn: Turn, ping: bool = True) -> list[tuple[str, dict[str, Any]]]:
    """The Messages streaming events of a complete turn, in order."""
    out = [message_start(turn)]
    if ping:
        out.append(("ping", {"type": "ping"}))
    for index, block in enumerate(turn.blocks):
        out += block_events(index, block)
    return out + message_end(turn)


def interrupted_events(turn: Turn) -> list[tuple[str, dict[str, Any]]]:
    """The opening of a stream that is then cut: message_start, a text block start, one delta."""
    first = next((b["text"] for b in turn.blocks if b["type"] == "text"), DEFAULT_TEXT)
    return [
        message_start(turn),
        (
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        ),
        _delta(0, {"type": "text_delta", "text": pieces(first, 2)[0] if first else ""}),
    ]


def paced(items: Iterable[bytes], pace: float) -> Iterator[bytes]:
    for i, item in enumerate(items):
        if pace and i:
            time.sleep(pace)
        yield item


def sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()
