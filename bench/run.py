"""
The benchmark suite (`make bench`): every scenario against a fresh gateway
process, with the load clients in separate processes (bench/load.py) and the
model provider in another (bench/provider.py).

    .venv/bin/python bench/run.py [--only connect,chat,...] [--procs 2]
        [--baseline bench/baseline/baseline.json] [--save-baseline]
        [--profile DIR]   # the gateway under cProfile: DIR/<scenario>.prof
        [--upstream connect,chat | all | none] [--tmp /dev/shm]

Scenarios: connect (connect + handshake + health), chat (C clients × T turns
on a streaming provider with a per-chunk delay; the gateway's overhead is
the turn's latency minus the provider's own time), chat_0ms (the same with
no provider delay: throughput), fanout (one run's chunks to 100 operators),
bridge (pipelined JSONL frames on one node connection), invoke (node.invoke
round trips over the bridge), idle (1,000 authenticated idle connections),
churn (10,000 connect/close cycles) and sessions (1,000 new sessions, one
turn each: memory, index and transcript bytes per session). Each gateway is warmed up with a
little of the scenario's own work before the measured part.

For each: one JSON line, then a table with the targets and the change
against the baseline. --upstream names the scenarios also run against the
real upstream gateway (openclaw 2026.1.30 on its Node 22, from the CLI cache
the interop tests use; same load clients, same provider), printed side by
side with the ratio; skipped, with the reason printed, when the CLI is not
cached or the scenario has no upstream counterpart. Upstream's CPU and RSS
are summed over its process tree. Server CPU is utime+stime of the gateway process from
/proc/<pid>/stat, before and after the measured part; peak RSS is its VmHWM.
Figures only: the exit status is 1 only when a scenario could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import REPO, Gateway, Upstream, Workers, mib, ms, percentile, split, table, upstream_cli  # noqa: E402

DEFAULT_BASELINE = REPO / "bench" / "baseline" / "baseline.json"


class Provider:
    """bench/provider.py as a process."""

    def __init__(self, chunks: int, delay_ms: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "provider.py"), json.dumps({"chunks": chunks, "delay_ms": delay_ms})],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        self.port = json.loads(self.proc.stdout.readline())["port"]
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def config(self) -> dict[str, Any]:
        return {
            "models": {"providers": {"fake": {"baseUrl": self.url, "apiKey": "sk-bench-0123456789", "api": "openai-completions", "models": [{"id": "m1", "name": "m1"}]}}},
            "agents": {"defaults": {"model": {"primary": "fake/m1"}}},
        }

    def timings(self) -> dict[str, Any]:
        return json.loads(urllib.request.urlopen(f"{self.url}/timings", timeout=10).read())

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Measure:
    """Server CPU and memory of the gateway around the measured part of a scenario."""

    def __init__(self, gw: Gateway) -> None:
        self.gw = gw
        self.cpu0 = gw.cpu()
        self.split0 = gw.cpu_split()
        self.rss0 = gw.memory()["VmRSS"]
        self.t0 = time.monotonic()

    def done(self) -> dict[str, Any]:
        self.cpu = self.gw.cpu() - self.cpu0
        user, system = (b - a for a, b in zip(self.split0, self.gw.cpu_split()))
        self.wall = time.monotonic() - self.t0
        m = self.gw.memory()
        return {"server_cpu_s": round(self.cpu, 3), "server_kernel_share": round(system / self.cpu, 2) if self.cpu else None, "rss_before_mib": mib(self.rss0), "rss_after_mib": mib(m["VmRSS"]), "peak_rss_mib": mib(m["VmHWM"])}


def per_op(cpu: float, ops: int) -> float | None:
    return round(cpu * 1000 / ops, 3) if ops else None


def warm_up(role: str, args: dict[str, Any]) -> None:
    """A little of the scenario's own work before measuring: first-use imports and caches are not per-operation costs."""
    Workers(role, [args]).results()


# -- scenarios: each returns its figures


