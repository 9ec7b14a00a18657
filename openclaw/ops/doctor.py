# -*- test-case-name: tests.test_doctor -*-
"""
`openclaw doctor`: every check says what it found, with the key or path,
and how to fix it. A L{Finding} with a C{repair} can be fixed safely by
doctor itself (permissions, stale files, config migrations, a token); the
rest is explained. Repairs back the config up first.

Checks are plain functions of the layout, the environment and a few injected
probes (which, disk usage, /proc/meminfo), so tests break a state dir on
purpose and read what doctor says.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
from pathlib import Path
from typing import Any, Callable, Mapping

import json
import time

import attrs

from openclaw.config import ConfigError
from openclaw.config.aliases import canonical
from openclaw.config.edit import backup, read_raw, write_raw
from openclaw.config.firstrun import new_token, store_token
from openclaw.config.loader import parse_dotenv, read_text
from openclaw.config.settings import Flags, bind_hosts, checked, is_loopback, load_for, resolve_auth, sandbox_settings
from openclaw.cron.jobs import CronInputError, from_stored
from openclaw.cron.service import cron_settings
from openclaw.cron.store import MAX_STORE_BYTES
from openclaw.ops import daemon
from openclaw.ops.supervisor import installed_supervisor
from openclaw.ops.units import ServiceSpec
from openclaw.paths import Layout, derive_ports
from openclaw.net.portowner import listeners
from openclaw.store import DIR_MODE, FILE_MODE, LOCK_NAME, atomic_write, clean_stray_temps

OK, INFO, WARN, ERROR = "ok", "info", "warn", "error"
DISK_ERROR = 100 * 1024 * 1024
DISK_WARN = 1024 * 1024 * 1024
MEMORY_WARN = 200 * 1024 * 1024
SECRET_DIRS = ("identity", "devices", "nodes", "credentials", "agents", "cron")
LEGACY_ENV = "CLAWDBOT_"
CHANNEL_SECRETS = {
    "telegram": ("botToken",),
    "discord": ("token",),
    "slack": ("botToken", "appToken"),
    "mattermost": ("botToken",),
    "matrix": ("accessToken",),
}


@attrs.define
class Finding:
    """One check's result; C{repair} (safe to run unasked with --fix) or C{fix} (what the user does)."""

    check: str
    level: str
    title: str
    detail: str
    fix: str = ""
    repair: Callable[[], str] | None = attrs.field(default=None, repr=False, eq=False)
    migration: bool = False  # a config migration: applied by --non-interactive too
    fixed: str | None = None  # what the repair did

    @property
    def fixable(self) -> bool:
        return self.repair is not None and self.fixed is None

    def as_json(self) -> dict[str, Any]:
        return {"check": self.check, "level": self.level, "title": self.title, "detail": self.detail, "fix": self.fix, "fixable": self.fixable, "fixed": self.fixed}


def _mode(path: Path) -> int | None:
    try:
        return stat.S_IMODE(path.lstat().st_mode)
    except OSError:
        return None


def _chmod(path: Path, mode: int) -> Callable[[], str]:
    def repair() -> str:
        os.chmod(path, mode)
        return f"chmod {mode:o} {path}"

    return repair


