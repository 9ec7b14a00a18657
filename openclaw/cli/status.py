# -*- test-case-name: tests.test_daemon,tests.test_status_cli -*-
"""
`openclaw gateway status [--deep]`, `openclaw status --all`,
`openclaw gateway probe [--url]` and `openclaw gateway logs [--tail N] [-f]`.

Status is what this machine knows (service manager, pid, ports, config,
files) plus what the running gateway answers. `status --all` is all of it,
with every configured secret masked, to paste into a bug report.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import IO, Any, Mapping

from twisted.python import usage

from openclaw import __version__
from openclaw.cli.remote import Failed, LogsOptions, TimedOptions
from openclaw.config import ConfigError, load_for, load_valid
from openclaw.config.settings import Flags, resolve_auth
from openclaw.logs import Redactor, config_secrets
from openclaw.ops import daemon
from openclaw.ops.daemon import stray_temps
from openclaw.ops.procinfo import cmdline, gateway_pids, rss_bytes
from openclaw.ops.supervisor import installed_supervisor, unit_dir
from openclaw.ops.units import ServiceSpec
from openclaw.paths import Layout, derive_ports
from openclaw.net.portowner import listeners
from openclaw.store import LOCK_NAME

EX_NOT_RUNNING = 3  # as `systemctl status` (LSB): the program is not running

SERVICE_NOT_RUNNING = "not running"


def _gateway_port(layout: Layout, config: Mapping[str, Any], env: Mapping[str, str]) -> int:
    raw = env.get("OPENCLAW_GATEWAY_PORT") or (config.get("gateway") or {}).get("port")
    try:
        return int(raw) if raw else layout.default_port
    except (TypeError, ValueError):
        return layout.default_port


def local_report(layout: Layout, env: Mapping[str, str], deep: bool = False) -> dict[str, Any]:
    """Everything this machine can say about the profile's gateway without asking it."""
    report: dict[str, Any] = {"profile": layout.profile or "default", "stateDir": str(layout.state_dir), "configPath": str(layout.config_path)}
    config: Mapping[str, Any] = {}
    full_env: Mapping[str, str] = env
    try:
        loaded = load_valid(layout, env)
        config, full_env = loaded.config, loaded.env
        report["config"] = {"ok": True, "exists": loaded.exists, "warnings": [str(w) for w in loaded.warnings]}
    except ConfigError as e:
        report["config"] = {"ok": False, "issues": [str(i) for i in e.issues]}
        try:
            config = load_for(layout, env).config
        except ConfigError:
            config = {}
    spec = ServiceSpec(argv=(), state_dir=layout.state_dir, config_path=layout.config_path, profile=layout.profile)
    supervisor = installed_supervisor(spec, env)
    pid = daemon.running_pid(layout.state_dir)
    service: dict[str, Any]
    if supervisor is not None:
        state = supervisor.state()
        scope = "system" if getattr(supervisor.spec, "system", False) else "user"
        service = {"manager": supervisor.kind, "unit": str(supervisor.path), "scope": scope, "state": state.active, "detail": state.detail, "pid": state.pid, "restarts": state.restarts}
        pid = state.pid or pid
    elif pid is not None:
        background = daemon.read_pidfile(layout.state_dir) == pid
        service = {"manager": "background" if background else "foreground", "state": "running", "pid": pid, "detail": "started by `openclaw gateway start`" if background else "`openclaw gateway run` in a terminal (or another supervisor)"}
    else:
        service = {"manager": "none", "state": SERVICE_NOT_RUNNING, "pid": None, "detail": "no service installed and no gateway running"}
    report["service"] = service
    report["pid"] = pid
    port = _gateway_port(layout, config, full_env)
    ports = derive_ports(port)
    bridge = (config.get("bridge") or {}).get("port") or ports.bridge
    canvas = (config.get("canvasHost") or {}).get("port") or ports.canvas
    report["ports"] = {name: {"port": p, "owners": [owner for owner, _ in listeners(p)]} for name, p in (("gateway", port), ("bridge", bridge), ("canvas", canvas))}
    report["auth"] = resolve_auth(config, full_env, Flags()).mode
    report["memory"] = {"rssBytes": rss_bytes(pid)} if pid else {}
    logging = config.get("logging") or {}
    report["logFile"] = str(Path(logging["file"]).expanduser()) if isinstance(logging.get("file"), str) else str(layout.log_file)
    channels = config.get("channels") or {}
    report["channels"] = sorted(k for k, v in channels.items() if isinstance(v, dict) and v.get("enabled", True) is not False) if isinstance(channels, dict) else []
    if deep:
        report["deep"] = deep_report(layout, env, pid, report)
    return report


