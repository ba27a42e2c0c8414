#!/usr/bin/env bash
# Prepares a Debian 12 machine (as root) for the test suite and the bench:
#   - Debian packages: nginx, wrk, redis-server, postgresql
#   - a Python venv at .venv with the pinned client SDKs (tests/python/requirements.txt)
#   - the pinned Claude Code CLI under .tools/node (tests/claude-code/package*.json)
# Safe to run again: every step is skipped when its result is already in place, so warm runs
# take a few seconds. Any failure exits non-zero; nothing is silently skipped.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

APT_PACKAGES=(nginx wrk redis-server postgresql)
PYTHON="${PYTHON:-python3}"
VENV="$ROOT/.venv"
REQUIREMENTS="$ROOT/tests/python/requirements.txt"
NODE_SRC="$ROOT/tests/claude-code"
NODE_DIR="$ROOT/.tools/node"
CLAUDE_PKG="$NODE_DIR/node_modules/@anthropic-ai/claude-code"

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

sha_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# --- Debian packages ---------------------------------------------------------------------------

is_installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = "installed" ]
}

apt_missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    is_installed "$pkg" || apt_missing+=("$pkg")
done
# The Python and Node toolchains normally come with the machine; fall back to Debian's.
if ! command -v "$PYTHON" >/dev/null 2>&1; then
    apt_missing+=(python3 python3-venv)
elif ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    # Debian's own python3 ships venv's pip bootstrap separately.
    apt_missing+=(python3-venv)
fi
command -v node >/dev/null 2>&1 || apt_missing+=(nodejs)
command -v npm >/dev/null 2>&1 || apt_missing+=(npm)

if [ "${#apt_missing[@]}" -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || die "missing Debian packages (${apt_missing[*]}) and not root to install them"
    log "apt-get install ${apt_missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update || die "apt-get update failed"
    apt-get install -y --no-install-recommends "${apt_missing[@]}" || die "apt-get install failed"
    for pkg in "${apt_missing[@]}"; do
        is_installed "$pkg" || die "Debian package $pkg did not install"
    done
else
    log "Debian packages present: ${APT_PACKAGES[*]}"
fi
for cmd in nginx wrk redis-server; do
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || die "$cmd not found after install"
done
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || die "postgres server binary not found"

# --- Python venv -------------------------------------------------------------------------------

[ -f "$REQUIREMENTS" ] || die "$REQUIREMENTS missing"
py_stamp="$VENV/.tollgate-requirements.sha256"
py_want="$(sha_of "$REQUIREMENTS")"
if [ -x "$VENV/bin/python" ] && [ -f "$py_stamp" ] && [ "$(cat "$py_stamp")" = "$py_want" ] \
    && "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    log "Python venv up to date (.venv)"
else
    log "creating Python venv at .venv"
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found"
    "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 9), sys.version' \
        || die "Python >= 3.9 required"
    if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
        rm -rf "$VENV"
        "$PYTHON" -m venv "$VENV" || die "python venv creation failed"
    fi
    "$VENV/bin/python" -m pip install --disable-pip-version-check --quiet -r "$REQUIREMENTS" \
        || die "pip install -r tests/python/requirements.txt failed"
    printf '%s\n' "$py_want" >"$py_stamp"
fi
# Every pinned distribution must be importable at exactly its pinned version.
"$VENV/bin/python" - "$REQUIREMENTS" <<'PY' || die "Python requirements not satisfied in .venv"
import sys
from importlib.metadata import version, PackageNotFoundError
bad = []
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    name, _, want = line.partition("==")
    try:
        have = version(name)
    except PackageNotFoundError:
        have = None
    if have != want:
        bad.append(f"{name}: want {want}, have {have}")
if bad:
    sys.exit("\n".join(bad))
import anthropic, openai, boto3, pytest  # noqa: F401,E401
PY

# --- Claude Code CLI ---------------------------------------------------------------------------

[ -f "$NODE_SRC/package.json" ] && [ -f "$NODE_SRC/package-lock.json" ] \
    || die "tests/claude-code/package.json and package-lock.json are required"
claude_version="$(cd "$NODE_SRC" && node -p 'require("./package.json").dependencies["@anthropic-ai/claude-code"]')"

# The wrapper package ships bin/claude.exe as a small stub that its postinstall replaces with the
# native program; a real binary is tens of megabytes.
claude_is_real() {
    local exe="$CLAUDE_PKG/bin/claude.exe"
    [ -x "$exe" ] || return 1
    [ "$(stat -c %s "$exe" 2>/dev/null || echo 0)" -gt 10000000 ] || return 1
}

claude_reports_version() {
    local out home rc=0
    home="$(mktemp -d)"
    out="$(HOME="$home" CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 \
        timeout 60 "$CLAUDE_PKG/bin/claude.exe" --version 2>&1)" || rc=$?
    rm -rf "$home"
    [ "$rc" -eq 0 ] || return 1
    case "$out" in *"$claude_version"*) return 0 ;; *) return 1 ;; esac
}

node_stamp="$NODE_DIR/.tollgate-lock.sha256"
node_want="$(sha_of "$NODE_SRC/package.json" "$NODE_SRC/package-lock.json")"
if [ -f "$node_stamp" ] && [ "$(cat "$node_stamp")" = "$node_want" ] && claude_is_real \
    && claude_reports_version; then
    log "Claude Code $claude_version present (.tools/node)"
else
    log "installing Claude Code $claude_version into .tools/node"
    mkdir -p "$NODE_DIR"
    rm -f "$node_stamp"
    cp "$NODE_SRC/package.json" "$NODE_SRC/package-lock.json" "$NODE_DIR/"
    # The package declares engines.node >= 22 although the program is a native executable that
    # embeds its own runtime, so the engine check must not stop the install on Node 20.
    (cd "$NODE_DIR" && npm ci --engine-strict=false --no-audit --no-fund --loglevel=error) \
        || die "npm ci in .tools/node failed"
    [ -f "$CLAUDE_PKG/package.json" ] || die "@anthropic-ai/claude-code missing after npm ci"
    if ! claude_is_real; then
        # npm may leave lifecycle scripts unrun; install.cjs only links the platform binary
        # from the optional dependency over bin/claude.exe.
        log "running @anthropic-ai/claude-code/install.cjs"
        (cd "$CLAUDE_PKG" && node install.cjs) || die "claude-code install.cjs failed"
    fi
    claude_is_real || die "$CLAUDE_PKG/bin/claude.exe is not the native Claude Code binary"
    claude_reports_version || die "claude.exe --version does not report $claude_version"
    printf '%s\n' "$node_want" >"$node_stamp"
fi

log "ok"
