"""The real Claude Code CLI through routes.

- A route whose primary target fails every turn with 529 or 500: the gateway falls back to the
  scripted upstream before any byte reaches Claude Code, so the run completes without error
  although Claude Code itself is told not to retry. The primary is a `simulator` provider with
  injected errors; the fallback is the strict scripted upstream playing the Bash tool loop and
  the subagent scenarios.
- A weighted route over two providers (both the scripted upstream under different names): every
  turn of a session, and every turn of its subagent, stays on one provider — session affinity
  from the headers Claude Code really sends.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from claude_cli import Run, find_claude, run_claude_cli

from tollgate_shared_fixtures import Gateway

CLAUDE_TIMEOUT = 120
# Claude Code's default main model.
MAIN_MODEL = "claude-opus-5-5"

pytestmark = pytest.mark.timeout(CLAUDE_TIMEOUT * 2 + 60)


FAILING_PRIMARY = f"""
[[providers]]
name = "overloaded"
kind = "simulator"
errors = {{ "529" = 0.5, "500" = 0.5 }}

# Every turn meets the failing primary: its breaker never opens in this test.
[routing]
breaker_failures = 100000

[[routes]]
name = "claude-code"
match = "{MAIN_MODEL}"
targets = [{{ provider = "overloaded" }}, {{ provider = "anthropic" }}]
"""

# `URL` and `MODEL` are filled in by the fixture.
TWO_EQUAL_PROVIDERS = """
[[providers]]
name = "twin-a"
kind = "anthropic"
base_url = "URL"
api_key = "${UPSTREAM_KEY}"

[[providers]]
name = "twin-b"
kind = "anthropic"
base_url = "URL"
api_key = "${UPSTREAM_KEY}"

[[routes]]
name = "claude-code"
match = "MODEL"
strategy = "weighted"
targets = [{ provider = "twin-a" }, { provider = "twin-b" }]
"""


@pytest.fixture(scope="module")
def routed_gateway(upstream, tmp_path_factory):  # noqa: F811
    gw = Gateway(upstream, tmp_path_factory.mktemp("routed-gateway"), extra_toml=FAILING_PRIMARY)
    yield gw
    gw.close()


@pytest.fixture(scope="module")
def balanced_gateway(upstream, tmp_path_factory):  # noqa: F811
    extra = TWO_EQUAL_PROVIDERS.replace("URL", upstream.url).replace("MODEL", MAIN_MODEL)
    gw = Gateway(upstream, tmp_path_factory.mktemp("balanced-gateway"), extra_toml=extra)
    yield gw
    gw.close()


@pytest.fixture(scope="module")
def routed_key(routed_gateway):
    return routed_gateway.create_key("alice", "platform", name="routing-tests")


@pytest.fixture(autouse=True)
def _fresh_upstream_recording(upstream):  # noqa: F811
    upstream.clear()


def run_claude(gateway: Gateway, key: str, prompt: str, tmp_path: Path) -> Run:
    env = {
        "ANTHROPIC_BASE_URL": gateway.url,
        "ANTHROPIC_AUTH_TOKEN": key,
        # Claude Code must not paper over a failure with its own retries: the gateway's
        # fallback is what is under test.
        "CLAUDE_CODE_MAX_RETRIES": "0",
    }
    return run_claude_cli(find_claude(), tmp_path, prompt, env, CLAUDE_TIMEOUT)


def routed_records(gateway: Gateway, session_id: str, count: int) -> list[dict]:
    records = gateway.wait_for_records(
        lambda r: r.get("session_id") == session_id and r.get("route") == "claude-code",
        count=count,
    )
    return sorted(records, key=lambda r: r.get("started_at") or "")


def assert_fell_back(record: dict) -> None:
    attempts = record.get("attempts") or []
    assert [a.get("provider") for a in attempts] == ["overloaded", "anthropic"], record
    assert attempts[0].get("status") in (529, 500), record
    assert attempts[0].get("kind") == "first", record
    assert attempts[1].get("status") == 200 and attempts[1].get("kind") == "fallback", record
    assert record.get("status") == 200 and record.get("provider") == "anthropic", record
    assert record.get("error_type") is None, record


def test_bash_tool_loop_survives_a_failing_primary(routed_gateway, routed_key, upstream, tmp_path):  # noqa: F811
    run = run_claude(
        routed_gateway, routed_key["key"], "[[scenario:bash]] Run the marker command.", tmp_path
    )
    assert run.returncode == 0, run.describe()
    assert run.result and run.result.get("is_error") is False, run.describe()
    assert "wire-test" in run.result.get("result", ""), run.describe()
    session_id = run.result["session_id"]

    # The scripted upstream saw exactly Claude Code's two turns: no duplicate, no failure.
    seen = upstream.model_requests()
    assert len(seen) == 2 and all(r["status"] == 200 for r in seen), seen
    records = routed_records(routed_gateway, session_id, 2)
    assert len(records) == 2, records
    for record in records:
        assert_fell_back(record)


def test_subagent_survives_a_failing_primary(routed_gateway, routed_key, upstream, tmp_path):  # noqa: F811
    run = run_claude(
        routed_gateway, routed_key["key"], "[[scenario:agent]] Delegate to a helper.", tmp_path
    )
    assert run.returncode == 0, run.describe()
    assert run.result and run.result.get("is_error") is False, run.describe()
    assert "Agent finished." in run.result.get("result", ""), run.describe()
    session_id = run.result["session_id"]

    records = routed_records(routed_gateway, session_id, 3)
    assert len(records) >= 3, records
    assert any(r.get("agent_id") for r in records), "no subagent turn went through the route"
    for record in records:
        assert_fell_back(record)


def test_sessions_and_their_subagents_stay_on_one_provider(balanced_gateway, upstream, tmp_path):  # noqa: F811
    key = balanced_gateway.create_key("alice", "platform", name="affinity-tests")["key"]
    placements = []
    for i in range(4):
        run = run_claude(
            balanced_gateway, key, "[[scenario:agent]] Delegate to a helper.", tmp_path / str(i)
        )
        assert run.returncode == 0, run.describe()
        assert run.result and run.result.get("is_error") is False, run.describe()
        records = routed_records(balanced_gateway, run.result["session_id"], 3)
        main = {r.get("provider") for r in records if not r.get("agent_id")}
        sub = {r.get("provider") for r in records if r.get("agent_id")}
        assert len(main) == 1 and len(sub) == 1, records
        assert all(r.get("affinity") is True for r in records), records
        placements.append((main.pop(), sub.pop()))
    print(f"session placements (main loop, subagent): {placements}")