def deep_report(layout: Layout, env: Mapping[str, str], pid: int | None, report: Mapping[str, Any]) -> dict[str, Any]:
    """Other gateways and units here, who owns the ports, and files left behind."""
    others = [{"pid": p, "command": " ".join(cmdline(p))[:200]} for p in gateway_pids() if p != pid]
    units: list[str] = []
    for system in (False, True):
        folder = unit_dir(env, system)
        try:
            units += sorted(str(p) for p in folder.glob("openclaw-gateway*.service"))
        except OSError:
            pass
    owners: dict[str, list[dict[str, Any]]] = {}
    for name, entry in report["ports"].items():
        owners[name] = [{"pid": p, "command": c[:200]} for p, c in listeners(entry["port"])]
    problems: list[str] = []
    stale = daemon.stale_pidfile(layout.state_dir)
    if stale is not None:
        problems.append(f"stale pid file {layout.state_dir / daemon.PID_NAME} (pid {stale} is gone): `openclaw doctor --fix` removes it")
    lock = layout.state_dir / LOCK_NAME
    if daemon.lock_holder(layout.state_dir) is None:
        try:
            if lock.read_text().strip():
                problems.append(f"stale lock content in {lock} (no process holds it): `openclaw doctor --fix` clears it")
        except OSError:
            pass
    temps = stray_temps(layout.state_dir)
    if temps and pid is None:
        problems.append(f"{len(temps)} temp file(s) left by a crash in {layout.state_dir}: `openclaw doctor --fix` removes them")
    if not report["config"]["ok"]:
        problems += [f"config: {i}" for i in report["config"]["issues"]]
    for name, entry in owners.items():
        strangers = [o for o in entry if o["pid"] != pid]
        if strangers and (pid is None or name == "gateway"):
            problems.append(f"{name} port {report['ports'][name]['port']} is held by " + ", ".join(f"pid {o['pid']} ({o['command'][:80]})" for o in strangers))
    return {"otherGateways": others, "units": sorted(set(units)), "portOwners": owners, "problems": problems}


def _mib(n: int | None) -> str:
    return f"{n / 1048576:.1f} MiB" if n else "unknown"


def render(report: Mapping[str, Any]) -> str:
    """The status report as a person reads it."""
    service = report["service"]
    lines = [f"Gateway (profile {report['profile']}, state {report['stateDir']})"]
    if service["manager"] in ("systemd", "launchd"):
        what = f"{service['manager']} {service.get('scope', '')} service {Path(service['unit']).name}: {service['detail']}"
    elif service["manager"] == "none":
        what = SERVICE_NOT_RUNNING + " (no service installed)"
    else:
        what = f"{service['manager']} process: {service['detail']}"
    if service.get("pid"):
        what += f", pid {service['pid']}"
    if service.get("restarts"):
        what += f", {service['restarts']} restarts"
    lines.append(f"  service:  {what}")
    ports = []
    for name, entry in report["ports"].items():
        owners = entry["owners"]
        ports.append(f"{name} {entry['port']} " + (f"listening (pid {', '.join(map(str, owners))})" if owners else "closed"))
    lines.append("  ports:    " + "; ".join(ports))
    probe = report.get("probe")
    if probe is not None:
        if probe.get("ok"):
            lines.append(
                f"  probe:    {probe['url']} reachable in {probe['connectMs']} ms (protocol {probe.get('protocol')}, "
                f"version {probe.get('version')}, up {probe.get('uptimeMs', 0) // 1000} s)"
            )
        else:
            lines.append(f"  probe:    {probe['url']} NOT reachable: {probe.get('error', '')}")
    lines.append(f"  auth:     {report['auth']}")
    if probe and probe.get("ok"):
        lines.append(f"  sessions: {probe.get('sessions', 0)}; connections: {probe.get('connections', 0)}; runs active: {probe.get('runsActive', 0)}")
    channels = (probe or {}).get("channels") or [f"{c}: configured" for c in report["channels"]]
    if channels:  # the gateway's summary lines (a platform, then its accounts indented)
        lines.append("  channels:")
        lines += [f"    {line}" for line in channels]
    else:
        lines.append("  channels: none configured")
    lines.append(f"  memory:   RSS {_mib((report.get('memory') or {}).get('rssBytes'))}")
    config = report["config"]
    state = "valid" if config["ok"] else "INVALID: " + "; ".join(config["issues"][:3])
    if config["ok"] and not config["exists"]:
        state += " (no file: defaults)"
    lines.append(f"  config:   {report['configPath']} ({state})")
    lines.append(f"  log:      {report['logFile']}")
    deep = report.get("deep")
    if deep is not None:
        lines.append("Deep:")
        lines.append("  other gateways: " + (", ".join(f"pid {o['pid']} ({o['command'][:80]})" for o in deep["otherGateways"]) or "none"))
        lines.append("  units:          " + (", ".join(deep["units"]) or "none"))
        for name, owners in deep["portOwners"].items():
            lines.append(f"  {name} port owners: " + (", ".join(f"pid {o['pid']} ({o['command'][:60]})" for o in owners) or "none"))
        lines.append("  problems:       " + ("none" if not deep["problems"] else ""))
        lines += [f"    - {p}" for p in deep["problems"]]
    return "\n".join(lines) + "\n"


