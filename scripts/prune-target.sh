#!/usr/bin/env bash
# Deletes stale build outputs from a cargo target dir: every change of flags, features or
# dependencies leaves another hash of each crate and test binary in <profile>/deps, and a target
# dir reused across runs grows by gigabytes a week until the disk is full. Per crate or test name
# a hash goes when three newer ones exist and it has not been used for two days (a crate may be
# built for several feature sets at once, and one built long ago may still be linked every run).
# Incremental caches go too once they pass 6 GiB; they are rebuilt on demand.
set -euo pipefail
TARGET="${1:-${CARGO_TARGET_DIR:?set CARGO_TARGET_DIR or pass the target dir}}"
[ -d "$TARGET" ] || exit 0
python3 - "$TARGET" <<'PY'
import collections, os, re, shutil, sys, time
target = sys.argv[1]
freed = 0
for profile in ("debug", "release"):
    inc = os.path.join(target, profile, "incremental")
    if os.path.isdir(inc):
        size = sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(inc) for f in files)
        if size > 6 * 2**30:
            freed += size
            shutil.rmtree(inc, ignore_errors=True)
    deps = os.path.join(target, profile, "deps")
    if not os.path.isdir(deps):
        continue
    groups = collections.defaultdict(lambda: collections.defaultdict(list))
    for name in os.listdir(deps):
        m = re.match(r"(?:lib)?(.+?)-([0-9a-f]{16})(\..*)?$", name)
        if m:
            groups[m.group(1)][m.group(2)].append(os.path.join(deps, name))
    def used(paths):
        # relatime keeps atime within a day of the last read, and a link reads every rlib.
        return max(max(os.path.getatime(p), os.path.getmtime(p)) for p in paths)
    for hashes in groups.values():
        newest = sorted(hashes, key=lambda h: used(hashes[h]), reverse=True)
        for h in newest[3:]:
            if time.time() - used(hashes[h]) < 2 * 86400:
                continue
            for path in hashes[h]:
                freed += os.path.getsize(path)
                os.remove(path)
print(f"[prune] {freed / 2**30:.1f} GiB of stale build outputs removed from {target}")
PY
