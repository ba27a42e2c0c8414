"""The real Claude Code CLI, headless, reaching the gateway through its Bedrock and Vertex ingress
and forwarded to the scripted Anthropic upstream.

Claude Code believes it talks to Bedrock (`CLAUDE_CODE_USE_BEDROCK`, InvokeModel with AWS
event-stream answers) or to Vertex (`CLAUDE_CODE_USE_VERTEX`, rawPredict with SSE answers). The
cloud authentication is skipped, so the gateway key travels in `ANTHROPIC_CUSTOM_HEADERS`. The
gateway must turn each request into a Messages request the Anthropic API accepts and each answer
back into the framing the CLI expects, well enough to drive a Bash tool loop and a subagent, and
journal every turn with the session and agent ids Claude Code sends.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import pytest

from claude_cli import Run, find_claude, run_claude_cli

from tollgate_shared_fixtures import gateway_toml, header_value, header_values

CLAUDE_TIMEOUT = 120
PROJECT = "ingress-tests"
AGENT_ID = re.compile(r"a[0-9a-f]{16}")
# Claude Code's default main model, and the id it names it by on Bedrock (2.1.332, region
# us-east-1: the `us.` cross-region inference profile). On Vertex it sends the plain name.
MAIN_MODEL = "claude-opus-5-5"
BEDROCK_MAIN_ID = "us.anthropic.claude-opus-5-5"
VERTEX_PROJECT = "p"
VERTEX_REGION = "us-east5"
# claude-opus-5-5 per million tokens: input $4, output $20, 5-minute cache write $5, cache read
# $0.20. Claude Code marks cache breakpoints, so the upstream reports 120 in, 30 out, 200 written
# to and 1000 read from the cache on every turn.
TURN_COST_NANOS = 120 * 4_000 + 30 * 20_000 + 200 * 5_000 + 1_000 * 200
# The Bedrock and Vertex envelope; the Messages API refuses both fields.
ENVELOPE_FIELDS = ("anthropic_version", "anthropic_beta")

pytestmark = pytest.mark.timeout(CLAUDE_TIMEOUT * 2 + 60)


@dataclass(frozen=True)
class Ingress:
    name: str
    # The model id Claude Code puts in the request path.
    model_id: str
    # Bedrock: the base URL's path; Vertex: the base URL's path, to which Claude Code appends
    # `/projects/…` itself.
    base_path: str

    def env(self, gateway_url: str) -> dict[str, str]:
        if self.name == "bedrock":
            return {
                "CLAUDE_CODE_USE_BEDROCK": "1",
                "ANTHROPIC_BEDROCK_BASE_URL": gateway_url + self.base_path,
                "CLAUDE_CODE_SKIP_BEDROCK_AUTH": "1",
                "AWS_REGION": "us-east-1",
            }
        return {
            "CLAUDE_CODE_USE_VERTEX": "1",
            "ANTHROPIC_VERTEX_BASE_URL": gateway_url + self.base_path,
            "CLAUDE_CODE_SKIP_VERTEX_AUTH": "1",
            "ANTHROPIC_VERTEX_PROJECT_ID": VERTEX_PROJECT,
            "CLOUD_ML_REGION": VERTEX_REGION,
        }

    def turn_path(self) -> str:
        """The gateway path of one streamed turn."""
        if self.name == "bedrock":
            return f"{self.base_path}/model/{self.model_id}/invoke-with-response-stream"
        return (
            f"{self.base_path}/projects/{VERTEX_PROJECT}/locations/{VERTEX_REGION}"
            f"/publishers/anthropic/models/{self.model_id}:streamRawPredict"
        )


INGRESSES = [
    Ingress("bedrock", BEDROCK_MAIN_ID, "/bedrock"),
    # As docs/reference.md gives it for ANTHROPIC_VERTEX_BASE_URL.
    Ingress("vertex", MAIN_MODEL, "/vertex"),
    # As the Vertex SDKs' own base URLs end (`https://{region}-aiplatform.googleapis.com/v1`).
    Ingress("vertex", MAIN_MODEL, "/vertex/v1"),
]
INGRESS_IDS = ["bedrock", "vertex", "vertex-v1"]


@pytest.fixture(scope="module")
def claude_bin() -> str:
    return find_claude()


@pytest.fixture(scope="module")
def gw(configured_gateway_factory, upstream):
    config = gateway_toml(
        providers=[
            {
                "name": "anthropic",
                "kind": "anthropic",
                "base_url": upstream.url,
                "api_key": upstream.api_key,
            }
        ],
        # The Bedrock id means nothing to the Anthropic API or to the price table; the catalogue
        # maps it to the model's Anthropic name. A `[[models]]` entry serves only the providers
        # it lists, so the Anthropic id is spelled out.
        models=[
            {
                "name": MAIN_MODEL,
                "aliases": [BEDROCK_MAIN_ID],
                "providers": {"anthropic": MAIN_MODEL},
            }
        ],
        # A gateway that waits on a silent upstream fails the run in seconds, not minutes.
        server={"upstream_idle_timeout_secs": 30},
    )
    return configured_gateway_factory(config)


@pytest.fixture(scope="module")
def key(gw):
    return gw.create_key("alice", "platform", name="claude-code-ingress")


@pytest.fixture(autouse=True)
def _fresh_upstream_recording(upstream):
    upstream.clear()


@pytest.fixture
def run_claude(claude_bin, gw, key, upstream, tmp_path):
    def run(prompt: str, ingress: Ingress) -> Run:
        env = {
            "ANTHROPIC_CUSTOM_HEADERS": (
                f"x-tollgate-api-key: {key['key']}\nx-tollgate-project: {PROJECT}"
            ),
            # A broken gateway then fails a run in seconds instead of minutes of backoff.
            "CLAUDE_CODE_MAX_RETRIES": "2",
            **ingress.env(gw.url),
        }
        return run_claude_cli(
            claude_bin,
            tmp_path,
            prompt,
            env,
            CLAUDE_TIMEOUT,
            on_timeout=lambda: gateway_side(gw, upstream),
        )

    return run


def upstream_summary(upstream) -> str:
    lines = []
    for r in upstream.model_requests():
        try:
            model = json.loads(r["body"]).get("model")
        except (json.JSONDecodeError, AttributeError):
            model = None
        picked = [
            (n, v) for n, v in r["headers"]
            if n.lower() in ("anthropic-beta", "anthropic-version", "content-type",
                             "x-claude-code-session-id", "x-claude-code-agent-id")
        ]  # fmt: skip
        lines.append(
            f"  {r['method']} {r['path']} -> {r['status']} scenario={r.get('scenario')} "
            f"model={model!r} headers={picked}\n    body: {r['body'][:600]}"
        )
    return f"upstream received {len(lines)} requests:\n" + "\n".join(lines)


def gateway_side(gw, upstream, session_id: str | None = None) -> str:
    """The newest journal records (of the run, and those without a session, when the run's
    session is known) and what the upstream received."""
    records = gw.logs()
    if session_id:
        records = [r for r in records if r.get("session_id") in (session_id, None)]
    records = records[:20]
    journal = "\n".join(
        f"  {r.get('method')} {r.get('path')} -> {r.get('status')} model={r.get('model')!r} "
        f"session={r.get('session_id')} agent={r.get('agent_id')} "
        f"error={r.get('error_type')}: {r.get('error_message')}"
        for r in records
    )
    text = f"--- gateway journal, newest first ---\n{journal}\n"
    if upstream is not None:
        text += f"--- {upstream_summary(upstream)}"
    return text


def assert_completed(run: Run, gw, upstream, expected: str) -> str:
    """The run ended well with `expected` in its answer; returns its session id."""
    ok = (
        run.returncode == 0
        and run.result is not None
        and run.result.get("is_error") is False
        and expected in (run.result.get("result") or "")
        and run.result.get("session_id")
    )
    if not ok:
        pytest.fail(
            f"claude exit {run.returncode} after {run.elapsed:.1f}s, wanted {expected!r} in the "
            f"result\nclaude stdout:\n{run.stdout[-4000:]}\nclaude stderr:\n{run.stderr[-3000:]}\n"
            + gateway_side(gw, upstream, (run.result or {}).get("session_id")),
            pytrace=False,
        )
    return run.result["session_id"]


def assert_upstream_turns(upstream, session_id: str) -> list[dict[str, Any]]:
    """Every upstream request is a clean streamed Messages turn of the session."""
    seen = upstream.model_requests()
    for request in seen:
        label = f"upstream request {request['method']} {request['path']}"
        assert request["path"] == "/v1/messages", label
        assert request["status"] == 200, (
            f"{label}: {request['status']}\n{upstream_summary(upstream)}"
        )
        headers = request["headers"]
        assert header_values(headers, "authorization") == [], f"{label}: Authorization leaked"
        assert header_values(headers, "x-api-key") == [upstream.api_key], label
        leaked = [n for n, _ in headers if n.lower().startswith("x-tollgate-")]
        assert leaked == [], f"{label}: x-tollgate-* headers leaked: {leaked}"
        assert header_value(headers, "x-claude-code-session-id") == session_id, label
        betas = ",".join(header_values(headers, "anthropic-beta")).split(",")
        assert "claude-code-20250219" in betas, f"{label}: anthropic-beta {betas}"
        assert header_value(headers, "anthropic-version"), f"{label}: no anthropic-version"
        assert (header_value(headers, "user-agent") or "").startswith("claude-cli/"), label
        body = json.loads(request["body"])
        assert body.get("model") == MAIN_MODEL, f"{label}: model {body.get('model')!r}"
        assert body.get("stream") is True, f"{label}: stream {body.get('stream')!r}"
        left = [f for f in ENVELOPE_FIELDS if f in body]
        assert left == [], f"{label}: envelope fields {left} reached the Messages API"
    return seen


def session_records(gw, session_id: str, count: int) -> list[dict[str, Any]]:
    """The session's journal records, oldest first, once at least `count` are there."""
    records = gw.wait_for_records(lambda r: r.get("session_id") == session_id, count=count)
    return sorted(records, key=lambda r: r.get("started_at") or "")


