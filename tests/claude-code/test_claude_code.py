"""The real Claude Code CLI, headless, through the gateway to the scripted upstream.

The CLI is the pinned one that scripts/setup.sh installs under .tools/node. Prompts carry
`[[scenario:…]]` tags that make the scripted upstream play a text answer, a Bash tool loop or a
subagent, so every turn Claude Code takes is known in advance.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from claude_cli import Run, find_claude, run_claude_cli

from tollgate_shared_fixtures import header_value

CLAUDE_TIMEOUT = 120
PROJECT = "wire-tests"
AGENT_ID = re.compile(r"a[0-9a-f]{16}")
# Claude Code's default main model.
MAIN_MODEL = "claude-opus-5-5"

pytestmark = pytest.mark.timeout(CLAUDE_TIMEOUT * 2 + 60)


@pytest.fixture(scope="module")
def claude_bin() -> str:
    return find_claude()


@pytest.fixture(autouse=True)
def _fresh_upstream_recording(upstream):
    upstream.clear()


@pytest.fixture
def run_claude(claude_bin, gateway, tmp_path):
    def run(prompt: str, key: str, max_retries: int | None = 2) -> Run:
        env = {
            "ANTHROPIC_BASE_URL": gateway.url,
            "ANTHROPIC_AUTH_TOKEN": key,
            "ANTHROPIC_CUSTOM_HEADERS": f"x-tollgate-project: {PROJECT}",
        }
        if max_retries is not None:
            # A broken gateway then fails a run in seconds instead of minutes of backoff.
            env["CLAUDE_CODE_MAX_RETRIES"] = str(max_retries)
        return run_claude_cli(claude_bin, tmp_path, prompt, env, CLAUDE_TIMEOUT)

    return run


def session_records(gateway, session_id: str, count: int) -> list[dict[str, Any]]:
    """The session's journal records, oldest first, once at least `count` are there."""
    records = gateway.wait_for_records(lambda r: r.get("session_id") == session_id, count=count)
    return sorted(records, key=lambda r: r.get("started_at") or "")


def assert_turn_record(record: dict[str, Any], key: dict[str, Any]) -> None:
    label = f"journal record {record.get('id')}"
    assert record.get("status") == 200, f"{label}: {record}"
    assert record.get("project") == PROJECT, f"{label}: project {record.get('project')!r}"
    assert record.get("user") == "alice", f"{label}: user {record.get('user')!r}"
    assert record.get("team") == "platform", f"{label}: team {record.get('team')!r}"
    assert record.get("key_id") == key["id"], f"{label}: key_id {record.get('key_id')!r}"
    assert record.get("model") == MAIN_MODEL, f"{label}: model {record.get('model')!r}"
    assert record.get("stream") is True, f"{label}: stream {record.get('stream')!r}"
    assert record.get("input_tokens") == 120, f"{label}: {record}"
    assert record.get("output_tokens") == 30, f"{label}: {record}"
    # Claude Code marks cache breakpoints, so the upstream reports cache use on every turn.
    assert record.get("cache_creation_input_tokens") == 200, f"{label}: {record}"
    assert record.get("cache_read_input_tokens") == 1000, f"{label}: {record}"
    assert isinstance(record.get("cost_nanos"), int) and record["cost_nanos"] > 0, (
        f"{label}: cost_nanos {record.get('cost_nanos')!r}"
    )
    assert "claude-cli/" in (record.get("user_agent") or ""), f"{label}: {record.get('user_agent')!r}"


def assert_upstream_turns(upstream, session_id: str, count: int) -> list[dict[str, Any]]:
    seen = upstream.model_requests()
    assert len(seen) == count, f"upstream saw {len(seen)} requests: {[r['path'] for r in seen]}"
    for request in seen:
        assert request["path"] == "/v1/messages?beta=true"
        assert request["status"] == 200, request
        headers = request["headers"]
        assert header_value(headers, "x-claude-code-session-id") == session_id
        assert "claude-code-20250219" in (header_value(headers, "anthropic-beta") or "")
        assert (header_value(headers, "user-agent") or "").startswith("claude-cli/")
    return seen


