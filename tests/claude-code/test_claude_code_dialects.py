"""The real Claude Code CLI, headless, through the gateway's Anthropic ingress to Bedrock and to
an OpenAI-compatible upstream, played by the strict fakes in tests/fakes.

Claude Code believes it talks to Anthropic: it sends its own betas (`claude-code-20250219`
among them), cache breakpoints, thinking settings and its default model id. The gateway must turn
all of that into a request the provider accepts, and turn the provider's answers (AWS
event-stream frames, chat-completion chunks) back into a stream Claude Code can drive a tool loop
and a subagent with. Prompts carry `[[scenario:…]]` tags so every turn is known in advance.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from claude_cli import Run, find_claude, run_claude_cli

from tollgate_shared_fixtures import (
    bedrock_provider,
    gateway_toml,
    openai_provider,
)

CLAUDE_TIMEOUT = 120
PROJECT = "dialect-tests"
AGENT_ID = re.compile(r"a[0-9a-f]{16}")
# Claude Code's default main model, and the ids it has on each provider.
MAIN_MODEL = "claude-opus-5-5"
BEDROCK_MAIN_ID = "us.anthropic.claude-opus-5-5-v1:0"
OPENAI_MAIN_ID = "gpt-test"
# claude-opus-5-5 per million tokens, as nanos per token: input $4, output $20, 5-minute cache
# write $5, cache read $0.20.
OPUS_55 = (4_000, 20_000, 5_000, 200)

pytestmark = pytest.mark.timeout(CLAUDE_TIMEOUT * 2 + 60)


@pytest.fixture(scope="module")
def claude_bin() -> str:
    return find_claude()


@pytest.fixture(scope="module")
def gw(configured_gateway_factory, bedrock_fake, openai_fake):
    config = gateway_toml(
        providers=[bedrock_provider(bedrock_fake), openai_provider(openai_fake)],
        models=[
            {
                "name": MAIN_MODEL,
                "providers": {"bedrock": BEDROCK_MAIN_ID, "oai": OPENAI_MAIN_ID},
            },
        ],
        # A gateway that waits on a silent upstream fails the run in seconds, not minutes.
        server={"upstream_idle_timeout_secs": 30},
    )
    # Request bodies in the journal show what Claude Code itself sent back on a later turn.
    config += "\n[journal]\nstore_bodies = true\nbody_cap_bytes = 4194304\n"
    return configured_gateway_factory(config)


@pytest.fixture(scope="module")
def key(gw):
    return gw.create_key("alice", "platform", name="claude-code-dialects")


@pytest.fixture(autouse=True)
def _fresh_recordings(bedrock_fake, openai_fake):
    bedrock_fake.clear()
    openai_fake.clear()


@pytest.fixture
def run_claude(claude_bin, gw, key, tmp_path):
    def run(prompt: str, provider: str, **extra_env: str) -> Run:
        env = {
            "ANTHROPIC_BASE_URL": gw.url,
            "ANTHROPIC_AUTH_TOKEN": key["key"],
            "ANTHROPIC_CUSTOM_HEADERS": (
                f"x-tollgate-project: {PROJECT}\nx-tollgate-provider: {provider}"
            ),
            # A broken gateway then fails a run in seconds instead of minutes of backoff.
            "CLAUDE_CODE_MAX_RETRIES": "2",
            **extra_env,
        }
        return run_claude_cli(claude_bin, tmp_path, prompt, env, CLAUDE_TIMEOUT)

    return run


def evidence(run: Run, gw, fake) -> str:
    """Everything needed to tell whether Claude Code, the gateway or the provider went wrong."""
    return (
        f"claude exit {run.returncode} after {run.elapsed:.1f}s\n"
        f"claude stdout:\n{run.stdout[-4000:]}\nclaude stderr:\n{run.stderr[-3000:]}\n"
        f"--- gateway stderr ---\n{gw.proc.tail(4000)}\n"
        f"--- {fake.summary()[:8000]}"
    )


def assert_completed(run: Run, gw, fake, expected: str) -> str:
    """The run ended well with `expected` in its answer; returns its session id."""
    ok = (
        run.returncode == 0
        and run.result is not None
        and run.result.get("is_error") is False
        and expected in (run.result.get("result") or "")
        and run.result.get("session_id")
    )
    assert ok, f"Claude Code did not complete (wanted {expected!r})\n{evidence(run, gw, fake)}"
    return run.result["session_id"]


def assert_all_accepted(fake, run: Run, gw) -> list[dict[str, Any]]:
    seen = fake.model_requests()
    refused = [r for r in seen if r["status"] != 200 or r.get("scenario") == "rejected"]
    assert not refused, f"the provider refused the gateway's requests\n{evidence(run, gw, fake)}"
    return seen


def session_records(gw, session_id: str, count: int) -> list[dict[str, Any]]:
    """The session's journal records, oldest first, once at least `count` are there."""
    records = gw.wait_for_records(lambda r: r.get("session_id") == session_id, count=count)
    return sorted(records, key=lambda r: r.get("started_at") or "")