class Doctor:
    """Runs the checks for one profile."""

    def __init__(
        self,
        layout: Layout,
        env: Mapping[str, str],
        deep: bool = False,
        which: Callable[[str], str | None] = shutil.which,
        disk: Callable[[Path], Any] = shutil.disk_usage,
        meminfo: Path = Path("/proc/meminfo"),
        live_call: Callable[[Any], str | None] | None = None,
    ) -> None:
        self.layout = layout
        self.env = env
        self.deep = deep
        self.which = which
        self.disk = disk
        self.meminfo = meminfo
        self.live_call = live_call
        self.findings: list[Finding] = []
        self.config: dict[str, Any] = {}
        self.full_env: Mapping[str, str] = env
        self.config_ok = False

    def add(self, *args: Any, **kwargs: Any) -> Finding:
        finding = Finding(*args, **kwargs)
        self.findings.append(finding)
        return finding

    def run(self) -> list[Finding]:
        self.findings = []
        for check in (self.state_dir, self.config_file, self.legacy, self.permissions, self.auth, self.providers, self.channels, self.sandbox, self.cron, self.stale, self.ports, self.resources, self.service):
            try:
                check()
            except Exception as e:  # a check that breaks is a finding, not a crash
                self.add(check.__name__, WARN, f"{check.__name__} check failed", f"{type(e).__name__}: {e}")
        return self.findings

    # -- the state dir and the config

    def state_dir(self) -> None:
        state = self.layout.state_dir
        if not state.exists():
            self.add("stateDir", WARN, "state dir missing", f"{state} does not exist: no config, sessions or credentials here yet", "`openclaw setup` creates it")
            return
        st = state.stat()
        if st.st_uid != os.getuid():
            self.add("stateDir", ERROR, "state dir owner", f"{state} belongs to uid {st.st_uid}, not to you (uid {os.getuid()})", f"sudo chown -R {os.getuid()}:{os.getgid()} {state}")
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            self.add("stateDir", WARN, "state dir permissions", f"{state} is mode {mode:o}: other users can read or change the gateway's secrets", f"chmod 700 {state}", _chmod(state, DIR_MODE))
        else:
            self.add("stateDir", OK, "state dir", f"{state} (mode {mode:o})")

    def config_file(self) -> None:
        path = self.layout.config_path
        try:
            loaded = load_for(self.layout, self.env)
        except ConfigError as e:
            for issue in e.issues:
                self.add("config", ERROR, "config unreadable", f"{path}: {issue}", f"fix {path} by hand (the gateway refuses to start; exit 78)")
            return
        self.full_env = loaded.env
        self.config = loaded.config
        if not loaded.exists:
            self.add("config", WARN, "no config file", f"{path} does not exist: the gateway refuses to start without gateway.mode \"local\"", "`openclaw setup` writes a minimal one")
            return
        try:
            checked_config = checked(loaded)
        except ConfigError as e:
            for issue in e.issues:
                self.add("config", ERROR, f"config key {issue.path or '(top level)'}", str(issue), _suggest(issue))
            return
        self.config_ok = True
        self.config = checked_config.config
        warnings = [w for w in checked_config.warnings if not _legacy_key(w.path)]
        for warning in warnings:
            self.add("config", WARN, f"config key {warning.path}", str(warning), f"`openclaw config unset {warning.path}` if it is a typo or left over")
        self.add("config", OK, "config", f"{path} is valid ({len(warnings)} warnings)")
        mode = self.config.get("gateway", {}).get("mode")
        if mode is None:
            self.add("config", WARN, "gateway.mode unset", "gateway.mode is not set: `openclaw gateway` refuses to start", "openclaw config set gateway.mode local")

    def legacy(self) -> None:
        """The seed's and older releases' keys and variables, migrated to current ones."""
        path = self.layout.config_path
        try:
            raw = read_raw(path)
        except ConfigError:
            raw = None
        if raw:
            migrated, notes = migrate(raw)
            if notes:
                def repair(migrated: dict[str, Any] = migrated) -> str:
                    write_raw(path, migrated)
                    return f"rewrote {path}: " + "; ".join(notes)

                self.add("legacy", WARN, "legacy config keys", "; ".join(notes), "`openclaw doctor --fix` rewrites them", repair, migration=True)
        legacy_env = sorted(k for k in self.env if k.startswith(LEGACY_ENV))
        if legacy_env:
            self.add("legacy", WARN, "legacy environment variables", ", ".join(legacy_env) + " are set in this environment", "rename them to OPENCLAW_* where they are set (shell profile, service environment)")
        dotenv = self.layout.state_dir / ".env"
        try:
            text = read_text(dotenv, ".env file")
        except (FileNotFoundError, ConfigError):
            text = ""
        old = [k for k in parse_dotenv(text) if k.startswith(LEGACY_ENV)]
        if old:
            self.add("legacy", WARN, "legacy variables in .env", f"{dotenv}: " + ", ".join(old), "`openclaw doctor --fix` renames them to OPENCLAW_*", lambda: rename_dotenv(dotenv), migration=True)
        home = Path(self.env.get("HOME") or Path.home())
        if (home / ".clawdbot").is_dir():
            self.add("legacy", INFO, "old state dir", f"{home / '.clawdbot'} exists (an older release's state)", f"move what you need into {self.layout.state_dir}, then remove it")

    def permissions(self) -> None:
        state = self.layout.state_dir
        config = self.layout.config_path
        targets: list[tuple[Path, int]] = []
        if config.is_file():
            targets.append((config, FILE_MODE))
        for name in (".env",):
            if (state / name).is_file():
                targets.append((state / name, FILE_MODE))
        for folder in SECRET_DIRS:
            root = state / folder
            if not root.is_dir() or root.is_symlink():
                continue
            for dirpath, dirs, files in os.walk(root):
                targets.append((Path(dirpath), DIR_MODE))
                targets += [(Path(dirpath) / f, FILE_MODE) for f in files if not (Path(dirpath) / f).is_symlink()]
                if len(targets) > 10_000:
                    break
        loose = [(p, m, _mode(p)) for p, m in targets if (_mode(p) or 0) & 0o077]
        for path, wanted, mode in loose[:50]:
            self.add("permissions", WARN, "secret file permissions", f"{path} is mode {mode:o}; it should be {wanted:o}", f"chmod {wanted:o} {path}", _chmod(path, wanted))
        if len(loose) > 50:
            self.add("permissions", WARN, "secret file permissions", f"{len(loose) - 50} more files with loose modes under {state}", f"chmod -R go-rwx {state}")
        if not loose:
            self.add("permissions", OK, "secret files", f"{len(targets)} files and folders are private")

    # -- what the config asks for

    def auth(self) -> None:
        if not self.config_ok:
            return
        gateway = self.config.get("gateway") or {}
        auth = resolve_auth(self.config, self.full_env, Flags())
        if gateway.get("mode") == "remote":
            self.add("auth", INFO, "remote mode", "gateway.mode is remote: this machine is a client; run doctor on the gateway host for its state")
            return
        if auth.mode == "token" and not auth.token and not auth.password:
            self.add(
                "auth",
                WARN,
                "no gateway token",
                "gateway.auth.token is not set (nor OPENCLAW_GATEWAY_TOKEN): clients cannot authenticate",
                "`openclaw doctor --generate-gateway-token` (or --fix) stores a strong one in the config",
                self._token_repair,
            )
        else:
            self.add("auth", OK, "gateway auth", f"mode {auth.mode}")
        hosts = bind_hosts(gateway.get("bind") or "loopback", gateway.get("customBindHost"), lambda: None)
        has_secret = (auth.mode == "token" and auth.token) or (auth.mode == "password" and auth.password)
        exposed = [h for h in hosts if not is_loopback(h)]
        if exposed and not has_secret and auth.mode != "trusted-proxy":
            self.add("auth", ERROR, "bind without auth", f"gateway.bind {gateway.get('bind')} listens on {', '.join(exposed)} without a token or password: the gateway refuses to start", "set gateway.auth.token (`openclaw doctor --generate-gateway-token`) or bind loopback")
        tailscale = (gateway.get("tailscale") or {}).get("mode", "off")
        if tailscale == "funnel" and auth.mode != "password":
            self.add("auth", ERROR, "funnel without password", "gateway.tailscale.mode funnel makes the gateway public; it refuses to start unless gateway.auth.mode is password", "openclaw config set gateway.auth.mode password (and set OPENCLAW_GATEWAY_PASSWORD)")
        if tailscale in ("serve", "funnel") and not self.which("tailscale"):
            self.add("tailscale", ERROR, "tailscale missing", f"gateway.tailscale.mode is {tailscale} but the tailscale CLI is not on PATH", "install Tailscale and `tailscale up`")

    def _token_repair(self) -> str:
        store_token(load_for(self.layout, self.env), new_token())
        return f"stored a new gateway token in {self.layout.config_path} (gateway.auth.token)"

    def providers(self) -> None:
        if not self.config_ok:
            return
        from openclaw.agent.providers import BUILTIN, resolve_models

        configured = ((self.config.get("models") or {}).get("providers") or {})
        for name, settings in configured.items() if isinstance(configured, dict) else ():
            if not isinstance(settings, dict):
                continue
            api = settings.get("api") or BUILTIN.get(name, {}).get("api", "openai-completions")
            key = settings.get("apiKey") or (self.full_env.get(BUILTIN[name]["env"]) if name in BUILTIN else None)
            if api != "ollama" and not key:
                hint = f" or {BUILTIN[name]['env']}" if name in BUILTIN else ""
                self.add("providers", ERROR, f"provider {name}: no API key", f"models.providers.{name}.apiKey is not set{hint}", f"openclaw config set models.providers.{name}.apiKey '${{{name.upper().replace('-', '_')}_API_KEY}}' and put the key in {self.layout.state_dir / '.env'}")
            elif not settings.get("baseUrl") and name not in BUILTIN:
                self.add("providers", ERROR, f"provider {name}: no baseUrl", f"models.providers.{name}.baseUrl is not set", f"openclaw config set models.providers.{name}.baseUrl https://...")
            else:
                self.add("providers", OK, f"provider {name}", f"api {api}, key {'set' if key else 'not needed'}")
        models = resolve_models(self.config, self.full_env)
        if not models:
            self.add("providers", WARN, "no model", "no model provider is configured (nor OPENAI_API_KEY / ANTHROPIC_API_KEY): agent runs will fail", "see docs/agent.md: models.providers and agents.defaults.model")
        elif self.deep and self.live_call is not None:
            problem = self.live_call(models[0])
            if problem:
                self.add("providers", ERROR, f"model {models[0].label}: live call failed", problem, "check the key, baseUrl and model name")
            else:
                self.add("providers", OK, f"model {models[0].label}", "a one-token live call answered")

    def channels(self) -> None:
        channels = self.config.get("channels") or {}
        if not isinstance(channels, dict):
            return
        for name, block in channels.items():
            if not isinstance(block, dict) or block.get("enabled", True) is False:
                continue
            missing = [k for k in CHANNEL_SECRETS.get(name, ()) if not _account_has(block, k)]
            if missing:
                self.add("channels", ERROR, f"channel {name}", f"channels.{name}." + f", channels.{name}.".join(missing) + " not set", f"openclaw config set channels.{name}.{missing[0]} '${{{name.upper()}_{missing[0].upper()}}}'")
            self.add("channels", INFO, f"channel {name}", f"channels.{name} is configured; this gateway does not run {name} yet (its config is kept)")

    def sandbox(self) -> None:
        if not self.config_ok:
            return
        sandbox = sandbox_settings(self.config)
        if sandbox.mode == "off":
            return
        if sandbox.backend == "bubblewrap":
            if self.which("bwrap"):
                self.add("sandbox", OK, "sandbox backend", f"bubblewrap at {self.which('bwrap')} for sandbox.mode {sandbox.mode}")
            else:
                self.add("sandbox", ERROR, "sandbox backend missing", f"gateway.sandbox.mode is {sandbox.mode} with backend bubblewrap, but bwrap is not on PATH: sandboxed sessions cannot run tools", "apt-get install bubblewrap (or dnf install bubblewrap)")
            return
        docker = self.which("docker")
        if not docker:
            self.add("sandbox", ERROR, "sandbox backend missing", f"gateway.sandbox.mode is {sandbox.mode} with backend docker, but docker is not on PATH", "install Docker, or set gateway.sandbox.backend bubblewrap")
            return
        try:
            info = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
            reachable = info.returncode == 0 and info.stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            reachable = False
        if reachable:
            self.add("sandbox", OK, "sandbox backend", f"docker engine {info.stdout.strip()}")
        else:
            self.add("sandbox", ERROR, "docker engine unreachable", "gateway.sandbox.backend is docker but `docker info` cannot reach an engine", "start the Docker daemon (systemctl start docker) and add this user to the docker group")

    def cron(self) -> None:
        """The cron job store: readable as the gateway will read it, private, and its settings valid."""
        settings = cron_settings(self.config, self.layout.state_dir, self.full_env)
        for problem in settings.problems:
            self.add("cron", WARN, "cron setting", problem, "fix the key: `openclaw config set cron.<key> <value>`")
        if not settings.enabled:
            self.add("cron", INFO, "cron disabled", "cron.enabled is false (or OPENCLAW_SKIP_CRON=1): jobs are kept but do not run")
        path = settings.store_path
        folder = path.parent
        if folder.is_dir():
            asides = sorted(folder.glob(path.name + ".corrupt-*"))
            if asides:
                self.add("cron", INFO, "old cron store set aside", f"{len(asides)} unreadable jobs file(s) the gateway moved aside, e.g. {asides[-1]}", "look inside for jobs worth re-adding (`openclaw cron add`), then delete them")
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            self.add("cron", OK, "cron store", f"{path}: no jobs yet")
            return
        except OSError as e:
            self.add("cron", ERROR, "cron store unreadable", f"{path}: {e.strerror}", f"check the permissions of {folder}")
            return
        if not path.is_relative_to(self.layout.state_dir) and (_mode(path) or 0) & 0o077:
            self.add("cron", WARN, "cron store permissions", f"{path} is mode {_mode(path):o}; it should be 600", f"chmod 600 {path}", _chmod(path, FILE_MODE))
        try:
            if size > MAX_STORE_BYTES:
                raise ValueError(f"larger than {MAX_STORE_BYTES} bytes")
            document = json.loads(path.read_bytes())
            if not isinstance(document, dict) or not isinstance(document.get("jobs"), list):
                raise ValueError('expected {"version": 1, "jobs": [...]}')
        except (OSError, ValueError) as e:
            def set_aside() -> str:
                aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
                os.replace(path, aside)
                return f"moved {path} to {aside}"

            self.add(
                "cron",
                ERROR,
                "cron store unreadable",
                f"{path}: {e}; the gateway will move it aside and start with no jobs",
                "`openclaw doctor --fix` moves it aside now (kept, never deleted); re-add the jobs with `openclaw cron add`",
                set_aside,
            )
            return
        bad: list[str] = []
        seen: set[str] = set()
        enabled = 0
        for raw in document["jobs"]:
            try:
                job = from_stored(raw)
                if job.id in seen:
                    raise CronInputError(f"duplicate id {job.id}")
            except CronInputError as e:
                name = raw.get("name") or raw.get("id") if isinstance(raw, dict) else None
                bad.append(f"{name or '(unnamed)'}: {e}")
                continue
            seen.add(job.id)
            enabled += job.enabled
        if bad:
            self.add("cron", WARN, "cron jobs unreadable", f"{len(bad)} job(s) in {path} this gateway cannot read (kept as they are, never run): " + "; ".join(bad[:5]), "fix or remove them in the file while the gateway is stopped")
        self.add("cron", OK, "cron store", f"{path}: {len(seen)} job(s), {enabled} enabled")

    # -- what the machine says

    def stale(self) -> None:
        state = self.layout.state_dir
        running = daemon.running_pid(state)
        stale_pid = daemon.stale_pidfile(state)
        if stale_pid is not None:
            self.add("stale", WARN, "stale pid file", f"{state / daemon.PID_NAME} names pid {stale_pid}, which is not running", "`openclaw doctor --fix` removes it", lambda: "removed " + ", ".join(str(p) for p in daemon.clear_files(state)))
        lock = state / LOCK_NAME
        if daemon.lock_holder(state) is None:
            try:
                content = lock.read_text().strip()
            except OSError:
                content = ""
            if content:
                def clear_lock() -> str:
                    if daemon.lock_holder(state) is None:
                        with open(lock, "r+") as f:
                            f.truncate(0)
                    return f"cleared {lock} (it named pid {content})"

                self.add("stale", WARN, "stale lock", f"{lock} names pid {content} but no process holds the lock (a crash)", "`openclaw doctor --fix` clears it", clear_lock)
        if running is None:
            temps = daemon.stray_temps(state) if state.is_dir() else []
            if temps:
                self.add("stale", WARN, "stray temp files", f"{len(temps)} temp file(s) a crashed write left in {state}", "`openclaw doctor --fix` removes them", lambda: f"removed {len(clean_stray_temps(state))} temp file(s)")
        else:
            self.add("stale", OK, "gateway running", f"pid {running} holds {lock}")

    def ports(self) -> None:
        gateway = self.config.get("gateway") or {}
        raw = self.full_env.get("OPENCLAW_GATEWAY_PORT") or gateway.get("port")
        try:
            port = int(raw) if raw else self.layout.default_port
        except (TypeError, ValueError):
            port = self.layout.default_port
        ours = daemon.running_pid(self.layout.state_dir)
        derived = derive_ports(port)
        for name, p in (("gateway", port), ("bridge", (self.config.get("bridge") or {}).get("port") or derived.bridge), ("canvas", (self.config.get("canvasHost") or {}).get("port") or derived.canvas)):
            owners = [(pid, cmd) for pid, cmd in listeners(p) if pid != ours]
            if owners:
                who = "; ".join(f"pid {pid} ({cmd[:80]})" for pid, cmd in owners)
                self.add("ports", ERROR, f"{name} port {p} in use", f"port {p} is held by {who}", "stop it, or choose another base port: openclaw config set gateway.port <port>")
            elif ours is None and not _bindable(p):
                self.add("ports", ERROR, f"{name} port {p} in use", f"port {p} cannot be bound (a process we cannot see holds it)", f"ss -ltnp 'sport = :{p}'")
            else:
                self.add("ports", OK, f"{name} port {p}", "ours" if ours and listeners(p) else "free")

    def resources(self) -> None:
        target = self.layout.state_dir if self.layout.state_dir.exists() else self.layout.state_dir.parent
        try:
            free = self.disk(target).free
        except OSError as e:
            self.add("resources", WARN, "disk space unknown", f"{target}: {e.strerror}")
            free = None
        if free is not None:
            level = ERROR if free < DISK_ERROR else WARN if free < DISK_WARN else OK
            self.add("resources", level, "disk space", f"{free / 1048576:.0f} MiB free on the state dir's filesystem", "free some space: transcripts and logs need room" if level != OK else "")
        try:
            fields = dict(line.split(":", 1) for line in self.meminfo.read_text().splitlines() if ":" in line)
            available = int(fields["MemAvailable"].split()[0]) * 1024
        except (OSError, KeyError, ValueError):
            return
        level = WARN if available < MEMORY_WARN else OK
        self.add("resources", level, "memory", f"{available / 1048576:.0f} MiB available", "the gateway needs about 100 MiB; stop something or add swap" if level != OK else "")

    def service(self) -> None:
        spec = ServiceSpec(argv=(), state_dir=self.layout.state_dir, config_path=self.layout.config_path, profile=self.layout.profile)
        supervisor = installed_supervisor(spec, self.env)
        if supervisor is None:
            self.add("service", INFO, "no service", "no systemd unit or LaunchAgent for this profile", "`openclaw gateway install` makes the gateway start at boot and restart on failure")
            return
        state = supervisor.state()
        level = OK if state.running else WARN
        self.add("service", level, f"{supervisor.kind} service", f"{supervisor.path}: {state.detail}", "" if state.running else "`openclaw gateway start`, then `openclaw gateway status` and `openclaw gateway logs`")