def connect(opt: argparse.Namespace, profile: Path | None) -> dict[str, Any]:
    sessions = opt.sessions
    gw = opt.server(None, profile).start()
    started = {"start_to_listening_s": round(gw.start_s or 0, 2), "rss_at_start_mib": mib(gw.memory()["VmRSS"])}
    try:
        warm_up("connect", {"port": gw.port, "sessions": 50, "concurrency": 5})
        workers = Workers("connect", [{"port": gw.port, "sessions": n, "concurrency": 10} for n in split(sessions, opt.procs)])
        m = Measure(gw)
        results = workers.results()
        figures = m.done()
        errors = [e for r in results for e in r["errors"]] + gw.logged_errors()
    finally:
        gw.stop()
    lat = sorted(x for r in results for x in r["latencies"])
    wall = max(r["ended"] for r in results) - min(r["started"] for r in results)
    return {
        "sessions": sessions,
        "ok": len(lat),
        "errors": len(errors),
        "error_samples": errors[:5],
        "sessions_per_s": round(len(lat) / wall, 1),
        "latency_p50_ms": ms(percentile(lat, 0.5)),
        "latency_p99_ms": ms(percentile(lat, 0.99)),
        "cpu_ms_per_session": per_op(m.cpu, len(lat)),
        **started,
        **figures,
    }


def _chat(opt: argparse.Namespace, profile: Path | None, chunk_ms: float) -> dict[str, Any]:
    clients, turns = opt.chat_clients, opt.chat_turns
    provider = Provider(9, chunk_ms)
    gw = opt.server(provider.config(), profile).start()
    try:
        warm_up("chat", {"port": gw.port, "clients": 2, "turns": 3, "name": "warm"})
        shares = split(clients, opt.procs)
        workers = Workers("chat", [{"port": gw.port, "clients": n, "turns": turns, "name": f"s{i}"} for i, n in enumerate(shares)])
        m = Measure(gw)
        results = workers.results()
        figures = m.done()
        timings = provider.timings()
        errors = [e for r in results for e in r["errors"]] + gw.logged_errors()
    finally:
        gw.stop()
        provider.stop()
    records = [t for r in results for t in r["turns"]]
    latency, overhead, provider_time, ack, head, tail = [], [], [], [], [], []
    for t in records:
        p = timings.get(t["runId"])
        latency.append(t["final"] - t["sent"])
        ack.append(t["acked"] - t["sent"])
        if p and p.get("done") is not None:
            provider_time.append(p["done"] - p["in"])
            overhead.append((t["final"] - t["sent"]) - (p["done"] - p["in"]))
            head.append(p["in"] - t["sent"])  # message in → the provider asked
            tail.append(t["final"] - p["done"])  # the provider's last byte → final out
    for values in (latency, overhead, provider_time, ack, head, tail):
        values.sort()
    wall = max(r["ended"] for r in results) - min(r["started"] for r in results)
    return {
        "clients": clients,
        "turns_per_client": turns,
        "chunk_ms": chunk_ms,
        "turns_ok": len(records),
        "errors": len(errors) + (len(records) - len(overhead)),
        "error_samples": errors[:5],
        "turns_per_s": round(len(records) / wall, 1),
        "latency_p50_ms": ms(percentile(latency, 0.5)),
        "latency_p99_ms": ms(percentile(latency, 0.99)),
        "provider_p50_ms": ms(percentile(provider_time, 0.5)),
        "overhead_p50_ms": ms(percentile(overhead, 0.5)),
        "overhead_p99_ms": ms(percentile(overhead, 0.99)),
        "before_provider_p50_ms": ms(percentile(head, 0.5)),
        "before_provider_p99_ms": ms(percentile(head, 0.99)),
        "after_provider_p50_ms": ms(percentile(tail, 0.5)),
        "after_provider_p99_ms": ms(percentile(tail, 0.99)),
        "ack_p50_ms": ms(percentile(ack, 0.5)),
        "ack_p99_ms": ms(percentile(ack, 0.99)),
        "cpu_ms_per_turn": per_op(m.cpu, len(records)),
        **figures,
    }


def chat(opt: argparse.Namespace, profile: Path | None) -> dict[str, Any]:
    return _chat(opt, profile, opt.chunk_ms)


def chat_0ms(opt: argparse.Namespace, profile: Path | None) -> dict[str, Any]:
    return _chat(opt, profile, 0)


