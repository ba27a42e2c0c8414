"""Shared fixtures: a strict scripted Anthropic upstream and a Tollgate gateway in front of it.

Binaries come from `TOLLGATE_BIN` / `SCRIPTED_UPSTREAM_BIN`, else from
`$CARGO_TARGET_DIR/debug/` (default target dir `/var/tmp/tollgate-target`). A missing binary
fails the tests: these are the end-to-end checks of the gateway and must never pass vacuously.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterable

import httpx2
import pytest

# tests/python/conftest.py loads this file itself when pytest's rootdir lies below tests/.
sys.modules.setdefault("tollgate_shared_fixtures", sys.modules[__name__])

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TARGET_DIR = "/var/tmp/tollgate-target"

START_TIMEOUT = 30.0
CLI_TIMEOUT = 30.0
JOURNAL_TIMEOUT = 10.0

# Variables that would change how the SDKs, the gateway or its CLI pick credentials and servers.
_SCRUBBED_ENV = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_CUSTOM_HEADERS",
    "ANTHROPIC_MODEL",
    "ANTHROPIC_PROFILE",
    "ANTHROPIC_CONFIG_DIR",
    "TOLLGATE_ADMIN_KEY",
    "TOLLGATE_SERVER",
    "TOLLGATE_ANTHROPIC_BASE_URL",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
)
for _name in _SCRUBBED_ENV:
    os.environ.pop(_name, None)
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
    env.update(extra)
    return env


def find_binary(env_var: str, name: str) -> str:
    explicit = os.environ.get(env_var)
    if explicit:
        path = Path(explicit)
    else:
        path = Path(os.environ.get("CARGO_TARGET_DIR", DEFAULT_TARGET_DIR)) / "debug" / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(
            f"{name} binary not found at {path}: run `cargo build --workspace --bins` "
            f"or set {env_var}",
            pytrace=False,
        )
    return str(path)


def header_values(headers: Iterable[Iterable[str]], name: str) -> list[str]:
    """Values of `name` (case-insensitive) in a recorded `[[name, value], ...]` header list."""
    name = name.lower()
    return [value for key, value in headers if key.lower() == name]


def header_value(headers: Iterable[Iterable[str]], name: str) -> str | None:
    values = header_values(headers, name)
    assert len(values) <= 1, f"header {name} sent {len(values)} times: {values}"
    return values[0] if values else None


# Processes alive right now, so a failing test's report can show what they logged.
_LIVE: list["Proc"] = []


class Proc:
    """A child process whose stdout and stderr go to files in `workdir`."""

    def __init__(self, name: str, argv: list[str], workdir: Path, env: dict[str, str]):
        self.name = name
        self.argv = argv
        workdir.mkdir(parents=True, exist_ok=True)
        self.stdout_path = workdir / f"{name}.stdout"
        self.stderr_path = workdir / f"{name}.stderr"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=workdir,
                env=env,
                start_new_session=True,
            )
        _LIVE.append(self)

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def tail(self, limit: int = 6000) -> str:
        text = self.stderr()
        return text if len(text) <= limit else "…" + text[-limit:]

    def wait_for_stdout(self, pattern: str, timeout: float = START_TIMEOUT) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.stdout())
            if match:
                return match
            code = self.popen.poll()
            if code is not None:
                pytest.fail(
                    f"{self.name} exited with {code} before printing /{pattern}/\n"
                    f"argv: {self.argv}\nstdout:\n{self.stdout()}\nstderr:\n{self.tail()}",
                    pytrace=False,
                )
            if time.monotonic() > deadline:
                self.stop()
                pytest.fail(
                    f"{self.name} did not print /{pattern}/ within {timeout}s\n"
                    f"argv: {self.argv}\nstdout:\n{self.stdout()}\nstderr:\n{self.tail()}",
                    pytrace=False,
                )
            time.sleep(0.02)

    def stop(self) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)
        if self in _LIVE:
            _LIVE.remove(self)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for proc in list(_LIVE):
            report.sections.append((f"{proc.name} stderr ({proc.stderr_path})", proc.tail()))


class Upstream:
    """The scripted fake Anthropic API (`scripted-upstream`)."""

    def __init__(self, workdir: Path):
        self.api_key = "sk-ant-upstream-" + secrets.token_hex(16)
        self.proc = Proc(
            "scripted-upstream",
            [
                find_binary("SCRIPTED_UPSTREAM_BIN", "scripted-upstream"),
                "--api-key",
                self.api_key,
                "--listen",
                "127.0.0.1:0",
            ],
            workdir,
            clean_env(),
        )
        match = self.proc.wait_for_stdout(r"LISTENING (\S+:\d+)")
        self.addr = match.group(1)
        self.url = f"http://{self.addr}"
        self.http = httpx2.Client(
            base_url=self.url,
            headers={"x-api-key": self.api_key},
            timeout=httpx2.Timeout(15.0),
            trust_env=False,
        )

    def requests(self) -> list[dict[str, Any]]:
        """Every request the upstream received since the last `clear()`, oldest first."""
        response = self.http.get("/_test/requests")
        response.raise_for_status()
        return response.json()

    def model_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.requests() if not r["path"].startswith("/_test/")]

    def only_request(self) -> dict[str, Any]:
        seen = self.model_requests()
        assert len(seen) == 1, f"expected exactly one upstream request, got {len(seen)}: " + str(
            [(r["method"], r["path"]) for r in seen]
        )
        return seen[0]

    def clear(self) -> None:
        self.http.delete("/_test/requests").raise_for_status()

    def close(self) -> None:
        self.http.close()
        self.proc.stop()


class Gateway:
    """A `tollgate serve` process with its own config and data dir, and its admin CLI."""

    def __init__(
        self,
        upstream: Upstream,
        workdir: Path,
        server: dict[str, Any] | None = None,
        extra_toml: str = "",
    ):
        self.upstream = upstream
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.config_path = workdir / "tollgate.toml"
        self.bin = find_binary("TOLLGATE_BIN", "tollgate")
        workdir.mkdir(parents=True, exist_ok=True)
        lines = []
        if server:
            lines.append("[server]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in server.items()]
            lines.append("")
        # The upstream key is only in the environment, so the config's ${VAR} interpolation is
        # exercised on every run.
        lines += [
            "[[providers]]",
            'name = "anthropic"',
            'kind = "anthropic"',
            f'base_url = "{upstream.url}"',
            'api_key = "${UPSTREAM_KEY}"',
            "",
            extra_toml,
        ]
        self.config_path.write_text("\n".join(lines))
        self.proc = Proc(
            "tollgate",
            [
                self.bin,
                "serve",
                "--config",
                str(self.config_path),
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                str(self.data_dir),
            ],
            workdir,
            clean_env(UPSTREAM_KEY=upstream.api_key),
        )
        match = self.proc.wait_for_stdout(r"tollgate listening on (http://\S+)")
        self.url = match.group(1).rstrip("/")
        self._wait_for_admin_key()

    def _wait_for_admin_key(self) -> None:
        key_file = self.data_dir / "admin.key"
        deadline = time.monotonic() + START_TIMEOUT
        while not (key_file.exists() and key_file.read_text().strip()):
            if time.monotonic() > deadline:
                pytest.fail(f"{key_file} not written by `tollgate serve`", pytrace=False)
            time.sleep(0.02)

    def cli(self, *args: str, timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess[str]:
        # After the subcommand: clap's global flags are accepted there whether they are declared
        # on the root command or on each subcommand.
        argv = [self.bin, *args, "--server", self.url, "--data-dir", str(self.data_dir)]
        try:
            return subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=clean_env(),
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"`{' '.join(argv)}` did not finish within {timeout}s: {exc}", pytrace=False)

    def cli_ok(self, *args: str) -> str:
        done = self.cli(*args)
        assert done.returncode == 0, (
            f"`tollgate {' '.join(args)}` exited {done.returncode}\n"
            f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
        )
        return done.stdout

    def admin(self, *args: str) -> Any:
        """Runs `tollgate ARGS --json --server URL --data-dir DIR` and parses its output.

        A single JSON document is returned as is; JSON Lines output becomes a list.
        """
        out = self.cli_ok(*args, "--json").strip()
        if not out:
            return None
        try:
            return json.loads(out)
        except json.JSONDecodeError:
            pass
        try:
            return [json.loads(line) for line in out.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise AssertionError(f"`tollgate {' '.join(args)} --json` printed non-JSON: {out!r}") from exc

    def logs(self, *filters: str) -> list[dict[str, Any]]:
        """The journal records (newest first), via `tollgate logs --json`."""
        records = self.admin("logs", "--limit", "10000", *filters)
        if records is None:
            return []
        if isinstance(records, dict):
            records = records.get("data", [records])
        assert isinstance(records, list), f"unexpected `logs --json` output: {records!r}"
        return records

    def wait_for_records(
        self, predicate, count: int = 1, timeout: float = JOURNAL_TIMEOUT, filters: tuple = ()
    ) -> list[dict[str, Any]]:
        """Polls the journal until at least `count` records satisfy `predicate`."""
        deadline = time.monotonic() + timeout
        while True:
            records = [r for r in self.logs(*filters) if predicate(r)]
            if len(records) >= count or time.monotonic() > deadline:
                return records
            time.sleep(0.1)

    def record(self, request_id: str, timeout: float = JOURNAL_TIMEOUT) -> dict[str, Any]:
        """The journal record of one request, found by its `x-tollgate-request-id`."""
        found = self.wait_for_records(lambda r: r.get("id") == request_id, timeout=timeout)
        assert len(found) == 1, (
            f"expected one journal record with id {request_id}, found {len(found)}; "
            f"newest ids: {[r.get('id') for r in self.logs()[:10]]}"
        )
        return found[0]

    def create_key(self, user: str, team: str | None = None, name: str | None = None) -> dict:
        args = ["keys", "create", "--user", user]
        if team:
            args += ["--team", team]
        if name:
            args += ["--name", name]
        key = self.admin(*args)
        assert isinstance(key, dict) and key.get("key") and key.get("id"), (
            f"`keys create --json` answered {key!r}"
        )
        return key

    def revoke_key(self, key_id: str) -> None:
        self.cli_ok("keys", "revoke", key_id)

    def close(self) -> None:
        self.proc.stop()


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    up = Upstream(tmp_path_factory.mktemp("upstream"))
    yield up
    up.close()


@pytest.fixture(scope="module")
def gateway_factory(upstream, tmp_path_factory):
    """Starts extra gateways (e.g. with other `[server]` settings) in front of `upstream`."""
    started: list[Gateway] = []

    def start(extra_toml: str = "", **server: Any) -> Gateway:
        gw = Gateway(upstream, tmp_path_factory.mktemp("gateway"), server or None, extra_toml)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.close()


@pytest.fixture(scope="module")
def gateway(gateway_factory):
    return gateway_factory()


@pytest.fixture(scope="module")
def gateway_key(gateway):
    """A key of user `alice` in team `platform`: the dict printed by `keys create --json`."""
    return gateway.create_key("alice", "platform", name="wire-tests")


# --- the strict fakes of Bedrock, Vertex and OpenAI, and gateways configured for them ----------

FAKES_DIR = ROOT / "tests" / "fakes"

BEDROCK_ACCESS_KEY = "AKIDTOLLGATETEST0001"
BEDROCK_SECRET_KEY = "tollgate-bedrock-secret-for-tests-0001"
BEDROCK_REGION = "us-west-2"
VERTEX_PROJECT = "tollgate-vertex-test"
VERTEX_REGION = "us-east5"
OPENAI_KEY = "sk-tollgate-openai-fake-" + secrets.token_hex(8)


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeUpstream:
    """One of the fakes in tests/fakes as a child process, with its request recording."""

    def __init__(self, script: str, args: list[str], workdir: Path):
        self.script = script
        self.proc = Proc(
            script.removesuffix(".py"),
            [sys.executable, str(FAKES_DIR / script), *args],
            workdir,
            clean_env(),
        )
        match = self.proc.wait_for_stdout(r"LISTENING (\S+:\d+)")
        self.addr = match.group(1)
        self.url = f"http://{self.addr}"
        self.http = httpx2.Client(base_url=self.url, timeout=httpx2.Timeout(15.0), trust_env=False)

    def requests(self) -> list[dict[str, Any]]:
        """Every request received since the last `clear()`, oldest first."""
        response = self.http.get("/_test/requests")
        response.raise_for_status()
        return response.json()

    def model_requests(self) -> list[dict[str, Any]]:
        """The model calls only: Vertex's OAuth token grants are left out."""
        return [r for r in self.requests() if r.get("scenario") != "token"]

    def summary(self) -> str:
        """The recorded requests in a form short enough for an assertion message."""
        lines = []
        for r in self.requests():
            lines.append(
                f"#{r.get('n')} {r['method']} {r['path']} -> {r.get('status')} "
                f"scenario={r.get('scenario')} error={r.get('error')!r}\n"
                f"    body: {r.get('body', '')[:1500]}"
            )
        return f"{self.script} recorded {len(lines)} requests:\n" + "\n".join(lines)

    def clear(self) -> None:
        self.http.delete("/_test/requests").raise_for_status()

    def close(self) -> None:
        self.http.close()
        self.proc.stop()