def _legacy_key(path: str) -> bool:
    return path == "gateway.token"


def _account_has(block: Mapping[str, Any], key: str) -> bool:
    if block.get(key):
        return True
    accounts = block.get("accounts")
    return isinstance(accounts, dict) and any(isinstance(a, dict) and a.get(key) for a in accounts.values())


def _suggest(issue: Any) -> str:
    text = str(issue)
    if "allowed:" in text:
        first = text.split("allowed:", 1)[1].split(",")[0].strip().strip("'\"")
        return f"openclaw config set {issue.path} {first}   (or another allowed value)"
    if "environment variable" in text:
        return f"set the variable in {'.env'} (or the environment), or change {issue.path}"
    return f"openclaw config set {issue.path} <value>   (or openclaw config unset {issue.path})"


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def migrate(raw: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The seed's and older keys rewritten to current ones, and a note per change."""
    notes: list[str] = []
    out, _ = canonical(raw)
    gateway, before = out.get("gateway"), raw.get("gateway")
    if isinstance(gateway, dict) and isinstance(before, dict):
        if before.get("mode") != gateway.get("mode"):
            notes.append(f"gateway.mode {before.get('mode')!r} → {gateway.get('mode')!r}")
        old_sandbox, sandbox = before.get("sandbox"), gateway.get("sandbox")
        if isinstance(old_sandbox, dict) and isinstance(sandbox, dict):
            if "enabled" in old_sandbox and "enabled" not in sandbox:
                notes.append(f"gateway.sandbox.enabled {old_sandbox['enabled']!r} → gateway.sandbox.mode {sandbox.get('mode')!r}")
            if old_sandbox.get("allowFileSystem") != sandbox.get("allowFileSystem"):
                notes.append(f"gateway.sandbox.allowFileSystem {old_sandbox.get('allowFileSystem')!r} → {sandbox.get('allowFileSystem')!r}")
        if "token" in gateway:
            token = gateway.pop("token")
            auth = gateway.setdefault("auth", {})
            if isinstance(auth, dict) and not auth.get("token") and isinstance(token, str):
                auth["token"] = token
                notes.append("gateway.token → gateway.auth.token")
            else:
                notes.append("gateway.token removed (gateway.auth.token is set)")
    return out, notes


def rename_dotenv(path: Path) -> str:
    """CLAWDBOT_X=... lines become OPENCLAW_X=... (unless that one is set); the rest is kept as written."""
    text = read_text(path, ".env file")
    present = set(parse_dotenv(text))
    lines, renamed = [], []
    for line in text.splitlines(keepends=True):
        parsed = parse_dotenv(line)
        key = next(iter(parsed), None)
        if key and key.startswith(LEGACY_ENV):
            new = "OPENCLAW_" + key[len(LEGACY_ENV) :]
            if new in present:
                lines.append("# " + line if not line.lstrip().startswith("#") else line)
            else:
                lines.append(line.replace(key, new, 1))
            renamed.append(key)
            continue
        lines.append(line)
    atomic_write(path, "".join(lines).encode("utf-8"))
    return f"renamed {', '.join(renamed)} in {path}"


def apply(doctor: Doctor, findings: list[Finding], migrations_only: bool = False) -> list[Finding]:
    """Run the repairs (the config is backed up first); return the findings repaired."""
    chosen = [f for f in findings if f.fixable and (f.migration or not migrations_only)]
    if not chosen:
        return []
    backup(doctor.layout.config_path)
    done = []
    for finding in chosen:
        try:
            finding.fixed = finding.repair()  # type: ignore[misc]
            done.append(finding)
        except (OSError, ConfigError) as e:
            finding.detail += f" (repair failed: {e})"
    return done


def http_live_call(model: Any) -> str | None:
    """One tiny request to the model's provider (a one-token completion); None when it answered."""
    from twisted.internet import task

    from openclaw.agent.providers import ModelRequest, ProviderError, provider_for

    outcome: list[str | None] = []

    async def call(reactor: Any) -> None:
        provider = provider_for(model.api, reactor)
        request = ModelRequest(system="", messages=[{"role": "user", "content": [{"type": "text", "text": "ping"}]}], max_tokens=1)
        try:
            await provider.stream(model, request, lambda piece: None).addTimeout(30, reactor)
            outcome.append(None)
        except ProviderError as e:
            outcome.append(str(e))
        except Exception as e:
            outcome.append(f"{type(e).__name__}: {e}")

    from twisted.internet.defer import Deferred

    try:
        task.react(lambda reactor: Deferred.fromCoroutine(call(reactor)))
    except SystemExit:
        pass
    return outcome[0] if outcome else "the call did not finish"