def fanout(opt: argparse.Namespace, profile: Path | None) -> dict[str, Any]:
    subscribers, runs, chunks = opt.subscribers, opt.fanout_runs, 20
    provider = Provider(chunks, opt.chunk_ms)
    gw = opt.server(provider.config(), profile).start()
    try:
        subs = Workers("subscribe", [{"port": gw.port, "clients": n, "name": f"sub{i}"} for i, n in enumerate(split(subscribers, opt.procs))])
        ready = subs.ready()
        warm_up("drive", {"port": gw.port, "runs": 1, "prefix": "warm"})
        m = Measure(gw)
        driver = Workers("drive", [{"port": gw.port, "runs": runs}])
        drove = driver.results()[0]
        time.sleep(0.5)  # the last frames reach the slowest subscriber
        figures = m.done()
        subs.release()
        results = subs.results()
        timings = provider.timings()
        errors = drove["errors"] + [e for r in results for e in r["errors"]] + gw.logged_errors()
    finally:
        gw.stop()
        provider.stop()
    held = sum(r["ready"] if isinstance(r, int) else r["open"] for r in ready)
    latencies, missing = [], 0
    for run in drove["runs"]:
        written = (timings.get(run) or {}).get("chunks", [])
        for i, at in enumerate(written):
            key = f"{run}|w{i}"
            arrivals = [r["last"][key] for r in results if key in r["last"]]
            got = sum(r["seen"].get(key, 0) for r in results)
            missing += held - got
            if arrivals:
                latencies.append(max(arrivals) - at)
    latencies.sort()
    delivered = len(latencies) * held
    return {
        "subscribers": held,
        "runs": len(drove["runs"]),
        "chunks": len(latencies),
        "chunk_ms": opt.chunk_ms,
        "errors": len(errors),
        "error_samples": errors[:5],
        "missed_deliveries": missing,
        "closed_early": sum(r["closed_early"] for r in results),
        "last_client_p50_ms": ms(percentile(latencies, 0.5)),
        "last_client_p99_ms": ms(percentile(latencies, 0.99)),
        "last_client_max_ms": ms(latencies[-1] if latencies else None),
        "cpu_ms_per_chunk": per_op(m.cpu, len(latencies)),
        "cpu_us_per_delivery": round(m.cpu * 1e6 / delivered, 1) if delivered else None,
        **figures,
    }


def sessions(opt: argparse.Namespace, profile: Path | None) -> dict[str, Any]:
    """Many sessions, one turn each (0 ms provider): what a session costs in memory and on disk."""
    count = opt.sessions_count
    provider = Provider(3, 0)
    gw = opt.server(provider.config(), profile).start()
    try:
        warm_up("sessions", {"port": gw.port, "sessions": 20, "prefix": "warm"})
        time.sleep(0.5)
        m = Measure(gw)
        w = Workers("sessions", [{"port": gw.port, "sessions": n, "inflight": 5, "prefix": f"k{i}"} for i, n in enumerate(split(count, opt.procs))])
        results = w.results()
        time.sleep(1.5)  # the index's coalesced updatedAt write lands
        figures = m.done()
        errors = [e for r in results for e in r["errors"]] + gw.logged_errors()
        folder = gw.state / "agents" / "main" / "sessions"
        index_bytes = (folder / "sessions.json").stat().st_size if (folder / "sessions.json").exists() else 0
        transcripts = [p.stat().st_size for p in folder.glob("*.jsonl")]
    finally:
        gw.stop()
        provider.stop()
    made = sum(r["sessions"] for r in results)
    wall = max(r["ended"] for r in results) - min(r["started"] for r in results)
    total = made + 20
    return {
        "sessions_made": made,
        "errors": len(errors),
        "error_samples": errors[:5],
        "new_sessions_per_s": round(made / wall, 1),
        "cpu_ms_per_new_session": per_op(m.cpu, made),
        "rss_kib_per_session": round((figures["rss_after_mib"] - figures["rss_before_mib"]) * 1024 / made, 2) if made else None,
        "index_bytes_per_session": round(index_bytes / total) if total else None,
        "transcript_bytes_per_session": round(sum(transcripts) / len(transcripts)) if transcripts else None,
        **figures,
    }


NODE_ID = "bench-node"
NODE_TOKEN = "bench-node-token-0123456789"


def _bridge_gateway(profile: Path | None) -> Gateway:
    gw = Gateway(profile=profile)
    gw.seed("nodes/paired.json", {NODE_ID: {"nodeId": NODE_ID, "platform": "linux", "commands": ["system.which"], "token": NODE_TOKEN, "createdAtMs": 1, "approvedAtMs": 1}})
    return gw.start()