def answered_usage(provider: str, request: dict[str, Any]) -> dict[str, int]:
    """What the fake reported, as Anthropic counts it (input excludes cached tokens)."""
    u = request["usage"]
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
        "input_tokens": u["input_tokens"],
        "output_tokens": u["output_tokens"],
        "cache_creation_input_tokens": u.get("cache_creation_input_tokens") or 0,
        "cache_read_input_tokens": u.get("cache_read_input_tokens") or 0,
    }


def assert_turn_records(
    records: list[dict[str, Any]], seen: list[dict[str, Any]], provider: str, key: dict
) -> None:
    """One journal record per provider call, each with identity, tokens and cost of its turn."""
    assert len(records) == len(seen), (
        f"{len(records)} journal records for {len(seen)} provider calls: {records}"
    )
    # Every turn of these scenarios reports the same usage, so records and calls pair in order.
    for record, request in zip(records, seen):
        label = f"journal record {record.get('id')}"
        usage = answered_usage(provider, request)
        assert record.get("status") == 200, f"{label}: {record}"
        assert record.get("provider") == provider, f"{label}: provider {record.get('provider')!r}"
        assert record.get("project") == PROJECT, f"{label}: project {record.get('project')!r}"
        assert record.get("user") == "alice" and record.get("team") == "platform", label
        assert record.get("key_id") == key["id"], f"{label}: key_id {record.get('key_id')!r}"
        assert record.get("model") == MAIN_MODEL, f"{label}: model {record.get('model')!r}"
        assert record.get("stream") is True, f"{label}: stream {record.get('stream')!r}"
        assert record.get("input_tokens") == usage["input_tokens"] == 120, f"{label}: {record}"
        assert record.get("output_tokens") == usage["output_tokens"] == 30, f"{label}: {record}"
        for field in ("cache_creation_input_tokens", "cache_read_input_tokens"):
            assert (record.get(field) or 0) == usage[field], (
                f"{label}: {field} = {record.get(field)!r}, the provider reported {usage[field]}"
            )
        want = (
            usage["input_tokens"] * OPUS_55[0]
            + usage["output_tokens"] * OPUS_55[1]
            + usage["cache_creation_input_tokens"] * OPUS_55[2]
            + usage["cache_read_input_tokens"] * OPUS_55[3]
        )
        assert record.get("cost_nanos") == want, (
            f"{label}: cost_nanos {record.get('cost_nanos')!r} (unknown="
            f"{record.get('cost_unknown')}), want {want} for {usage}"
        )
        assert not record.get("error_type"), f"{label}: {record}"
        assert "claude-cli/" in (record.get("user_agent") or ""), label


def assert_bedrock_call(request: dict[str, Any]) -> dict[str, Any]:
    assert request["model_id"] == BEDROCK_MAIN_ID, request["path"]
    assert request["path"].endswith("/invoke-with-response-stream"), request["path"]
    body = json.loads(request["body"])
    assert "claude-code-20250219" not in (body.get("anthropic_beta") or []), body["anthropic_beta"]
    return body


# --- (a) Anthropic ingress -> Bedrock -----------------------------------------------------------


def test_bedrock_bash_tool_loop(run_claude, gw, key, bedrock_fake):
    run = run_claude("[[scenario:bash]] Run the marker command.", "bedrock")
    session_id = assert_completed(run, gw, bedrock_fake, "Bash said:")
    assert "wire-test" in run.result["result"], evidence(run, gw, bedrock_fake)

    seen = assert_all_accepted(bedrock_fake, run, gw)
    assert len(seen) == 2, evidence(run, gw, bedrock_fake)
    bodies = [assert_bedrock_call(r) for r in seen]
    # The command's output went back to the provider as the tool result.
    assert "wire-test" in json.dumps(bodies[1]["messages"][-1]), bodies[1]["messages"][-1]
    # Claude Code marks cache breakpoints; Bedrock reports cache use for them.
    assert all(r["usage"]["cache_read_input_tokens"] == 1000 for r in seen), seen

    records = session_records(gw, session_id, 2)
    assert_turn_records(records, seen, "bedrock", key)
    assert all(r.get("agent_id") is None for r in records), records


def test_bedrock_subagent(run_claude, gw, key, bedrock_fake):
    run = run_claude("[[scenario:agent]] Delegate to a helper.", "bedrock")
    session_id = assert_completed(run, gw, bedrock_fake, "Agent finished.")

    seen = assert_all_accepted(bedrock_fake, run, gw)
    assert len(seen) >= 3, evidence(run, gw, bedrock_fake)
    for request in seen:
        assert_bedrock_call(request)
    scenarios = [r["scenario"] for r in seen]
    assert "subagent" in scenarios, scenarios

    records = session_records(gw, session_id, len(seen))
    assert_turn_records(records, seen, "bedrock", key)
    sub = [r for r in records if r.get("agent_id") is not None]
    main = [r for r in records if r.get("agent_id") is None]
    assert sub, f"no journal record carries an agent_id: {records}"
    assert len(main) >= 2, f"main-loop records: {main}"
    agent_ids = {r["agent_id"] for r in sub}
    assert len(agent_ids) == 1 and AGENT_ID.fullmatch(next(iter(agent_ids))), agent_ids


