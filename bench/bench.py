#!/usr/bin/env python3
"""Runs the proxy benchmark matrix with oha and turns the results into Markdown and JSON.

Subcommands:
  bodies OUTDIR         write the four request bodies
  free-port             print a free loopback TCP port
  run ...               run the matrices against already-started targets (see run.sh)
  report RESULTS.json   re-render the Markdown table from a saved JSON result

Two matrices: "proxy" (direct vs nginx vs tollgate) and "conversion" (tollgate in front of the
same upstream as three providers: anthropic, bedrock, openai-compatible). `run --only X` runs one
of them and keeps the other's results from the previous latest.json, so each can be redone alone.
"""

import argparse
import datetime
import http.client
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bodies  # noqa: E402

# `tollgate-route`: the same gateway, each request sent through a three-target weighted route
# (x-tollgate-route: bench-three) over three providers on the same mock, so routing's cost shows
# against the plain `tollgate` cell of the same run.
# bare-hyper is the floor of the gateway's HTTP stack: the same hyper server and pooled client
# with nothing in between (crates/testkit/src/bin/bare-proxy.rs).
TARGETS = ("direct", "nginx", "bare-hyper", "tollgate", "tollgate-route")
ROUTE_HEADER = "x-tollgate-route: bench-three"
MODES = ("rate", "sat")
MODE_LABEL = {"rate": "1k rps", "sat": "sat c32"}

# Conversion matrix: tollgate's providers, picked per request with x-tollgate-provider. The
# first is the same-dialect path the others are compared with.
CONV_PATHS = ("anthropic", "bedrock", "oai")
CONV_KINDS = ("large-json", "large-stream")
CONV_PATH_LABEL = {"anthropic": "→ anthropic (same dialect)",
                   "bedrock": "→ bedrock (SigV4, event-stream)",
                   "oai": "→ oai (Chat Completions)"}
CONV_P99_TARGET_MS = 1.0
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Project targets (README.md); rps figures are for tollgate at saturation.
RPS_TARGET = {"small-json": 15000, "large-json": 6000, "small-stream": 8000, "large-stream": 5000}
CPU_RATIO_TARGET = {"small-json": 3.0, "small-stream": 3.0, "large-json": 2.0, "large-stream": 2.0}
ADDED_P50_TARGET_MS = 0.2
RSS_TARGET_MB = 60.0

# oha reports requests still in flight when -z expires as this error; they are not failures.
DEADLINE_ERROR = "aborted due to deadline"


# ---------------------------------------------------------------------------------------------
# /proc accounting


def _stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    # comm may contain spaces and parentheses; the fields after the last ')' are fixed.
    return data[data.rindex(")") + 2:].split()