def bridge(opt: argparse.Namespace, profile: Path | None) -> dict[str, Any]:
    gw = _bridge_gateway(profile)
    try:
        warm_up("bridge", {"port": gw.port, "bridge_port": gw.bridge_port, "nodeId": NODE_ID, "token": NODE_TOKEN, "phase": "frames", "frames": 2000})
        m = Measure(gw)
        w = Workers("bridge", [{"port": gw.port, "bridge_port": gw.bridge_port, "nodeId": NODE_ID, "token": NODE_TOKEN, "phase": "frames", "frames": opt.frames}])
        r = w.results()[0]
        figures = m.done()
        errors = r["errors"] + gw.logged_errors()
    finally:
        gw.stop()
    f = r["frames"]
    return {
        "frames": f["count"],
        "errors": len(errors),
        "error_samples": errors[:5],
        "frames_per_s": round(f["count"] / (f["ended"] - f["started"])),
        "cpu_us_per_frame": round(m.cpu * 1e6 / f["count"], 2),
        **figures,
    }


def invoke(opt: argparse.Namespace, profile: Path | None) -> dict[str, Any]:
    gw = _bridge_gateway(profile)
    try:
        warm_up("bridge", {"port": gw.port, "bridge_port": gw.bridge_port, "nodeId": NODE_ID, "token": NODE_TOKEN, "phase": "invoke", "invokes": 100, "prefix": "warm"})
        m = Measure(gw)
        w = Workers("bridge", [{"port": gw.port, "bridge_port": gw.bridge_port, "nodeId": NODE_ID, "token": NODE_TOKEN, "phase": "invoke", "invokes": opt.invokes, "inflight": 16}])
        r = w.results()[0]
        figures = m.done()
        errors = r["errors"] + r["invokes"]["errors"] + gw.logged_errors()
    finally:
        gw.stop()
    i = r["invokes"]
    lat = sorted(i["latencies"])
    return {
        "invokes": i["count"],
        "inflight": 16,
        "errors": len(errors),
        "error_samples": errors[:5],
        "invokes_per_s": round(i["count"] / (i["ended"] - i["started"]), 1),
        "latency_p50_ms": ms(percentile(lat, 0.5)),
        "latency_p99_ms": ms(percentile(lat, 0.99)),
        "cpu_ms_per_invoke": per_op(m.cpu, i["count"]),
        **figures,
    }


def idle(opt: argparse.Namespace, profile: Path | None) -> dict[str, Any]:
    count = opt.idle
    gw = opt.server(None, profile).start()
    try:
        warm_up("cycles", {"port": gw.port, "sessions": 50, "concurrency": 5})
        time.sleep(0.5)
        rss_idle = gw.memory()["VmRSS"]
        m = Measure(gw)
        w = Workers("idle", [{"port": gw.port, "connections": n, "concurrency": 20} for n in split(count, opt.procs)])
        ready = w.ready()
        cpu_open = gw.cpu() - m.cpu0
        time.sleep(1.0)
        rss_held = gw.memory()["VmRSS"]
        cpu_hold0 = gw.cpu()
        time.sleep(opt.hold)
        cpu_hold = gw.cpu() - cpu_hold0
        w.release()
        results = w.results()
        figures = m.done()
        errors = [e for r in results for e in r["errors"]] + gw.logged_errors()
    finally:
        gw.stop()
    opened = sum(r["open"] for r in ready)
    return {
        "connections": opened,
        "held_to_the_end": sum(r["held"] for r in results),
        "errors": len(errors),
        "error_samples": errors[:5],
        "rss_idle_gateway_mib": mib(rss_idle),
        "rss_total_mib": mib(rss_held),
        "kib_per_connection": round((rss_held - rss_idle) / opened, 1) if opened else None,
        "cpu_ms_per_connection_opened": per_op(cpu_open, opened),
        "cpu_ms_per_s_holding": round(cpu_hold * 1000 / opt.hold, 2),
        **figures,
    }