def assert_turn_record(record: dict[str, Any], key: dict[str, Any], ingress: Ingress) -> None:
    want = {
        "status": 200,
        "method": "POST",
        "path": ingress.turn_path(),
        "user": "alice",
        "team": "platform",
        "key_id": key["id"],
        "project": PROJECT,
        "provider": "anthropic",
        "model": ingress.model_id,
        "stream": True,
        "input_tokens": 120,
        "output_tokens": 30,
        "cache_creation_input_tokens": 200,
        "cache_read_input_tokens": 1000,
        "cost_nanos": TURN_COST_NANOS,
        "cost_unknown": False,
    }
    wrong = [
        f"{field} = {record.get(field)!r}, want {value!r}"
        for field, value in want.items()
        if record.get(field) != value
    ]
    if "claude-cli/" not in (record.get("user_agent") or ""):
        wrong.append(f"user_agent = {record.get('user_agent')!r}")
    assert not wrong, f"journal record {record.get('id')}: {'; '.join(wrong)}\n{record}"


@pytest.mark.parametrize("ingress", INGRESSES, ids=INGRESS_IDS)
def test_bash_tool_loop(ingress, run_claude, gw, key, upstream):
    run = run_claude("[[scenario:bash]] Run the marker command.", ingress)
    session_id = assert_completed(run, gw, upstream, "Bash said:")
    assert "wire-test" in run.result["result"], run.result

    seen = assert_upstream_turns(upstream, session_id)
    assert len(seen) == 2, upstream_summary(upstream)
    # The Bash output went back through both conversions inside the conversation.
    second = json.loads(seen[1]["body"])
    assert "wire-test" in json.dumps(second["messages"][-1]), second["messages"][-1]

    records = session_records(gw, session_id, 2)
    assert len(records) == 2, f"expected one journal record per turn, got {records}"
    for record in records:
        assert_turn_record(record, key, ingress)
        assert record.get("agent_id") is None, record