def tree(pid):
    """pid and all its descendants (nginx workers are children of the master)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(_stat_fields(entry)[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def cpu_ticks(pids):
    """utime+stime summed over processes (each process's figure covers all its threads)."""
    total = 0
    for pid in pids:
        try:
            f = _stat_fields(pid)
            total += int(f[11]) + int(f[12])
        except (OSError, IndexError):
            pass
    return total


def reset_hwm(pids):
    """Reset VmHWM so the next reading is the peak of the coming run (Linux clear_refs "5")."""
    ok = True
    for pid in pids:
        try:
            with open(f"/proc/{pid}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            ok = False
    return ok


def status_kb(pid, field):
    """A memory figure of /proc/PID/status (`VmHWM`, `VmRSS`), in kB; 0 when unreadable."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def hwm_kb(pid):
    return status_kb(pid, "VmHWM")


# ---------------------------------------------------------------------------------------------
# one load run


def proxy_spec(args, target):
    """What a proxy-matrix target is sent and which process is measured."""
    gateway = target.startswith("tollgate")
    return {"target": target, "url": args.urls[target],
            "key": args.gateway_key if gateway else args.upstream_key,
            "headers": [ROUTE_HEADER] if target == "tollgate-route" else [],
            "pid": args.tollgate_pid if gateway else {"nginx": args.nginx_pid,
                                                      "bare-hyper": args.bare_pid}.get(target)}


def conv_spec(args, path):
    # Every path names its provider, the default one included, so all three send the same bytes.
    return {"target": path, "url": args.tollgate, "key": args.gateway_key,
            "headers": [f"x-tollgate-provider: {path}"], "pid": args.tollgate_pid}


def oha_cmd(args, spec, body, mode, duration, rate):
    cmd = [args.oha, "--no-tui", "--output-format", "json", "-z", f"{duration}s",
           "-c", str(args.connections), "-m", "POST", "-D", body,
           "-H", f"x-api-key: {spec['key']}", "-H", "content-type: application/json",
           "-H", "anthropic-version: 2023-06-01"]
    for h in spec["headers"]:
        cmd += ["-H", h]
    if mode == "rate":
        # Latency correction counts from each request's scheduled send time, so a stall is not
        # hidden by the requests it delayed (coordinated omission).
        cmd += ["-q", str(rate), "--latency-correction"]
    return cmd + [spec["url"]]


def load_run(args, spec, kind, mode, duration, body, rate=None):
    rate = rate or args.rate
    pids = tree(spec["pid"]) if spec["pid"] else []
    up_pids = tree(args.upstream_pid)
    hwm_reset = reset_hwm(pids)
    c0, u0 = cpu_ticks(pids), cpu_ticks(up_pids)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.run(oha_cmd(args, spec, body, mode, duration, rate), capture_output=True,
                          text=True)
    wall = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    pids_after = tree(spec["pid"]) if spec["pid"] else []
    c1, u1 = cpu_ticks(pids_after), cpu_ticks(up_pids)
    rec = {"target": spec["target"], "kind": kind, "mode": mode, "duration_s": duration,
           "wall_s": wall, "oha_cpu_s": (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime),
           "upstream_cpu_s": (u1 - u0) / CLK_TCK}
    if mode == "rate":
        rec["rate"] = rate
    if proc.returncode != 0:
        rec["error"] = f"oha exit {proc.returncode}: {proc.stderr.strip()[:500]}"
        return rec
    try:
        out = json.loads(proc.stdout)
    except json.JSONDecodeError:
        rec["error"] = f"oha output not JSON: {proc.stdout[:300]!r} {proc.stderr[:300]!r}"
        return rec
    summ = out.get("summary", {})
    pct = out.get("latencyPercentiles", {})
    statuses = {str(k): v for k, v in (out.get("statusCodeDistribution") or {}).items()}
    errors = dict(out.get("errorDistribution") or {})
    responses = sum(statuses.values())
    ok = statuses.get("200", 0)
    total_s = summ.get("total") or duration
    rec.update({
        "responses": responses, "ok": ok, "statuses": statuses, "errors": errors,
        "deadline_aborts": errors.get(DEADLINE_ERROR, 0),
        "rps": ok / total_s if total_s else 0.0,
        "p50_ms": (pct.get("p50") or 0) * 1000, "p90_ms": (pct.get("p90") or 0) * 1000,
        "p99_ms": (pct.get("p99") or 0) * 1000,
        "avg_ms": (summ.get("average") or 0) * 1000,
        "bytes_per_response": summ.get("sizePerRequest"),
    })
    if pids:
        cpu_s = (c1 - c0) / CLK_TCK
        rec["cpu_s"] = cpu_s
        rec["cpu_ms_per_req"] = cpu_s * 1000 / responses if responses else None
        per = {p: hwm_kb(p) for p in pids_after}
        rec["rss_kb_per_process"] = per
        rec["rss_mb"] = sum(per.values()) / 1024
        # Resident memory when the run ends: what the allocator kept, which the next run's peak
        # starts from (the peak reset cannot lower it).
        rec["rss_end_mb"] = sum(status_kb(p, "VmRSS") for p in pids_after) / 1024
        rec["rss_reset"] = hwm_reset
        rec["processes"] = len(pids_after)
    return rec


# ---------------------------------------------------------------------------------------------
# sanity pass: one request per target and body, before any load


def one_request(url, body, key, extra_headers=()):
    u = url.split("://", 1)[1]
    hostport, path = u.split("/", 1)
    host, port = hostport.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = {"x-api-key": key, "content-type": "application/json",
               "anthropic-version": "2023-06-01"}
    for h in extra_headers:
        name, value = h.split(":", 1)
        headers[name.strip()] = value.strip()
    try:
        conn.request("POST", "/" + path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, dict(resp.getheaders()), data
    finally:
        conn.close()


def sanity(specs, paths, kinds):
    """One request per target and body; the first spec is the one the others' bytes are compared
    with (`same_as_<target>`)."""
    results = []
    ref = specs[0]["target"]
    for kind in kinds:
        with open(paths[kind], "rb") as f:
            body = f.read()
        ref_body = None
        for spec in specs:
            rec = {"target": spec["target"], "kind": kind}
            try:
                status, headers, data = one_request(spec["url"], body, spec["key"],
                                                    spec["headers"])
                rec.update({"status": status, "bytes": len(data),
                            "content_type": headers.get("content-type") or headers.get("Content-Type")})
                if status != 200:
                    rec["body"] = data[:400].decode(errors="replace")
                if kind.endswith("stream"):
                    rec["message_stop"] = b"message_stop" in data
                if spec["target"] == ref:
                    ref_body = data
                else:
                    rec[f"same_as_{ref}"] = data == ref_body
            except OSError as e:
                rec["error"] = str(e)
            results.append(rec)
            line = " ".join(f"{k}={v}" for k, v in rec.items() if k != "body")
            print(f"  sanity {line}", file=sys.stderr)
            if "body" in rec:
                print(f"    body: {rec['body']}", file=sys.stderr)
    return results


# ---------------------------------------------------------------------------------------------
# aggregation and rendering


def median_of(runs, field):
    vals = [r[field] for r in runs if r.get(field) is not None]
    return statistics.median(vals) if vals else None


def aggregate(runs):
    cells = {}
    for r in runs:
        cells.setdefault((r["kind"], r["mode"], r["target"]), []).append(r)
    agg = {}
    for (kind, mode, target), rs in cells.items():
        statuses, errors = {}, {}
        for r in rs:
            for k, v in r.get("statuses", {}).items():
                statuses[k] = statuses.get(k, 0) + v
            for k, v in r.get("errors", {}).items():
                errors[k] = errors.get(k, 0) + v
            if "error" in r:
                errors[r["error"]] = errors.get(r["error"], 0) + 1
        agg[f"{kind}/{mode}/{target}"] = {
            "kind": kind, "mode": mode, "target": target, "reps": len(rs),
            **{f: median_of(rs, f) for f in ("rps", "p50_ms", "p90_ms", "p99_ms",
                                             "cpu_ms_per_req", "rss_mb", "upstream_cpu_s",
                                             "oha_cpu_s")},
            "statuses": statuses, "errors": errors,
        }
    return agg


def ratios(agg):
    out = {}
    for kind in bodies.KINDS:
        def g(mode, target, field):
            return (agg.get(f"{kind}/{mode}/{target}") or {}).get(field)

        def div(a, b):
            return a / b if a is not None and b else None

        def sub(a, b):
            return a - b if a is not None and b is not None else None

        out[kind] = {
            "tollgate_over_nginx_rps": div(g("sat", "tollgate", "rps"), g("sat", "nginx", "rps")),
            "tollgate_over_direct_rps": div(g("sat", "tollgate", "rps"), g("sat", "direct", "rps")),
            "nginx_over_direct_rps": div(g("sat", "nginx", "rps"), g("sat", "direct", "rps")),
            "tollgate_added_p50_ms_at_rate": sub(g("rate", "tollgate", "p50_ms"),
                                                 g("rate", "direct", "p50_ms")),
            "nginx_added_p50_ms_at_rate": sub(g("rate", "nginx", "p50_ms"),
                                              g("rate", "direct", "p50_ms")),
            "bare_added_p50_ms_at_rate": sub(g("rate", "bare-hyper", "p50_ms"),
                                             g("rate", "direct", "p50_ms")),
            "bare_over_nginx_cpu_per_req": div(g("sat", "bare-hyper", "cpu_ms_per_req"),
                                               g("sat", "nginx", "cpu_ms_per_req")),
            "tollgate_over_nginx_cpu_per_req": div(g("sat", "tollgate", "cpu_ms_per_req"),
                                                   g("sat", "nginx", "cpu_ms_per_req")),
            "tollgate_sat_rps": g("sat", "tollgate", "rps"),
            "route_sat_rps": g("sat", "tollgate-route", "rps"),
            "route_over_nginx_cpu_per_req": div(g("sat", "tollgate-route", "cpu_ms_per_req"),
                                                g("sat", "nginx", "cpu_ms_per_req")),
            "route_added_p50_ms_at_rate": sub(g("rate", "tollgate-route", "p50_ms"),
                                              g("rate", "direct", "p50_ms")),
            "route_minus_tollgate_p50_ms_at_rate": sub(g("rate", "tollgate-route", "p50_ms"),
                                                       g("rate", "tollgate", "p50_ms")),
            "tollgate_rss_mb": max(filter(None, [g("sat", "tollgate", "rss_mb"),
                                                 g("rate", "tollgate", "rss_mb")]), default=None),
        }
    return out


def fmt(v, digits=2):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}"


def problems(cell):
    bad = {k: v for k, v in cell["statuses"].items() if k != "200"}
    errs = {k: v for k, v in cell["errors"].items() if k != DEADLINE_ERROR}
    parts = [f"{k}×{v}" for k, v in sorted(bad.items())]
    parts += [f"{k} ×{v}" for k, v in sorted(errs.items())]
    return "; ".join(parts) if parts else "0"


def render(result):
    lines = render_proxy(result) if "aggregate" in result else ["# Tollgate benchmark", ""]
    if result.get("conversion"):
        lines += render_conversion(result["conversion"])
    return "\n".join(lines) + "\n"


def render_proxy(result):
    meta, agg, rat = result["meta"], result["aggregate"], result["ratios"]
    lines = [f"# Proxy overhead: direct vs nginx vs bare hyper vs tollgate ({meta['finished_at']})",
             ""]
    lines += [
        f"- Machine: {meta['cpus']} CPUs, kernel {meta['kernel']}, load average "
        f"{meta['loadavg_start']} at start, {meta['loadavg_end']} at end. Load generator, mock "
        "upstream and proxy share these cores, so absolute figures move with the machine's other "
        "work; compare targets within this run (the ratios below).",
        f"- Runs: {meta['duration_s']} s each, {meta['reps']} repetition(s) per cell, targets "
        "interleaved within each cell (order rotated per repetition); figures are medians over "
        f"repetitions. Fixed rate: `-q {meta['rate']}` with latency correction; both modes use "
        f"`-c {meta['connections']}` keep-alive connections.",
        f"- nginx {meta['nginx_version']}, `worker_processes {meta['nginx_worker_processes']}` "
        f"({meta['nginx_workers']} worker process(es)); its CPU is master + workers and its peak "
        "RSS is the **sum** of VmHWM over master + workers.",
        "- bare-hyper is `crates/testkit/src/bin/bare-proxy.rs`: the gateway's HTTP stack (hyper "
        "server, a thread-per-core runtime, hyper-util's pooled client) relaying every request "
        "with nothing in between; what tollgate adds over it is the pipeline's own cost.",
        f"- tollgate ({meta['tollgate_version']}, binary {meta.get('tollgate_binary', '?')}; "
        f"repository HEAD {meta['commit']} at run time); auth, journal and "
        "cost on. Peak RSS is VmHWM, reset before each run (`/proc/PID/clear_refs` = 5)"
        + ("" if meta.get("rss_reset_ok", True) else " — reset failed, so it is peak since start")
        + ".",
        f"- {meta['oha_version']}. rps counts 200 responses only. Latency is to the last "
        "byte of the response (whole SSE stream for stream cells).",
        "",
        "| cell | target | rps | p50 ms | p90 ms | p99 ms | CPU ms/req | peak RSS MB | "
        "non-200 / errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for kind, (label, _) in bodies.KINDS.items():
        for mode in MODES:
            for target in TARGETS:
                c = agg.get(f"{kind}/{mode}/{target}")
                if not c:
                    continue
                lines.append(
                    f"| {label} · {MODE_LABEL[mode]} | {target} | {fmt(c['rps'], 0)} | "
                    f"{fmt(c['p50_ms'], 3)} | {fmt(c['p90_ms'], 3)} | {fmt(c['p99_ms'], 3)} | "
                    f"{fmt(c['cpu_ms_per_req'], 4)} | {fmt(c['rss_mb'], 1)} | {problems(c)} |")
    lines += [
        "",
        "## Ratios (same run)",
        "",
        "| body | tollgate/nginx rps (sat) | tollgate/direct rps (sat) | nginx/direct rps (sat) | "
        "added p50 @1k rps: tollgate−direct ms | nginx−direct ms | bare-hyper−direct ms | "
        "CPU/req tollgate/nginx (sat) | CPU/req bare-hyper/nginx (sat) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for kind, (label, _) in bodies.KINDS.items():
        r = rat[kind]
        lines.append(
            f"| {label} | {fmt(r['tollgate_over_nginx_rps'])} | {fmt(r['tollgate_over_direct_rps'])} | "
            f"{fmt(r['nginx_over_direct_rps'])} | {fmt(r['tollgate_added_p50_ms_at_rate'], 3)} | "
            f"{fmt(r['nginx_added_p50_ms_at_rate'], 3)} | "
            f"{fmt(r.get('bare_added_p50_ms_at_rate'), 3)} | "
            f"{fmt(r['tollgate_over_nginx_cpu_per_req'])} | "
            f"{fmt(r.get('bare_over_nginx_cpu_per_req'))} |")
    lines += ["", "## Against the project's targets", "",
              "| check | target | measured | met |", "| --- | --- | ---: | --- |"]

    def row(name, target, value, ok):
        lines.append(f"| {name} | {target} | {value} | "
                     f"{'–' if ok is None else ('yes' if ok else 'no')} |")

    for kind, (label, _) in bodies.KINDS.items():
        r = rat[kind]
        v = r["tollgate_sat_rps"]
        row(f"{label}: tollgate saturation rps", f"≥ {RPS_TARGET[kind]:,}", fmt(v, 0),
            None if v is None else v >= RPS_TARGET[kind])
    for kind, (label, _) in bodies.KINDS.items():
        v = rat[kind]["tollgate_over_nginx_cpu_per_req"]
        row(f"{label}: CPU/request tollgate ÷ nginx", f"≤ {CPU_RATIO_TARGET[kind]:g}×", fmt(v),
            None if v is None else v <= CPU_RATIO_TARGET[kind])
    for kind, (label, _) in bodies.KINDS.items():
        v = rat[kind]["tollgate_added_p50_ms_at_rate"]
        row(f"{label}: added p50 at 1,000 rps", f"< {ADDED_P50_TARGET_MS} ms", fmt(v, 3),
            None if v is None else v < ADDED_P50_TARGET_MS)
    for kind, (label, _) in bodies.KINDS.items():
        r = rat[kind]
        v = r.get("route_sat_rps")
        if v is not None:
            row(f"{label}, three-target route: saturation rps", f"≥ {RPS_TARGET[kind]:,}",
                fmt(v, 0), v >= RPS_TARGET[kind])
        v = r.get("route_over_nginx_cpu_per_req")
        if v is not None:
            row(f"{label}, three-target route: CPU/request ÷ nginx",
                f"≤ {CPU_RATIO_TARGET[kind]:g}×", fmt(v), v <= CPU_RATIO_TARGET[kind])
        v = r.get("route_added_p50_ms_at_rate")
        if v is not None:
            row(f"{label}, three-target route: added p50 at 1,000 rps",
                f"< {ADDED_P50_TARGET_MS} ms",
                f"{fmt(v, 3)} (route − tollgate {fmt(r.get('route_minus_tollgate_p50_ms_at_rate'), 3)})",
                v < ADDED_P50_TARGET_MS)
    rss = [rat[k]["tollgate_rss_mb"] for k in bodies.KINDS if rat[k]["tollgate_rss_mb"]]
    v = max(rss) if rss else None
    row("tollgate peak RSS (largest cell)", f"< {RSS_TARGET_MB:g} MB", fmt(v, 1),
        None if v is None else v < RSS_TARGET_MB)
    lines += ["", "The throughput targets are absolute and assume the proxy has the machine to "
              "itself; on a shared 2-core machine with the load generator and upstream on the same "
              "cores, read them next to the direct and nginx rows of the same run.", ""]

    sane = result.get("sanity") or []
    bad = [s for s in sane if s.get("status") != 200 or s.get("error")
           or s.get("message_stop") is False]
    lines += ["## Sanity pass (one request per target and body before load)", ""]
    if not bad:
        lines.append("All targets answered 200 for every body"
                     + (", streams ended with `message_stop`" if any("message_stop" in s for s in sane)
                        else "") + ".")
        diff = [f"{s['target']}/{s['kind']}" for s in sane if s.get("same_as_direct") is False]
        if diff:
            lines.append(f" Responses that differ byte-for-byte from direct: {', '.join(diff)}.")
    else:
        for s in bad:
            lines.append(f"- {s['target']} {s['kind']}: status {s.get('status')} "
                         f"{s.get('error', '')} {s.get('body', '')[:200]}")
    lines += render_journal(result.get("journal"), "##")
    return lines


def render_journal(j, level):
    lines = []
    if j:
        scope = j.get("scope", "proxy matrix")
        lines += ["", f"{level} Journal", "",
                  f"Requests sent to tollgate in this run ({scope}: sanity + warm-up + runs, "
                  f"including those oha abandoned at the end of each run): "
                  f"{j.get('sent')}; journal records counted by `tollgate spend`: "
                  f"{j.get('journaled')}; cost: {j.get('cost_usd')} USD "
                  f"(unknown-cost requests: {j.get('unknown_cost_requests')}). Of the requests "
                  f"sent, {j.get('abandoned_at_deadline')} were abandoned by oha when a run's time "
                  "ran out; these may or may not have reached the gateway, so the two counts can "
                  "differ by up to that many."]
        by_provider = j.get("by_provider")
        if by_provider:
            lines.append("By provider: " + ", ".join(
                f"{r.get('group')} {r.get('requests')}" for r in by_provider) + ".")
        if j.get("error"):
            lines.append(f"Journal query problem: {j['error']}")
    return lines


def conv_overhead(agg):
    """Each converting path against the same-dialect one, per body: the target is on p99 at the
    fixed rate; CPU per request at saturation shows the cost free of queueing."""
    out = {}
    for kind in CONV_KINDS:
        def g(mode, path, field):
            return (agg.get(f"{kind}/{mode}/{path}") or {}).get(field)

        for path in CONV_PATHS[1:]:
            def sub(mode, field):
                a, b = g(mode, path, field), g(mode, "anthropic", field)
                return a - b if a is not None and b is not None else None

            rps, base_rps = g("sat", path, "rps"), g("sat", "anthropic", "rps")
            d99 = sub("rate", "p99_ms")
            out[f"{kind}/{path}"] = {
                "kind": kind, "path": path,
                "added_p50_ms_at_rate": sub("rate", "p50_ms"),
                "added_p99_ms_at_rate": d99,
                "added_cpu_ms_per_req_sat": sub("sat", "cpu_ms_per_req"),
                "sat_rps_over_anthropic": rps / base_rps if rps is not None and base_rps else None,
                "p99_target_met": None if d99 is None else d99 < CONV_P99_TARGET_MS,
            }
    return out


def render_conversion(conv):
    meta, agg, over = conv["meta"], conv["aggregate"], conv["overhead"]
    rate = meta["rate"]
    label = {k: bodies.KINDS[k][0] for k in CONV_KINDS}
    mode_label = {"rate": f"{rate} rps", "sat": f"sat c{meta['connections']}"}
    sizes = ", ".join(f"{label[k]} {meta['body_bytes'][k]:,} B" for k in CONV_KINDS)
    lines = [
        "", f"## Conversion overhead ({meta['finished_at']})", "",
        "- One tollgate, three providers pointing at the same fast mock upstream: `anthropic` "
        "(kind `anthropic`, the default: the body passes unchanged), `bedrock` (kind `bedrock`, "
        "`endpoint` = the mock, static dummy `access_key_id`/`secret_access_key`, region "
        "us-east-1: the body becomes an InvokeModel envelope, the request is SigV4-signed, and "
        "streams come back as AWS event-stream and are re-framed as SSE) and `oai` (kind "
        "`openai-compatible`: Messages → Chat Completions and back, streams chunk by chunk). "
        "`[[models]]` maps `claude-sonnet-4-5` to itself on anthropic, to "
        "`us.anthropic.claude-sonnet-4-5-20250929-v1:0` on bedrock and to `gpt-bench` on oai. "
        "Every request names its provider with `x-tollgate-provider` (anthropic included, so the "
        "three paths receive the same bytes).",
        f"- Bodies: the proxy matrix's Claude-Code-shaped bodies ({sizes}), the same for all three "
        "paths. They hold no `defer_loading` tools or `tool_reference` blocks (which the OpenAI "
        "converter refuses), so no variant is needed; the sanity pass below checks every path "
        "answers 200.",
        f"- Runs: {meta['duration_s']} s each, {meta['reps']} repetition(s) per cell, paths "
        "interleaved within each cell (order rotated per repetition); medians over repetitions. "
        f"Fixed rate: `-q {rate}` with latency correction; both modes use `-c "
        f"{meta['connections']}`. CPU ms/req is tollgate's (all threads) divided by responses.",
        f"- tollgate ({meta['tollgate_version']}, binary {meta.get('tollgate_binary', '?')}; "
        f"repository HEAD {meta['commit']} at run time); auth, journal and cost on. Machine: "
        f"{meta['cpus']} CPUs, load average {meta['loadavg_start']} at start, "
        f"{meta['loadavg_end']} at end; the same shared-machine caveats as the proxy table apply, "
        "which is why the paths run interleaved and are compared with each other.",
        "",
        "| cell | path | rps | p50 ms | p90 ms | p99 ms | CPU ms/req | non-200 / errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for kind in CONV_KINDS:
        for mode in MODES:
            for path in CONV_PATHS:
                c = agg.get(f"{kind}/{mode}/{path}")
                if not c:
                    continue
                lines.append(
                    f"| {label[kind]} · {mode_label[mode]} | {CONV_PATH_LABEL[path]} | "
                    f"{fmt(c['rps'], 0)} | {fmt(c['p50_ms'], 3)} | {fmt(c['p90_ms'], 3)} | "
                    f"{fmt(c['p99_ms'], 3)} | {fmt(c['cpu_ms_per_req'], 4)} | {problems(c)} |")
    lines += [
        "",
        f"Against the same-dialect path (target: conversion adds under {CONV_P99_TARGET_MS:g} ms "
        f"p99 at {rate} requests/s):",
        "",
        f"| body | path | added p50 ms @{rate} | added p99 ms @{rate} | added CPU ms/req (sat) | "
        "sat rps ÷ anthropic | p99 target met |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for kind in CONV_KINDS:
        for path in CONV_PATHS[1:]:
            o = over.get(f"{kind}/{path}")
            if not o:
                continue
            met = o["p99_target_met"]
            lines.append(
                f"| {label[kind]} | {path} − anthropic | {fmt(o['added_p50_ms_at_rate'], 3)} | "
                f"{fmt(o['added_p99_ms_at_rate'], 3)} | {fmt(o['added_cpu_ms_per_req_sat'], 4)} | "
                f"{fmt(o['sat_rps_over_anthropic'])} | "
                f"{'–' if met is None else ('yes' if met else 'no')} |")

    sane = conv.get("sanity") or []
    bad = [s for s in sane if s.get("status") != 200 or s.get("error")
           or s.get("message_stop") is False]
    lines += ["", "### Sanity pass (one request per path and body before load)", ""]
    if not bad:
        lines.append("Every path answered 200 for both bodies and both streams ended with "
                     "`message_stop`.")
    else:
        for s in bad:
            lines.append(f"- {s['target']} {s['kind']}: status {s.get('status')} "
                         f"{s.get('error', '')} {s.get('body', '')[:200]}")
    lines += render_journal(conv.get("journal"), "###")
    return lines


# ---------------------------------------------------------------------------------------------
# the matrix


def spend(args, by):
    p = subprocess.run([args.tollgate_bin, "spend", "--json", "--by", by,
                        "--server", args.urls["tollgate_base"], "--data-dir", args.tollgate_data],
                       capture_output=True, text=True, timeout=60, env=dict(os.environ))
    if p.returncode != 0:
        raise ValueError(f"spend exit {p.returncode}: {p.stderr.strip()[:300]}")
    rows = json.loads(p.stdout)
    return rows.get("data", []) if isinstance(rows, dict) else rows


def journal_check(args, sent, abandoned_count, scope):
    out = {"sent": sent, "abandoned_at_deadline": abandoned_count, "scope": scope}
    try:
        time.sleep(2)  # journal writes may trail the responses
        rows = spend(args, "model")
        out["rows"] = rows
        out["journaled"] = sum(r.get("requests", 0) for r in rows)
        out["cost_usd"] = round(sum(float(r.get("cost_usd") or 0) for r in rows), 6)
        out["unknown_cost_requests"] = sum(r.get("unknown_cost_requests", 0) for r in rows)
        # Shows that the converting paths really reached their providers.
        out["by_provider"] = [{"group": r.get("group"), "requests": r.get("requests")}
                              for r in spend(args, "provider")]
    except (OSError, ValueError, subprocess.TimeoutExpired) as e:
        out["error"] = str(e)
    return out


def tool_version(cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        if p.returncode != 0:
            return "?"
        return (p.stdout.strip() or p.stderr.strip()).splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def abandoned(rec):
    return (rec.get("errors") or {}).get(DEADLINE_ERROR, 0)


def attempted(rec):
    """Requests oha sent: answered ones, ones abandoned at the deadline, and failed ones."""
    return rec.get("responses", 0) + sum((rec.get("errors") or {}).values())


def binary_identity(path):
    """The build measured: HEAD can move on while an older binary is still in the target dir."""
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    built = datetime.datetime.fromtimestamp(os.path.getmtime(path)).isoformat(timespec="seconds")
    return f"built {built}, sha256 {h.hexdigest()[:12]}"


class Tally:
    """Requests sent to tollgate, for comparison with what its journal recorded."""

    def __init__(self):
        self.sent = 0
        self.abandoned = 0

    def add(self, rec):
        self.sent += attempted(rec)
        self.abandoned += abandoned(rec)


def common_meta(args, paths):
    return {
        "started_at": datetime.datetime.now().isoformat(timespec="seconds"),
        "cpus": os.cpu_count(), "kernel": platform.release(),
        "loadavg_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "duration_s": args.duration, "reps": args.reps, "connections": args.connections,
        "body_bytes": {k: os.path.getsize(p) for k, p in paths.items()},
        "oha_version": tool_version([args.oha, "--version"]),
        "tollgate_version": tool_version([args.tollgate_bin, "--version"]),
        "tollgate_binary": binary_identity(args.tollgate_bin),
        "commit": args.commit,
    }


def finish_meta(meta, runs):
    meta["finished_at"] = datetime.datetime.now().isoformat(timespec="seconds")
    meta["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    meta["rss_reset_ok"] = all(r.get("rss_reset", True) for r in runs)


def matrix(args, specs, kinds, paths, rate, tally, label):
    """Every body × mode × repetition, the specs back to back with their order rotated per
    repetition, so that drift in the machine's load hits every target alike."""
    runs = []
    total = len(kinds) * len(MODES) * args.reps * len(specs)
    n = 0
    for kind in kinds:
        for mode in MODES:
            for rep in range(args.reps):
                k = rep % len(specs)
                for spec in specs[k:] + specs[:k]:
                    n += 1
                    r = load_run(args, spec, kind, mode, args.duration, paths[kind], rate)
                    r["rep"] = rep
                    runs.append(r)
                    if spec["pid"] == args.tollgate_pid:
                        tally.add(r)
                    print(f"[{label} {n}/{total}] {kind} {mode} rep{rep} {spec['target']}: "
                          f"{r.get('rps', 0):,.0f} rps p50 {r.get('p50_ms', 0):.3f} ms "
                          f"p99 {r.get('p99_ms', 0):.3f} ms cpu/req "
                          f"{fmt(r.get('cpu_ms_per_req'), 4)} ms rss {fmt(r.get('rss_mb'), 1)} MB "
                          f"(at end {fmt(r.get('rss_end_mb'), 1)} MB) "
                          f"statuses {r.get('statuses')} errors {r.get('errors')} "
                          f"{r.get('error', '')}", file=sys.stderr)
    return runs


def warm_up(args, specs, kinds, paths, tally):
    for spec in specs:
        for kind in kinds:
            r = load_run(args, spec, kind, "sat", args.warmup, paths[kind])
            if spec["pid"] == args.tollgate_pid:
                tally.add(r)
            print(f"  warm-up {spec['target']} {kind}: {r.get('rps', 0):.0f} rps "
                  f"{r.get('error', '')}", file=sys.stderr)


def run_proxy(args, paths, tally):
    specs = [proxy_spec(args, t) for t in TARGETS]
    meta = common_meta(args, paths)
    meta.update({"rate": args.rate, "nginx_version": args.nginx_version,
                 "nginx_worker_processes": "auto",
                 "nginx_workers": len(tree(args.nginx_pid)) - 1})
    sane = sanity(specs, paths, list(paths))
    tally.sent += len(paths)
    if args.warmup > 0:
        warm_up(args, specs, ("small-json", "large-stream"), paths, tally)
    runs = matrix(args, specs, list(paths), paths, args.rate, tally, "proxy")
    finish_meta(meta, runs)
    agg = aggregate(runs)
    return {"meta": meta, "sanity": sane, "runs": runs, "aggregate": agg, "ratios": ratios(agg)}


def run_conversion(args, paths, tally):
    specs = [conv_spec(args, p) for p in CONV_PATHS]
    meta = common_meta(args, paths)
    meta["rate"] = args.conv_rate
    sane = sanity(specs, paths, CONV_KINDS)
    tally.sent += len(specs) * len(CONV_KINDS)
    if args.warmup > 0:
        warm_up(args, specs, CONV_KINDS, paths, tally)
    runs = matrix(args, specs, CONV_KINDS, paths, args.conv_rate, tally, "conversion")
    finish_meta(meta, runs)
    agg = aggregate(runs)
    return {"meta": meta, "sanity": sane, "runs": runs, "aggregate": agg,
            "overhead": conv_overhead(agg)}


def cmd_run(args):
    args.urls = {t: u for t, u in zip(TARGETS, (args.direct, args.nginx, args.bare,
                                                  args.tollgate, args.tollgate))}
    args.urls["tollgate_base"] = args.tollgate.split("/v1/")[0]
    paths = bodies.write_all(os.path.join(args.work, "bodies"))
    print(f"bodies: { {k: os.path.getsize(p) for k, p in paths.items()} }", file=sys.stderr)
    latest = os.path.join(args.out, "latest.json")
    result = {}
    if args.only != "all" and os.path.exists(latest):
        # The matrix not run keeps its previous figures; each section states its own run.
        with open(latest) as f:
            result = json.load(f)
    tally = Tally()
    if args.only in ("all", "proxy"):
        result.update(run_proxy(args, paths, tally))
    if args.only in ("all", "conversion"):
        result["conversion"] = run_conversion(args, paths, tally)
    scope = {"all": "proxy and conversion matrices", "proxy": "proxy matrix",
             "conversion": "conversion matrix"}[args.only]
    journal = journal_check(args, tally.sent, tally.abandoned, scope)
    if args.only == "conversion":
        result["conversion"]["journal"] = journal
    else:
        result["journal"] = journal
    os.makedirs(args.out, exist_ok=True)
    with open(latest, "w") as f:
        json.dump(result, f, indent=1, default=str)
    md = render(result)
    with open(os.path.join(args.out, "latest.md"), "w") as f:
        f.write(md)
    print(md)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bodies")
    b.add_argument("outdir")
    sub.add_parser("free-port")
    rp = sub.add_parser("report")
    rp.add_argument("json")
    r = sub.add_parser("run")
    r.add_argument("--work", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--oha", required=True)
    r.add_argument("--direct", required=True, help="URL of /v1/messages on the upstream")
    r.add_argument("--nginx", default="", help="URL of /v1/messages through nginx (proxy matrix)")
    r.add_argument("--tollgate", required=True)
    r.add_argument("--upstream-key", required=True)
    r.add_argument("--gateway-key", required=True)
    r.add_argument("--upstream-pid", type=int, required=True)
    r.add_argument("--nginx-pid", type=int, default=0)
    r.add_argument("--bare", default="", help="URL of /v1/messages through bare-proxy")
    r.add_argument("--bare-pid", type=int, default=0)
    r.add_argument("--tollgate-pid", type=int, required=True)
    r.add_argument("--tollgate-bin", required=True)
    r.add_argument("--tollgate-data", required=True)
    r.add_argument("--nginx-version", default="?")
    r.add_argument("--commit", default="?")
    r.add_argument("--duration", type=float, default=10)
    r.add_argument("--warmup", type=float, default=1)
    r.add_argument("--reps", type=int, default=3)
    r.add_argument("--rate", type=int, default=1000)
    r.add_argument("--connections", type=int, default=32)
    r.add_argument("--conv-rate", type=int, default=500,
                   help="fixed rate of the conversion matrix, requests/s")
    r.add_argument("--only", choices=("all", "proxy", "conversion"), default="all")
    a = ap.parse_args()
    if a.cmd == "bodies":
        for kind, path in bodies.write_all(a.outdir).items():
            print(kind, path)
    elif a.cmd == "free-port":
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])
        s.close()
    elif a.cmd == "report":
        with open(a.json) as f:
            print(render(json.load(f)), end="")
    else:
        if a.duration == int(a.duration):
            a.duration = int(a.duration)
        if a.warmup == int(a.warmup):
            a.warmup = int(a.warmup)
        if a.only in ("all", "proxy") and not (a.nginx and a.nginx_pid):
            ap.error("the proxy matrix needs --nginx and --nginx-pid")
        if a.only in ("all", "proxy") and not (a.bare and a.bare_pid):
            ap.error("the proxy matrix needs --bare and --bare-pid")
        cmd_run(a)


if __name__ == "__main__":
    main()