# --- (d) Anthropic ingress -> OpenAI-compatible ---------------------------------------------------


def test_openai_bash_tool_loop(run_claude, gw, key, openai_fake):
    # Tool search relies on Anthropic-only tool types that Chat Completions cannot express.
    run = run_claude(
        "[[scenario:bash]] Run the marker command.", "oai", ENABLE_TOOL_SEARCH="false"
    )
    session_id = assert_completed(run, gw, openai_fake, "Bash said:")
    assert "wire-test" in run.result["result"], evidence(run, gw, openai_fake)

    seen = assert_all_accepted(openai_fake, run, gw)
    assert len(seen) == 2, evidence(run, gw, openai_fake)
    bodies = [json.loads(r["body"]) for r in seen]
    for body in bodies:
        assert body["model"] == OPENAI_MAIN_ID, body["model"]
        assert body.get("stream") is True, body.get("stream")
    assert "Bash" in [t["function"]["name"] for t in bodies[0]["tools"]], bodies[0]["tools"]
    tool_messages = [m for m in bodies[1]["messages"] if m["role"] == "tool"]
    assert len(tool_messages) == 1 and "wire-test" in json.dumps(tool_messages[0]), tool_messages
    # Without the usage chunk the gateway could not know what the turn cost.
    assert all(r.get("usage_reported") for r in seen), (
        "stream_options.include_usage not requested: "
        + json.dumps([b.get("stream_options") for b in bodies])
    )

    records = session_records(gw, session_id, 2)
    assert_turn_records(records, seen, "oai", key)


def test_bedrock_thinking_tool_loop(run_claude, gw, key, bedrock_fake):
    # The provider signs its thinking block; Claude Code echoes it with the tool result, and the
    # provider refuses the second turn unless the signature survived both conversions.
    run = run_claude("[[scenario:thinking]] Think, then run the marker command.", "bedrock")
    session_id = assert_completed(run, gw, bedrock_fake, "tool result was:")
    seen = assert_all_accepted(bedrock_fake, run, gw)
    assert len(seen) == 2, evidence(run, gw, bedrock_fake)
    second = assert_bedrock_call(seen[1])
    echoed = [
        b
        for m in second["messages"]
        if m["role"] == "assistant" and isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "thinking"
    ]
    assert echoed and all(b.get("signature") for b in echoed), second["messages"]
    records = session_records(gw, session_id, 2)
    assert_turn_records(records, seen, "bedrock", key)


def test_openai_reasoning_tool_loop(run_claude, gw, key, openai_fake):
    # The server's `reasoning_content` reaches Claude Code as an unsigned thinking block; Claude
    # Code sends it back with the tool result, and the strict fake refuses the second turn if any
    # of it (a thinking part, `reasoning_content`, a signature) leaks into the Chat request.
    run = run_claude(
        "[[scenario:thinking]] Think, then run the marker command.",
        "oai",
        ENABLE_TOOL_SEARCH="false",
    )
    session_id = assert_completed(run, gw, openai_fake, "tool result was:")
    seen = assert_all_accepted(openai_fake, run, gw)
    assert len(seen) == 2, evidence(run, gw, openai_fake)
    assert all(r["scenario"] == "thinking" for r in seen), seen
    records = session_records(gw, session_id, 2)
    assert_turn_records(records, seen, "oai", key)
    # Claude Code kept the unsigned block and sent it back as it got it, empty signature and all.
    sent_back = [
        b
        for m in json.loads(records[1]["request_body"])["messages"]
        if m["role"] == "assistant" and isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "thinking"
    ]
    assert [b.get("signature") for b in sent_back] == [""], sent_back
    assert sent_back[0]["thinking"].startswith("The script for turn"), sent_back


def test_openai_subagent(run_claude, gw, key, openai_fake):
    run = run_claude(
        "[[scenario:agent]] Delegate to a helper.", "oai", ENABLE_TOOL_SEARCH="false"
    )
    session_id = assert_completed(run, gw, openai_fake, "Agent finished.")

    seen = assert_all_accepted(openai_fake, run, gw)
    assert len(seen) >= 3, evidence(run, gw, openai_fake)
    assert "subagent" in [r["scenario"] for r in seen], seen

    records = session_records(gw, session_id, len(seen))
    assert_turn_records(records, seen, "oai", key)
    sub = [r for r in records if r.get("agent_id") is not None]
    assert sub, f"no journal record carries an agent_id: {records}"
    assert all(AGENT_ID.fullmatch(r["agent_id"]) for r in sub), sub