def start_vertex_fake(workdir: Path, attempts: int = 3) -> tuple[FakeUpstream, Path]:
    """The Vertex fake and its service-account key file.

    The grant's audience is the key file's `token_uri`, which must name the fake's own address,
    so the port is chosen before the fake starts; another process may take it in between, hence
    the retries."""
    for attempt in range(attempts):
        port = _free_port()
        key_file = workdir / f"service-account-{attempt}.json"
        subprocess.run(
            [
                sys.executable,
                str(FAKES_DIR / "make_service_account.py"),
                str(key_file),
                f"http://127.0.0.1:{port}/token",
                "--project",
                VERTEX_PROJECT,
            ],
            check=True,
            timeout=CLI_TIMEOUT,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
        )
        args = [
            "--service-account", str(key_file), "--project", VERTEX_PROJECT,
            "--region", VERTEX_REGION, "--port", str(port),
        ]  # fmt: skip
        try:
            return FakeUpstream("vertex_fake.py", args, workdir / f"try-{attempt}"), key_file
        except pytest.fail.Exception:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="module")
def bedrock_fake(tmp_path_factory):
    fake = FakeUpstream(
        "bedrock_fake.py",
        [
            "--access-key", BEDROCK_ACCESS_KEY, "--secret-key", BEDROCK_SECRET_KEY,
            "--region", BEDROCK_REGION,
        ],  # fmt: skip
        tmp_path_factory.mktemp("bedrock-fake"),
    )
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def vertex_fake(tmp_path_factory):
    """The Vertex fake; its key file is `vertex_fake.key_file`."""
    fake, key_file = start_vertex_fake(tmp_path_factory.mktemp("vertex-fake"))
    fake.key_file = key_file
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def openai_fake(tmp_path_factory):
    fake = FakeUpstream(
        "openai_fake.py", ["--api-key", OPENAI_KEY], tmp_path_factory.mktemp("openai-fake")
    )
    yield fake
    fake.close()


