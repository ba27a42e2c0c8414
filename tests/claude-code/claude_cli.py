"""The real Claude Code CLI as the tests drive it: finding the executable that
scripts/setup.sh installed, and reading the JSON result of a headless `claude -p` run."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def find_claude() -> str:
    """The native Claude Code executable installed by scripts/setup.sh."""
    explicit = os.environ.get("CLAUDE_BIN")
    scope = ROOT / ".tools" / "node" / "node_modules" / "@anthropic-ai"
    candidates = [Path(explicit)] if explicit else []
    # bin/claude.exe is the wrapper's stub until its postinstall links the platform binary over
    # it; the platform package's own copy works either way.
    candidates.append(scope / "claude-code" / "bin" / "claude.exe")
    candidates += sorted(scope.glob("claude-code-linux-*/claude"))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK) and path.stat().st_size > 10_000_000:
            return str(path)
    pytest.fail(
        "Claude Code CLI not found under .tools/node (run scripts/setup.sh); looked at: "
        + ", ".join(str(p) for p in candidates),
        pytrace=False,
    )


class Run:
    def __init__(self, done: subprocess.CompletedProcess[str], elapsed: float):
        self.returncode = done.returncode
        self.stdout = done.stdout
        self.stderr = done.stderr
        self.elapsed = elapsed
        self.result = self._parse(done.stdout)

    @staticmethod
    def _parse(stdout: str) -> dict[str, Any] | None:
        for line in reversed(stdout.strip().splitlines()):
            line = line.strip()
            if line.startswith("{"):
                try:
                    return json.loads(line)
                except json.JSONDecodeError:
                    continue
        try:
            return json.loads(stdout)
        except json.JSONDecodeError:
            return None

    def describe(self) -> str:
        return (
            f"exit {self.returncode} after {self.elapsed:.1f}s\n"
            f"stdout:\n{self.stdout[-4000:]}\nstderr:\n{self.stderr[-4000:]}"
        )


def run_claude_cli(
    claude_bin: str,
    tmp_path: Path,
    prompt: str,
    env: dict[str, str],
    timeout: float,
    allowed_tools: str = "Bash,Agent",
    on_timeout=None,
) -> Run:
    """Runs `claude -p PROMPT` headless with a minimal environment (nothing of the caller's that
    could carry Anthropic, AWS or Google credentials) plus `env`, in a fresh home and project
    directory; `on_timeout` adds the other side's story to a timeout failure."""
    import time

    home = tmp_path / "home"
    workdir = tmp_path / "project"
    home.mkdir(parents=True, exist_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    full_env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TMPDIR": str(tmp_path),
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        **env,
    }
    argv = [claude_bin, "-p", prompt, "--output-format", "json", "--allowedTools", allowed_tools]
    started = time.monotonic()
    try:
        done = subprocess.run(
            argv,
            cwd=workdir,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(
            f"claude -p did not finish within {timeout}s\n"
            f"stdout:\n{exc.stdout!r}\nstderr:\n{exc.stderr!r}\n"
            + (on_timeout() if on_timeout else ""),
            pytrace=False,
        )
    return Run(done, time.monotonic() - started)