def churn(opt: argparse.Namespace, profile: Path | None) -> dict[str, Any]:
    cycles = opt.cycles
    gw = opt.server(None, profile).start()
    try:
        warm = Workers("cycles", [{"port": gw.port, "sessions": n, "concurrency": 10} for n in split(opt.warmup, opt.procs)])
        warm.results()
        time.sleep(0.5)
        m = Measure(gw)
        w = Workers("cycles", [{"port": gw.port, "sessions": n, "concurrency": 10} for n in split(cycles, opt.procs)])
        results = w.results()
        time.sleep(1.0)
        figures = m.done()
        errors = [e for r in results for e in r["errors"]] + gw.logged_errors()
    finally:
        gw.stop()
    ok = sum(len(r["latencies"]) for r in results)
    wall = max(r["ended"] for r in results) - min(r["started"] for r in results)
    return {
        "cycles": ok,
        "warmup_cycles": opt.warmup,
        "errors": len(errors),
        "error_samples": errors[:5],
        "cycles_per_s": round(ok / wall, 1),
        "rss_growth_mib": round(figures["rss_after_mib"] - figures["rss_before_mib"], 1),
        "cpu_ms_per_cycle": per_op(m.cpu, ok),
        **figures,
    }


# name → (function, [(figure, target op, target value)])
SCENARIOS: dict[str, tuple[Callable[[argparse.Namespace, Path | None], dict[str, Any]], list[tuple[str, str, float]]]] = {
    "connect": (connect, [("cpu_ms_per_session", "<=", 0.5), ("errors", "<=", 0)]),
    "chat": (chat, [("overhead_p50_ms", "<=", 5), ("overhead_p99_ms", "<=", 20), ("errors", "<=", 0)]),
    "chat_0ms": (chat_0ms, [("turns_per_s", ">=", 40), ("errors", "<=", 0)]),
    "fanout": (fanout, [("last_client_p99_ms", "<=", 20), ("errors", "<=", 0)]),
    "bridge": (bridge, [("frames_per_s", ">=", 20000), ("errors", "<=", 0)]),
    "invoke": (invoke, [("errors", "<=", 0)]),
    "idle": (idle, [("rss_total_mib", "<=", 120), ("errors", "<=", 0)]),
    "churn": (churn, [("rss_growth_mib", "<=", 5), ("errors", "<=", 0)]),
    "sessions": (sessions, [("errors", "<=", 0)]),
}
# Lower is better for these; for the rest (throughputs) higher is.
HIGHER_IS_BETTER = ("_per_s",)

# The side-by-side with the real upstream gateway: the scenarios it can run,
# and why the others cannot.
UPSTREAM_DEFAULT = ("connect", "chat")
UPSTREAM_CAN = ("connect", "chat", "chat_0ms", "fanout", "idle", "churn", "sessions")
UPSTREAM_CANNOT = {
    "bridge": "upstream 2026.1.30 has no live JSONL bridge (its modules are dead code; nodes use the WebSocket)",
    "invoke": "upstream 2026.1.30 invokes nodes only over the WebSocket, after device pairing: not the same path",
}
# Figures of the side-by-side: what the comparison table shows, per scenario.
COMPARED = {
    "connect": ("start_to_listening_s", "rss_at_start_mib", "sessions_per_s", "latency_p50_ms", "latency_p99_ms", "cpu_ms_per_session", "errors", "peak_rss_mib"),
    "chat": ("turns_per_s", "latency_p50_ms", "latency_p99_ms", "overhead_p50_ms", "overhead_p99_ms", "cpu_ms_per_turn", "errors", "peak_rss_mib"),
    "chat_0ms": ("turns_per_s", "latency_p50_ms", "latency_p99_ms", "cpu_ms_per_turn", "errors", "peak_rss_mib"),
    "fanout": ("last_client_p50_ms", "last_client_p99_ms", "missed_deliveries", "cpu_us_per_delivery", "errors", "peak_rss_mib"),
    "idle": ("rss_idle_gateway_mib", "rss_total_mib", "kib_per_connection", "cpu_ms_per_connection_opened", "errors"),
    "churn": ("cycles_per_s", "rss_growth_mib", "cpu_ms_per_cycle", "errors"),
    "sessions": ("new_sessions_per_s", "cpu_ms_per_new_session", "rss_kib_per_session", "index_bytes_per_session", "transcript_bytes_per_session", "errors"),
}


