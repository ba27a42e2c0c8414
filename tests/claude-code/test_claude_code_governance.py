"""Policies as a developer meets them: the real Claude Code CLI through a gateway with budgets,
a loop breaker and a concurrency limit, against the scripted upstream.

What must hold (wire reference §8): a spent budget or a broken loop ends the run at once with a
message that says why (429 + `x-should-retry: false`), while a rate limit makes Claude Code wait
(429 + `retry-after`) and then finish normally.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import pytest

from claude_cli import find_claude, run_claude_cli

CLAUDE_TIMEOUT = 120

pytestmark = pytest.mark.timeout(CLAUDE_TIMEOUT * 2 + 60)


@pytest.fixture(scope="module")
def claude_bin() -> str:
    return find_claude()


@pytest.fixture(autouse=True)
def _fresh_upstream_recording(upstream):
    upstream.clear()


def claude(claude_bin, tmp_path, gateway, key: str, prompt: str, headers: str = "", retries=None):
    env = {"ANTHROPIC_BASE_URL": gateway.url, "ANTHROPIC_AUTH_TOKEN": key}
    if headers:
        env["ANTHROPIC_CUSTOM_HEADERS"] = headers
    if retries is not None:
        env["CLAUDE_CODE_MAX_RETRIES"] = str(retries)
    return run_claude_cli(claude_bin, tmp_path, prompt, env, CLAUDE_TIMEOUT)


def test_a_budget_spent_mid_task_ends_the_run_at_once_with_the_budget_message(
    claude_bin, tmp_path, gateway_factory, upstream
):
    gateway = gateway_factory(
        extra_toml="""
[governance]
contact = "the platform team (#ai-gateway)"

[[policies]]
scope = "team:platform"
name = "platform monthly budget"
[[policies.budgets]]
period = "month"
amount_usd = 0.50
"""
    )
    key = gateway.create_key("alice", "platform")["key"]
    # Each turn reports 100k input tokens of Opus 5.5 ($0.40): the first turn fits the $0.50
    # budget, the second (after the Bash call) does not.
    run = claude(
        claude_bin,
        tmp_path,
        gateway,
        key,
        "[[scenario:bash]] Run the marker command.",
        headers="x-mock-usage: 100000,1000,0,0",
    )
    output = run.stdout + run.stderr
    assert run.returncode != 0 or (run.result or {}).get("is_error"), run.describe()
    assert "budget exhausted" in output, run.describe()
    assert "platform monthly budget" in output, run.describe()
    assert "#ai-gateway" in output, run.describe()
    # `x-should-retry: false`: no backoff, the run ends at once.
    assert run.elapsed < 30, f"took {run.elapsed:.1f}s\n{run.describe()}"
    assert len(upstream.model_requests()) == 1, upstream.model_requests()
    refused = gateway.wait_for_records(lambda r: r.get("status") == 429, count=1)
    assert refused[0]["policy"] == "platform monthly budget", refused[0]


def test_a_model_repeating_the_same_bash_call_trips_the_loop_breaker(
    claude_bin, tmp_path, gateway_factory, upstream
):
    gateway = gateway_factory(
        extra_toml="""
[[policies]]
scope = "org"
name = "runaway loops"
session = { loop_breaker = { repeats = 3, within_turns = 6 } }
"""
    )
    key = gateway.create_key("alice", "platform")["key"]
    run = claude(claude_bin, tmp_path, gateway, key, "[[scenario:loop]] Make the tests pass.")
    output = run.stdout + run.stderr
    assert "runaway loop stopped" in output, run.describe()
    assert "Bash" in output, run.describe()
    assert run.elapsed < 60, f"took {run.elapsed:.1f}s\n{run.describe()}"
    # Three identical calls were made (turns 1–3 answered); the fourth turn was refused.
    seen = upstream.model_requests()
    assert len(seen) == 3, [r["path"] for r in seen]
    refused = gateway.wait_for_records(lambda r: r.get("status") == 429, count=1)
    assert refused[0]["policy"] == "runaway loops", refused[0]
    assert refused[0]["session_id"] == (run.result or {}).get("session_id", refused[0]["session_id"])


def test_a_rate_limit_makes_claude_code_wait_and_then_succeed(
    claude_bin, tmp_path, gateway_factory, upstream
):
    gateway = gateway_factory(
        extra_toml="""
[[policies]]
scope = "user:alice"
name = "one at a time"
rate = { concurrent = 1 }
"""
    )
    key = gateway.create_key("alice", "platform")["key"]

    # Another request of alice's holds the only slot for a few seconds.
    def hold_the_slot():
        body = json.dumps(
            {"model": "claude-haiku-5-5", "max_tokens": 10,
             "messages": [{"role": "user", "content": "hold"}]}
        ).encode()  # fmt: skip
        req = urllib.request.Request(
            f"{gateway.url}/v1/messages",
            data=body,
            headers={
                "content-type": "application/json",
                "anthropic-version": "2023-06-01",
                "authorization": f"Bearer {key}",
                "x-mock-scenario": "slow:5000",
            },
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()

    holder = threading.Thread(target=hold_the_slot)
    holder.start()
    time.sleep(0.5)
    run = claude(claude_bin, tmp_path, gateway, key, "[[scenario:text]] [[say:waited]] hi")
    holder.join()
    assert run.returncode == 0, run.describe()
    assert run.result and run.result.get("is_error") is False, run.describe()
    assert run.result.get("result") == "waited", run.describe()
    session_id = run.result["session_id"]
    refused = gateway.wait_for_records(
        lambda r: r.get("session_id") == session_id and r.get("status") == 429, count=1
    )
    assert refused[0]["error_type"] == "rate_limit_error", refused[0]
    assert refused[0]["policy"] == "one at a time", refused[0]
    served = gateway.wait_for_records(
        lambda r: r.get("session_id") == session_id and r.get("status") == 200, count=1
    )
    assert len(served) == 1, served
