#!/usr/bin/env bash
# Installs what bench/run.sh needs: nginx (Debian), oha (crates.io), release builds of the gateway
# and the mock upstream; and valgrind (Debian) for bench/instructions.sh.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/tmp/tollgate-target}
TOOLS=${TOLLGATE_TOOLS:-/var/tmp/tollgate-tools}

MISSING=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || MISSING+=(nginx)
command -v valgrind >/dev/null || MISSING+=(valgrind)
if [ ${#MISSING[@]} -gt 0 ]; then
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update
  $SUDO apt-get install -y --no-install-recommends "${MISSING[@]}"
fi

if ! command -v oha >/dev/null && [ ! -x "$TOOLS/bin/oha" ]; then
  # Takes about ten minutes on two cores.
  cargo install oha --locked --root "$TOOLS"
fi

cargo build --release --manifest-path "$ROOT/Cargo.toml" -p tollgate -p tollgate-testkit

echo "ready: nginx $(nginx -v 2>&1 | sed 's#.*/##'), $("${OHA:-$(command -v oha || echo "$TOOLS/bin/oha")}" --version)"