class GatewayStatusOptions(TimedOptions):
    synopsis = "[--deep] [--no-probe] [--json] [--url URL] [--token T] [--timeout MS]"
    longdesc = (
        "The gateway's service state, pid, ports, reachability, auth mode, version, uptime, channels, sessions and memory. "
        "--deep adds other gateways and units on this machine, port owners, config problems and stale files. "
        "Exit 0: running and reachable; 1: running but not answering; 3: not running."
    )
    optFlags = [["deep", None, "Also look for other gateways, port owners, config problems, stale files."], ["no-probe", None, "Do not connect to the gateway."]]

    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        report = local_report(self.layout(env), env, self["deep"])
        if not self["no-probe"]:
            report["probe"] = await self.probe(reactor, env)
        self.finish(report, out)

    async def probe(self, reactor: Any, env: Mapping[str, str], local: bool = False) -> dict[str, Any]:
        """Connect, then ask for status; every step timed, a failure described (never raised)."""
        started = time.monotonic()
        try:
            target = self.target(env, local)[0]
        except Failed as e:
            return {"ok": False, "url": None, "error": str(e)}
        try:
            connection = await self.connection(reactor, env, local=local)
        except Failed as e:
            return {"ok": False, "url": target, "error": str(e).splitlines()[0], "ms": int((time.monotonic() - started) * 1000)}
        connect_ms = int((time.monotonic() - started) * 1000)
        result: dict[str, Any] = {"ok": True, "url": target, "connectMs": connect_ms, "protocol": connection.hello.get("protocol"), "version": (connection.hello.get("server") or {}).get("version")}
        try:
            t = time.monotonic()
            health = await self.call(connection, "health")
            result["healthMs"] = int((time.monotonic() - t) * 1000)
            t = time.monotonic()
            status = await self.call(connection, "status")
            result["statusMs"] = int((time.monotonic() - t) * 1000)
        except Failed as e:
            result.update(ok=False, error=str(e))
            return result
        finally:
            connection.close()
        sessions = status.get("sessions") or {}
        result.update(
            healthOk=bool(health.get("ok")),
            uptimeMs=status.get("uptimeMs", 0),
            pid=status.get("pid"),
            sessions=sessions.get("count", 0) if isinstance(sessions, dict) else 0,
            connections=status.get("connections", 0),
            runsActive=(status.get("runs") or {}).get("active", 0),
            channels=status.get("channelSummary") or [],
            rssBytes=(status.get("processMemory") or {}).get("rssBytes"),
        )
        return result

    def finish(self, report: dict[str, Any], out: IO[str]) -> None:
        if self["json"]:
            self.emit(out, report)
        else:
            out.write(render(report))
        running = report["pid"] is not None or report["service"]["state"] == "running"
        probe = report.get("probe")
        if not running and not (probe and probe.get("ok")):
            raise Failed("The gateway is not running.", EX_NOT_RUNNING)
        if probe is not None and not probe.get("ok"):
            raise Failed("The gateway is running but does not answer.", 1)


class StatusOptions(GatewayStatusOptions):
    synopsis = "[--all] [--deep] [--json] [--url URL] [--token T]"
    longdesc = GatewayStatusOptions.longdesc + " --all: everything, secrets masked, to paste into a bug report (exit 0 whatever it finds)."
    optFlags = [["all", None, "Everything (deep status, doctor checks, config, log tail), secrets masked."]]

    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        if not self["all"]:
            await super().go(reactor, env, out)
            return
        layout = self.layout(env)
        report = local_report(layout, env, deep=True)
        report["probe"] = await self.probe(reactor, env)
        from openclaw.ops.doctor import Doctor

        findings = Doctor(layout, env).run()
        text = all_report(layout, env, report, findings, self["json"])
        out.write(text)