def ours(extra: dict[str, Any] | None, profile: Path | None) -> Any:
    return Gateway(extra, profile=profile)


def upstream(extra: dict[str, Any] | None, profile: Path | None) -> Any:
    return Upstream(extra)


def versus(name: str, mine: dict[str, Any], theirs: dict[str, Any]) -> None:
    """This gateway's figures next to upstream's, with the ratio (this / upstream)."""
    rows = []
    for key in COMPARED[name]:
        a, b = mine.get(key), theirs.get(key)
        ratio = ""
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b:
            r = a / b
            better = (r > 1) == key.endswith(HIGHER_IS_BETTER)
            ratio = f"{r:.2f}×" + ("" if abs(r - 1) < 0.05 or "errors" in key else " (better)" if better else " (worse)")
        rows.append((key, str(a), str(b), ratio))
    head = ("figure", "this gateway", Upstream.name, "this / upstream")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    print(f"[{name}] side by side (load average {theirs.get('load1')})")
    for r in [head, *rows]:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    for sample in theirs.get("error_samples") or []:
        print(f"  ! upstream: {sample}")
    sys.stdout.flush()


def met(value: Any, op: str, target: float) -> bool | None:
    if not isinstance(value, (int, float)):
        return None
    return value <= target if op == "<=" else value >= target


# What a scenario was asked to do, not how it went: shown against the baseline without a verdict.
PARAMETERS = {"sessions", "ok", "clients", "turns_per_client", "turns_ok", "chunk_ms", "subscribers", "runs", "chunks", "frames", "invokes", "inflight", "connections", "held_to_the_end", "cycles", "warmup_cycles", "sessions_made", "seconds"}


def change(name: str, key: str, value: Any, baseline: dict[str, Any]) -> str:
    old = (baseline.get(name) or {}).get(key)
    if not isinstance(value, (int, float)) or not isinstance(old, (int, float)) or isinstance(value, bool):
        return ""
    if key in PARAMETERS:
        return "=" if value == old else f"{old} → {value}"
    if old == 0:
        return f"{old} → {value}" if value != old else "="
    pct = (value - old) / abs(old) * 100
    better = (pct > 0) == key.endswith(HIGHER_IS_BETTER)
    mark = "" if abs(pct) < 5 else (" (better)" if better else " (worse)")
    return f"{old} → {pct:+.0f}%{mark}"