@pytest.mark.parametrize("ingress", INGRESSES, ids=INGRESS_IDS)
def test_subagent(ingress, run_claude, gw, key, upstream):
    run = run_claude("[[scenario:agent]] Delegate to a helper.", ingress)
    session_id = assert_completed(run, gw, upstream, "Agent finished.")

    seen = assert_upstream_turns(upstream, session_id)
    assert len(seen) >= 3, upstream_summary(upstream)
    upstream_agents = {header_value(r["headers"], "x-claude-code-agent-id") for r in seen} - {None}
    assert len(upstream_agents) == 1, f"subagent ids seen upstream: {upstream_agents}"
    (agent_id,) = upstream_agents
    assert AGENT_ID.fullmatch(agent_id), agent_id
    assert "subagent" in {r.get("scenario") for r in seen}, upstream_summary(upstream)

    records = session_records(gw, session_id, len(seen))
    assert len(records) == len(seen), (
        f"{len(records)} journal records for {len(seen)} upstream requests: {records}"
    )
    sub = [r for r in records if r.get("agent_id") is not None]
    main = [r for r in records if r.get("agent_id") is None]
    assert sub, f"no journal record carries an agent_id: {records}"
    assert len(main) >= 2, f"main-loop records: {main}"
    for record in sub:
        assert record["agent_id"] == agent_id, record
    for record in records:
        assert_turn_record(record, key, ingress)


@pytest.mark.parametrize("ingress", INGRESSES, ids=INGRESS_IDS)
def test_thinking_tool_loop(ingress, run_claude, gw, key, upstream):
    # The upstream refuses the second turn unless the echoed thinking signature came back intact
    # through the ingress conversion in both directions.
    run = run_claude("[[scenario:thinking]] Think, then run the marker command.", ingress)
    session_id = assert_completed(run, gw, upstream, "tool result was:")
    seen = assert_upstream_turns(upstream, session_id)
    assert len(seen) == 2, upstream_summary(upstream)
    records = session_records(gw, session_id, 2)
    for record in records:
        assert_turn_record(record, key, ingress)
