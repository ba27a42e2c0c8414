#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for a short, bounded time and fails if any of them crashes.
# Installs cargo-fuzz first when it is missing. Only the stable toolchain is assumed, hence
# `-s none` (no sanitizer: AddressSanitizer needs nightly); Rust's own checks still abort on
# panics, overflows in debug assertions and out-of-bounds access.
#
# Environment:
#   FUZZ_SECONDS      time per target (default 15)
#   TOLLGATE_TOOLS    where cargo-fuzz is installed (default /var/tmp/tollgate-tools)
#   FUZZ_TARGET_DIR   cargo target directory for the instrumented build
#                     (default /var/tmp/tollgate-fuzz-target; kept apart from the main build
#                     because the fuzz flags would invalidate its cache)
# Arguments: target names to run (default: all of them).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${TOLLGATE_TOOLS:-/var/tmp/tollgate-tools}"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-15}"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-/var/tmp/tollgate-fuzz-target}"
CARGO_FUZZ="$TOOLS/bin/cargo-fuzz"

if [ ! -x "$CARGO_FUZZ" ]; then
    echo "installing cargo-fuzz into $TOOLS"
    cargo install cargo-fuzz --locked --root "$TOOLS"
fi

cd "$ROOT/fuzz"
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <("$CARGO_FUZZ" list)
fi
if [ "${#targets[@]}" -eq 0 ]; then
    echo "no fuzz targets found in $ROOT/fuzz" >&2
    exit 1
fi

failed=()
for target in "${targets[@]}"; do
    echo "======== fuzz $target (${SECONDS_PER_TARGET}s) ========"
    # A crash writes its input under fuzz/artifacts/$target/ and exits non-zero.
    # libFuzzer prints a line per new input; keep that in a file and show it only on a crash.
    log="$(mktemp "${TMPDIR:-/tmp}/fuzz-$target.XXXXXX")"
    if "$CARGO_FUZZ" run -s none "$target" -- -max_total_time="$SECONDS_PER_TARGET" >"$log" 2>&1; then
        grep -E '^#[0-9]+[[:space:]]+DONE' "$log" || tail -n 1 "$log"
        rm -f "$log"
    else
        tail -n 80 "$log"
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz targets that failed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "all ${#targets[@]} fuzz targets ran ${SECONDS_PER_TARGET}s without a crash"