def test_text_answer(run_claude, gateway, gateway_key, upstream):
    run = run_claude("[[scenario:text]] [[say:pong-42]] hi", gateway_key["key"])
    assert run.returncode == 0, run.describe()
    assert run.result is not None, run.describe()
    assert run.result.get("is_error") is False, run.describe()
    assert run.result.get("result") == "pong-42", run.describe()
    session_id = run.result.get("session_id")
    assert session_id, run.describe()

    assert_upstream_turns(upstream, session_id, 1)
    records = session_records(gateway, session_id, 1)
    assert len(records) == 1, records
    assert_turn_record(records[0], gateway_key)
    assert records[0].get("agent_id") is None


def test_bash_tool_loop(run_claude, gateway, gateway_key, upstream):
    run = run_claude("[[scenario:bash]] Run the marker command.", gateway_key["key"])
    assert run.returncode == 0, run.describe()
    assert run.result and run.result.get("is_error") is False, run.describe()
    assert "Bash said:" in run.result.get("result", ""), run.describe()
    assert "wire-test" in run.result["result"], run.describe()
    session_id = run.result["session_id"]

    seen = assert_upstream_turns(upstream, session_id, 2)
    second = json.loads(seen[1]["body"])
    # The tool result went back through the gateway in the conversation.
    assert "wire-test" in json.dumps(second["messages"][-1]), second["messages"][-1]

    records = session_records(gateway, session_id, 2)
    assert len(records) == 2, f"expected one journal record per turn, got {records}"
    for record in records:
        assert_turn_record(record, gateway_key)
        assert record.get("agent_id") is None, record


def test_subagent(run_claude, gateway, gateway_key, upstream):
    run = run_claude("[[scenario:agent]] Delegate to a helper.", gateway_key["key"])
    assert run.returncode == 0, run.describe()
    assert run.result and run.result.get("is_error") is False, run.describe()
    assert "Agent finished." in run.result.get("result", ""), run.describe()
    session_id = run.result["session_id"]

    seen = upstream.model_requests()
    assert len(seen) >= 3, f"upstream saw {len(seen)} requests"
    upstream_agents = {
        header_value(r["headers"], "x-claude-code-agent-id") for r in seen
    } - {None}
    assert len(upstream_agents) == 1, f"subagent ids seen upstream: {upstream_agents}"
    (agent_id,) = upstream_agents
    assert AGENT_ID.fullmatch(agent_id), agent_id

    records = session_records(gateway, session_id, 3)
    assert len(records) == len(seen), (
        f"{len(records)} journal records for {len(seen)} upstream requests"
    )
    sub = [r for r in records if r.get("agent_id") is not None]
    main = [r for r in records if r.get("agent_id") is None]
    assert sub, f"no journal record carries an agent_id: {records}"
    assert len(main) >= 2, f"main-loop records: {main}"
    for record in sub:
        assert AGENT_ID.fullmatch(record["agent_id"]), record["agent_id"]
        assert record["agent_id"] == agent_id
    for record in records:
        assert_turn_record(record, gateway_key)


def test_revoked_key_fails_fast(run_claude, gateway, upstream):
    key = gateway.create_key("alice", "platform", name="claude-code-revoked")
    gateway.revoke_key(key["id"])
    # No retry cap: only the gateway's `x-should-retry: false` keeps Claude Code from backing off.
    run = run_claude("[[scenario:text]] hi", key["key"], max_retries=None)
    assert run.returncode != 0, run.describe()
    assert run.elapsed < 20, f"took {run.elapsed:.1f}s: Claude Code retried\n{run.describe()}"
    assert run.result is not None, run.describe()
    assert run.result.get("is_error") is True, run.describe()
    assert run.result.get("api_error_status") == 401, run.describe()
    assert upstream.model_requests() == []