def all_report(layout: Layout, env: Mapping[str, str], report: dict[str, Any], findings: list[Any], as_json: bool) -> str:
    """`status --all`: every section, then every configured secret masked by value and by pattern."""
    try:
        loaded = load_for(layout, env)
        config, full_env = loaded.config, loaded.env
        raw = loaded.raw
    except ConfigError as e:
        config, full_env, raw = {}, env, f"(unreadable: {e.describe()})"
    auth = resolve_auth(config, full_env, Flags())
    redactor = Redactor((*auth.secrets, *config_secrets(config, full_env)))
    log_tail = daemon.tail(Path(report["logFile"]), 40)
    system = {
        "openclaw": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "pid": os.getpid(),
    }
    if as_json:
        value = {"system": system, "status": report, "doctor": [f.as_json() for f in findings], "config": redactor.scrub(config), "logTail": [redactor.text(line) for line in log_tail]}
        return redactor.text(json.dumps(value, indent=2, ensure_ascii=False)) + "\n"
    sections = [
        "== system ==\n" + "".join(f"  {k}: {v}\n" for k, v in system.items()),
        "== status ==\n" + render(report),
        "== doctor ==\n" + "".join(f"  [{f.level}] {f.title}: {f.detail}\n" for f in findings),
        f"== config ({layout.config_path}) ==\n" + (json.dumps(redactor.scrub(config), indent=2, ensure_ascii=False) if raw is not None else "(no config file: defaults)") + "\n",
        f"== log tail ({report['logFile']}) ==\n" + "".join(f"  {line}\n" for line in log_tail),
    ]
    return redactor.text("\n".join(sections))


class ProbeOptions(GatewayStatusOptions):
    synopsis = "[--url URL] [--token T] [--password P] [--timeout MS] [--json]"
    longdesc = (
        "Probe gateways with timings: --url, else the configured remote gateway (gateway.mode remote) and the local one. "
        "Exit 0 when one answers."
    )
    optFlags: list[list[str | None]] = []

    async def go(self, reactor: Any, env: Mapping[str, str], out: IO[str]) -> None:
        results = [await self.probe(reactor, env)]
        if not self["url"] and self.target(env, local=True)[0] != results[0]["url"]:
            results.append(await self.probe(reactor, env, local=True))  # remote configured: the local one too
        if self["json"]:
            self.emit(out, {"ok": any(r.get("ok") for r in results), "targets": results})
        else:
            for r in results:
                if r.get("ok"):
                    out.write(
                        f"{r['url']}: OK connect {r['connectMs']} ms, health {r.get('healthMs')} ms, status {r.get('statusMs')} ms "
                        f"(protocol {r.get('protocol')}, version {r.get('version')}, up {r.get('uptimeMs', 0) // 1000} s, pid {r.get('pid')})\n"
                    )
                else:
                    out.write(f"{r['url']}: FAILED {r.get('error', '')}\n")
        if not any(r.get("ok") for r in results):
            raise Failed("No gateway answered.", 1)


class GatewayLogsOptions(LogsOptions):
    synopsis = "[--tail N] [-f] [--level L] [--channel C] [--json]"
    longdesc = "Read the gateway's JSON-lines log file on this machine (-f follows it across rotations)."
    optParameters = [["tail", "n", 50, "Lines to show from the end.", int], ["config", "c", None, "Config file."]]

    def postOptions(self) -> None:
        super().postOptions()
        if not 0 <= self["tail"] <= 100_000:
            raise usage.UsageError("--tail: 0 to 100000")

    def run(self, env: Mapping[str, str], out: IO[str], err: IO[str]) -> int:
        layout = self.layout(env)
        try:
            config = load_for(layout, env).config
        except ConfigError as e:
            err.write(e.describe() + "\n")
            return 78
        logging = config.get("logging") or {}
        path = Path(logging["file"]).expanduser() if isinstance(logging.get("file"), str) else layout.log_file
        if not path.exists() and not self["follow"]:
            err.write(f"No log file at {path} (the gateway has not run on this profile yet).\n")
            return 1
        for line in daemon.tail(path, self["tail"], max_bytes=max(64 * 1024, self["tail"] * 4096)):
            self.show(out, line)
        if not self["follow"]:
            return 0
        try:
            self.follow(path, out)
        except KeyboardInterrupt:
            pass
        return 0

    def follow(self, path: Path, out: IO[str]) -> None:
        """Print lines as they are appended; a rotation (new inode, or a shorter file) starts over."""
        position, inode = self._end(path)
        pending = b""
        interval = self["interval"] / 1000
        while True:
            time.sleep(interval)
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            if st.st_ino != inode or st.st_size < position:
                position, inode, pending = 0, st.st_ino, b""
            if st.st_size == position:
                continue
            with open(path, "rb") as f:
                f.seek(position)
                data = f.read(1 << 20)
            position += len(data)
            pending += data
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.strip():
                    self.show(out, line.decode("utf-8", "replace"))
            if len(pending) > 1 << 20:
                pending = b""  # a line longer than 1 MiB is dropped, not held

    @staticmethod
    def _end(path: Path) -> tuple[int, int]:
        try:
            st = path.stat()
            return st.st_size, st.st_ino
        except FileNotFoundError:
            return 0, 0

