#!/usr/bin/env bash
# The whole test suite: machine setup, workspace build, Rust tests, then the Python SDK and real
# Claude Code CLI tests against the built gateway and scripted upstream.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/tollgate-target}"
export TOLLGATE_BIN="$CARGO_TARGET_DIR/debug/tollgate"
export SCRIPTED_UPSTREAM_BIN="$CARGO_TARGET_DIR/debug/scripted-upstream"

# x86-64 builds target x86-64-v3 (.cargo/config.toml). On a CPU without it the suite builds for
# the x86-64 baseline instead of testing binaries that refuse to start.
if [ "$(uname -m)" = x86_64 ] && [ -z "${RUSTFLAGS:-}" ]; then
    for feature in avx2 bmi1 bmi2 fma pclmulqdq movbe abm f16c; do
        if ! grep -qw "$feature" /proc/cpuinfo; then
            echo "[setup] this CPU lacks $feature: building for the x86-64 baseline"
            export RUSTFLAGS="-C target-cpu=x86-64"
            break
        fi
    done
fi

steps=()
results=()
logs=()
failed=0
# Each step's output is kept so the summary, the part of a CI log read first, can end with what
# failed instead of whatever the last step printed.
LOG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/tollgate-test-logs.XXXXXX")"

banner() { printf '\n======== %s ========\n' "$*"; }

run_step() {
    local name="$1"
    shift
    banner "$name"
    local start=$SECONDS rc=0
    local log="$LOG_DIR/${#steps[@]}.log"
    "$@" 2>&1 | tee "$log" || rc=$?
    local took=$((SECONDS - start))
    steps+=("$name")
    logs+=("$log")
    if [ "$rc" -eq 0 ]; then
        results+=("ok      ${took}s")
    else
        results+=("FAILED  ${took}s (exit $rc)")
        failed=1
    fi
    return "$rc"
}

# Free space below this on the build or temp file system makes builds, initdb and the journal
# fail with errors that do not say why; the summary says it instead.
MIN_FREE_KB=$((4 * 1024 * 1024))
low_disk() {
    local dir
    mkdir -p "$CARGO_TARGET_DIR"
    for dir in "$CARGO_TARGET_DIR" "${TMPDIR:-/tmp}"; do
        local free
        free=$(df -Pk "$dir" | awk 'NR==2 {print $4}')
        if [ "${free:-0}" -lt "$MIN_FREE_KB" ]; then
            echo "only $((free / 1024)) MiB free under $dir: failures above may be a full disk (stale test binaries pile up in $CARGO_TARGET_DIR/debug/deps)"
        fi
    done
}

summary() {
    local i
    for i in "${!steps[@]}"; do
        case "${results[$i]}" in
        FAILED*)
            banner "what failed in: ${steps[$i]} (full log: ${logs[$i]})"
            # nextest's failure lines and panics first, then the step's last lines.
            grep -E '^ +(FAIL|SIGSEGV|SIGABRT|SIGKILL|TIMEOUT|LEAK-FAIL) |panicked at|^(error|FAILED)\b' "${logs[$i]}" | awk '!seen[$0]++' | head -40 || true
            echo "--- last lines ---"
            tail -n 60 "${logs[$i]}"
            ;;
        esac
    done
    banner "summary"
    for i in "${!steps[@]}"; do
        printf '  %-14s %s\n' "${steps[$i]}" "${results[$i]}"
    done
    low_disk
    if [ "$failed" -eq 0 ]; then
        echo "tollgate test suite: all steps succeeded"
    else
        echo "tollgate test suite: FAILED"
    fi
}

rust_tests() {
    if cargo nextest --version >/dev/null 2>&1; then
        cargo nextest run --workspace --no-tests=warn --no-fail-fast --failure-output immediate-final
    else
        cargo test --workspace
    fi
}

# The end-to-end suites again with each gateway's entities in a Postgres of its own instead of
# SQLite (tests/support: TG_TEST_STORE): both store engines must behave alike.
postgres_store_tests() {
    local suites=(--test admin_roles --test anthropic_ingress --test crash_journal --test governance)
    if cargo nextest --version >/dev/null 2>&1; then
        TG_TEST_STORE=postgres cargo nextest run -p tollgate --no-fail-fast --failure-output immediate-final "${suites[@]}"
    else
        TG_TEST_STORE=postgres cargo test -p tollgate "${suites[@]}"
    fi
}

python_tests() {
    local bin
    for bin in "$TOLLGATE_BIN" "$SCRIPTED_UPSTREAM_BIN"; do
        [ -x "$bin" ] || { echo "missing built binary: $bin" >&2; return 1; }
    done
    "$ROOT/.venv/bin/pytest" -q -p no:cacheprovider --timeout=600 tests/python tests/fakes tests/claude-code
}

# Setup and build failures leave nothing meaningful to test; stop there.
run_step "setup" "$ROOT/scripts/setup.sh" || { summary; exit 1; }
"$ROOT/scripts/prune-target.sh" "$CARGO_TARGET_DIR"
run_step "build" cargo build --workspace --bins || { summary; exit 1; }
run_step "rust tests" rust_tests || true
run_step "rust e2e on postgres" postgres_store_tests || true
run_step "python tests" python_tests || true
# A short run of every parser fuzz target: a crash found here is a real input that breaks us.
run_step "fuzz smoke" env FUZZ_SECONDS="${FUZZ_SECONDS:-10}" "$ROOT/scripts/fuzz-smoke.sh" || true

summary
# The logs are kept only when something failed: the summary points into them.
[ "$failed" -eq 0 ] && rm -rf "$LOG_DIR"
exit "$failed"
