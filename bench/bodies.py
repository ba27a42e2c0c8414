"""Deterministic Anthropic Messages request bodies for the proxy benchmark.

The large body imitates what Claude Code sends: two system blocks (the second cached), a few dozen
tools with JSON Schemas, and a long conversation of text, tool_use and tool_result blocks. Bodies
are serialised compactly so that the mock upstream's fast mode sees the literal `"stream":true`.
"""

import json
import random

MODEL = "claude-sonnet-4-5"

_WORDS = (
    "the file function return value error config request response stream token cache model "
    "should would could update read write check test build module crate import export path "
    "line column string number object array field struct enum match async await future task "
    "handler router server client proxy upstream header body status retry timeout budget key "
    "team user project session journal cost price usage input output latency bytes buffer "
    "parse encode decode serialize schema tool message content block system assistant result"
).split()

_CODE_LINES = (
    "    let mut buf = Vec::with_capacity(len);",
    "    if status.is_success() { return Ok(resp); }",
    "fn handle(req: Request<Body>) -> Result<Response<Body>, Error> {",
    "        .map_err(|e| Error::Upstream(e.to_string()))?;",
    "    for (name, value) in headers.iter() {",
    "}",
    "    // keep the connection pooled for the next request",
    "impl Drop for Guard { fn drop(&mut self) { self.release(); } }",
    "    match event.kind { Kind::Delta => total += n, _ => {} }",
    "pub struct Usage { pub input_tokens: u64, pub output_tokens: u64 }",
)


def _sentence(rng, n):
    return " ".join(rng.choice(_WORDS) for _ in range(n)).capitalize() + "."


def _paragraph(rng, sentences):
    return " ".join(_sentence(rng, rng.randint(6, 18)) for _ in range(sentences))


def _code(rng, lines):
    return "\n".join(f"{i + 1:>5}\t{rng.choice(_CODE_LINES)}" for i in range(lines))


def _hex(rng, n):
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def _uuid(rng):
    h = _hex(rng, 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def _tool(rng, i):
    props = {}
    for j in range(rng.randint(2, 6)):
        kind = rng.choice(("string", "number", "boolean", "array"))
        prop = {"type": kind, "description": _sentence(rng, rng.randint(8, 20))}
        if kind == "array":
            prop["items"] = {"type": "string"}
        props[f"{rng.choice(_WORDS)}_{j}"] = prop
    return {
        "name": f"{rng.choice(_WORDS).capitalize()}{rng.choice(_WORDS).capitalize()}{i}",
        "description": _paragraph(rng, rng.randint(3, 12)),
        "input_schema": {
            "type": "object",
            "properties": props,
            "required": sorted(props)[:1],
            "additionalProperties": False,
            "$schema": "http://json-schema.org/draft-07/schema#",
        },
    }


def _dump(body):
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _pad_to(body, target, block):
    """Grow the text of `block` (a content block in `body`) until the body is `target` bytes."""
    rng = random.Random(7)
    while len(_dump(body)) < target:
        block["text"] += " " + rng.choice(_WORDS)
    while len(_dump(body)) > target and block["text"].endswith(tuple(_WORDS)):
        block["text"] = block["text"].rsplit(" ", 1)[0]
        if len(_dump(body)) <= target:
            break
    return body


def small_body(stream, target=1000):
    rng = random.Random(1)
    session = _uuid(rng)
    text = {"type": "text", "text": "Explain what this function returns."}
    body = {
        "model": MODEL,
        "max_tokens": 1024,
        "stream": stream,
        "system": [{"type": "text", "text": "You are a concise assistant for a software team."}],
        "messages": [{"role": "user", "content": [text]}],
        "metadata": {"user_id": f"user_{_hex(rng, 64)}_account__session_{session}"},
    }
    return _pad_to(body, target, text)


def large_body(stream, target=120_000):
    rng = random.Random(2)
    session = _uuid(rng)
    body = {
        "model": MODEL,
        "max_tokens": 32000,
        "stream": stream,
        "system": [
            {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.",
             "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": "\n\n".join(_paragraph(rng, 8) for _ in range(14)),
             "cache_control": {"type": "ephemeral"}},
        ],
        "tools": [_tool(rng, i) for i in range(40)],
        "messages": [],
        "metadata": {"user_id": f"user_{_hex(rng, 64)}_account__session_{session}"},
        "temperature": 1,
    }
    msgs = body["messages"]
    msgs.append({"role": "user", "content": [
        {"type": "text", "text": "<system-reminder>\n" + _paragraph(rng, 6) + "\n</system-reminder>"},
        {"type": "text", "text": _paragraph(rng, 3)},
    ]})
    turn = 0
    # Conversation takes whatever room the system prompt and tools leave, minus a margin for padding.
    while len(_dump(body)) < target - 3000:
        tool_id = f"toolu_01{_hex(rng, 22)}"
        msgs.append({"role": "assistant", "content": [
            {"type": "text", "text": _paragraph(rng, 2)},
            {"type": "tool_use", "id": tool_id, "name": body["tools"][turn % 40]["name"],
             "input": {"file_path": f"/repo/src/{rng.choice(_WORDS)}/{rng.choice(_WORDS)}.rs",
                       "limit": 200}},
        ]})
        msgs.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": tool_id,
             "content": [{"type": "text", "text": _code(rng, rng.randint(20, 60))}]},
        ]})
        turn += 1
    last = {"type": "text", "text": _paragraph(rng, 2), "cache_control": {"type": "ephemeral"}}
    msgs.append({"role": "assistant", "content": [{"type": "text", "text": _paragraph(rng, 3)}]})
    msgs.append({"role": "user", "content": [last]})
    return _pad_to(body, target, last)


# name -> (label, builder). Order is the table's row order.
KINDS = {
    "small-json": ("1 KB JSON", lambda: small_body(False)),
    "small-stream": ("1 KB stream", lambda: small_body(True)),
    "large-json": ("120 KB JSON", lambda: large_body(False)),
    "large-stream": ("120 KB stream", lambda: large_body(True)),
}


def write_all(outdir):
    """Write one file per body kind; returns {kind: path}."""
    import os
    os.makedirs(outdir, exist_ok=True)
    paths = {}
    for kind, (_, build) in KINDS.items():
        path = os.path.join(outdir, f"{kind}.json")
        with open(path, "wb") as f:
            f.write(_dump(build()))
        paths[kind] = path
    return paths


if __name__ == "__main__":
    import sys
    for kind, path in write_all(sys.argv[1] if len(sys.argv) > 1 else "bodies").items():
        print(kind, path)