def report(name: str, figures: dict[str, Any], targets: list[tuple[str, str, float]], baseline: dict[str, Any]) -> None:
    goals = {k: (op, v) for k, op, v in targets}
    rows = []
    for key, value in figures.items():
        if key in ("bench", "error_samples", "targets", "load1", "upstream"):
            continue
        goal = goals.get(key)
        target = ""
        if goal:
            ok = met(value, *goal)
            target = f"{goal[0]} {goal[1]:g} {'ok' if ok else 'MISSED'}"
        rows.append((key, str(value), target, change(name, key, value, baseline)))
    print(table(f"[{name}] (load average {figures.get('load1')})", rows))
    for sample in figures.get("error_samples") or []:
        print(f"  ! {sample}")
    sys.stdout.flush()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", default="", help="comma-separated scenarios (default: all)")
    p.add_argument("--procs", type=int, default=2, help="load-client processes per scenario")
    p.add_argument("--baseline", type=Path, default=DEFAULT_BASELINE)
    p.add_argument("--save-baseline", action="store_true", help="write this run's figures as the baseline")
    p.add_argument("--profile", type=Path, help="run each gateway under cProfile, stats in DIR/<scenario>.prof")
    p.add_argument("--sessions", type=int, default=2000, help="connect: sessions")
    p.add_argument("--chat-clients", type=int, default=10)
    p.add_argument("--chat-turns", type=int, default=20)
    p.add_argument("--chunk-ms", type=float, default=20, help="provider delay per chunk (chat, fanout)")
    p.add_argument("--subscribers", type=int, default=100)
    p.add_argument("--fanout-runs", type=int, default=10)
    p.add_argument("--frames", type=int, default=100_000)
    p.add_argument("--invokes", type=int, default=3000)
    p.add_argument("--idle", type=int, default=1000)
    p.add_argument("--hold", type=float, default=3.0, help="idle: seconds to watch the held connections")
    p.add_argument("--cycles", type=int, default=10_000)
    p.add_argument("--warmup", type=int, default=500, help="churn: cycles before the RSS is taken")
    p.add_argument("--sessions-count", type=int, default=1000, help="sessions: new sessions, one turn each")
    p.add_argument(
        "--upstream",
        default=",".join(UPSTREAM_DEFAULT),
        help=f"scenarios also run against the real upstream gateway {Upstream.name} from the CLI cache, side by side "
        f"(default: %(default)s; 'all': {','.join(UPSTREAM_CAN)}; 'none')",
    )
    p.add_argument("--tmp", type=Path, help="where the gateways' state folders go (e.g. /dev/shm: no disk latency in fsyncs)")
    opt = p.parse_args()
    opt.server = ours
    if opt.tmp:
        tempfile.tempdir = str(opt.tmp)
    names = [n for n in opt.only.split(",") if n] or list(SCENARIOS)
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        p.error(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    compare = {"none": [], "all": list(UPSTREAM_CAN)}.get(opt.upstream, [n for n in opt.upstream.split(",") if n])
    bad = [n for n in compare if n not in UPSTREAM_CAN and n not in UPSTREAM_CANNOT]
    if bad:
        p.error(f"--upstream: unknown scenario(s): {', '.join(bad)}")
    if compare and upstream_cli() is None:
        print(f"upstream side by side skipped: the upstream CLI {Upstream.name} is not in the cache (/work/shared/tools/install-openclaw-cli.sh installs it)")
        compare = []
    elif compare:
        rest = [n for n in names if n not in compare and n in UPSTREAM_CAN]
        print(f"upstream side by side ({Upstream.name}): {', '.join(n for n in names if n in compare) or 'none of these'}"
              + (f"; not by default, to keep make bench short: {', '.join(rest)} (--upstream all)" if rest else "")
              + "".join(f"; {n}: none, {UPSTREAM_CANNOT[n]}" for n in names if n in UPSTREAM_CANNOT))
    baseline = json.loads(opt.baseline.read_text() or "{}") if opt.baseline.is_file() else {}
    if opt.profile:
        opt.profile.mkdir(parents=True, exist_ok=True)
    print(f"bench: {len(names)} scenario(s) on {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; state in {tempfile.gettempdir()}; baseline {opt.baseline if baseline else 'none'}")
    started = time.monotonic()
    results: dict[str, Any] = {}
    failed = []
    for name in names:
        run, targets = SCENARIOS[name]
        load1 = round(os.getloadavg()[0], 2)
        t = time.monotonic()
        try:
            figures = run(opt, opt.profile / f"{name}.prof" if opt.profile else None)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        figures = {"bench": name, **figures, "seconds": round(time.monotonic() - t, 1), "load1": load1}
        figures["targets"] = {k: met(figures.get(k), op, v) for k, op, v in targets}
        results[name] = figures
        print(json.dumps(figures))
        report(name, figures, targets, baseline)
        if name in compare and name in UPSTREAM_CANNOT:
            print(f"[{name}] side by side skipped: {UPSTREAM_CANNOT[name]}")
        elif name in compare:
            opt.server = upstream
            t = time.monotonic()
            load1 = round(os.getloadavg()[0], 2)
            try:
                theirs = {"bench": name, "server": Upstream.name, **run(opt, None), "seconds": round(time.monotonic() - t, 1), "load1": load1}
            except Exception:
                traceback.print_exc()
                print(f"[{name}] side by side could not run against {Upstream.name}")
            else:
                figures["upstream"] = theirs
                print(json.dumps(theirs))
                versus(name, figures, theirs)
            finally:
                opt.server = ours
    total = time.monotonic() - started
    print(f"\nbench: {len(results)} scenario(s) in {total:.0f} s" + (f"; FAILED to run: {', '.join(failed)}" if failed else ""))
    missed = [f"{n}.{k}" for n, f in results.items() for k, ok in f["targets"].items() if ok is False]
    print("targets: " + ("all met" if not missed else "missed: " + ", ".join(missed)))
    if opt.save_baseline:
        merged = {**baseline, **results}
        opt.baseline.parent.mkdir(parents=True, exist_ok=True)
        opt.baseline.write_text(json.dumps(merged, indent=1, sort_keys=True) + "\n")
        print(f"baseline written: {opt.baseline}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