def _toml(value: Any) -> str:
    # JSON strings, numbers and booleans are valid TOML; keys are always quoted.
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


def gateway_toml(
    providers: list[dict[str, Any]],
    models: list[dict[str, Any]] = (),
    server: dict[str, Any] | None = None,
) -> str:
    lines = []
    if server:
        lines.append("[server]")
        lines += [f"{k} = {_toml(v)}" for k, v in server.items()]
        lines.append("")
    for section, entries in (("providers", providers), ("models", models)):
        for entry in entries:
            lines.append(f"[[{section}]]")
            lines += [f"{k} = {_toml(v)}" for k, v in entry.items()]
            lines.append("")
    return "\n".join(lines)


def bedrock_provider(fake: FakeUpstream, name: str = "bedrock", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "bedrock",
        "region": BEDROCK_REGION,
        "endpoint": fake.url,
        "access_key_id": BEDROCK_ACCESS_KEY,
        "secret_access_key": BEDROCK_SECRET_KEY,
        **extra,
    }


def vertex_provider(fake: FakeUpstream, name: str = "vertex", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "vertex",
        "project": VERTEX_PROJECT,
        "region": VERTEX_REGION,
        "endpoint": fake.url,
        "credentials_file": str(fake.key_file),
        **extra,
    }


def openai_provider(fake: FakeUpstream, name: str = "oai", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "openai-compatible",
        "base_url": fake.url,
        "api_key": OPENAI_KEY,
        **extra,
    }


class ConfiguredGateway(Gateway):
    """A `tollgate serve` process started on a configuration file given as text."""

    def __init__(self, config_text: str, workdir: Path):
        self.upstream = None
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.config_path = workdir / "tollgate.toml"
        self.bin = find_binary("TOLLGATE_BIN", "tollgate")
        workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(config_text)
        self.proc = Proc(
            "tollgate",
            [
                self.bin, "serve", "--config", str(self.config_path),
                "--listen", "127.0.0.1:0", "--data-dir", str(self.data_dir),
            ],  # fmt: skip
            workdir,
            clean_env(),
        )
        match = self.proc.wait_for_stdout(r"tollgate listening on (http://\S+)")
        self.url = match.group(1).rstrip("/")
        self._wait_for_admin_key()


@pytest.fixture(scope="module")
def configured_gateway_factory(tmp_path_factory):
    """Starts gateways on configuration text (see `gateway_toml`)."""
    started: list[ConfiguredGateway] = []

    def start(config_text: str) -> ConfiguredGateway:
        gw = ConfiguredGateway(config_text, tmp_path_factory.mktemp("gateway"))
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.close()
