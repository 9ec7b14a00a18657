# -*- test-case-name: tests.test_settings -*-
"""
From flags, environment, config file and defaults to one frozen
L{GatewaySettings}, in that order of precedence.

Auth secrets are the exception, as upstream has them: C{--token} first, then
C{gateway.auth.token}, then C{OPENCLAW_GATEWAY_TOKEN} (then the legacy
C{CLAWDBOT_GATEWAY_TOKEN}); the same for passwords.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Callable, Mapping

import attrs

from openclaw.config.aliases import canonical
from openclaw.config.errors import ConfigError, Issue
from openclaw.config.loader import LoadedConfig, load_config
from openclaw.config.schema import validate
from openclaw.paths import Layout, Ports, derive_ports

DEFAULT_MAX_CONNECTIONS = 100
DEFAULT_PREAUTH_PER_ADDRESS = 16  # unauthenticated connections per client address
DEFAULT_PREAUTH_TIMEOUT_MS = 30_000  # a whole HTTP request, or a WebSocket upgrade, within this
DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_LOG_MAX_FILES = 5
DEFAULT_CONTROL_UI_BASE_PATH = "/"
LOOPBACK = "127.0.0.1"
ANY = "0.0.0.0"


class GatewayRefused(Exception):
    """A valid config that this gateway still must not start with."""


@attrs.frozen
class Flags:
    """What the command line said; C{None} means "not given"."""

    port: int | None = None
    bind: str | None = None
    token: str | None = None
    password: str | None = None
    allow_unconfigured: bool = False
    verbose: bool = False
    force: bool = False
    mdns: bool = False


@attrs.frozen
class AuthSettings:
    mode: str
    token: str | None = attrs.field(default=None, repr=False)
    password: str | None = attrs.field(default=None, repr=False)
    allow_insecure: bool = False

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.token, self.password) if s)


@attrs.frozen
class LogSettings:
    level: str = "info"
    console_level: str = "info"
    console_style: str = "pretty"
    file: Path | None = None
    max_bytes: int = DEFAULT_LOG_MAX_BYTES
    max_files: int = DEFAULT_LOG_MAX_FILES


@attrs.frozen
class RateLimitSettings:
    """C{gateway.auth.rateLimit}: failed auth attempts per client address."""

    max_attempts: int = 10
    window: float = 60.0  # seconds (windowMs)
    lockout: float = 300.0  # seconds (lockoutMs)
    exempt_loopback: bool = True


@attrs.frozen
class NodeSettings:
    """C{gateway.nodes}: which node commands may run, and local pairing."""

    allow_commands: frozenset[str] = frozenset()  # commands.allow: beyond the platform defaults (dangerous ones too)
    deny_commands: frozenset[str] = frozenset()  # commands.deny
    auto_approve_local: bool = True  # pairing.autoApproveLocal: devices on loopback pair without an operator


@attrs.frozen
class HttpSettings:
    """The HTTP API on the gateway port (C{gateway.http}, C{gateway.tools})."""

    chat_completions: bool = False  # http.endpoints.chatCompletions.enabled: /v1/*
    tools_allow: frozenset[str] = frozenset()  # tools.allow: /tools/invoke may run these despite the HTTP deny list
    tools_deny: frozenset[str] = frozenset()  # tools.deny


@attrs.frozen
class SandboxSettings:
    """C{gateway.sandbox} with seed aliases mapped and defaults filled in."""

    mode: str = "off"  # off | non-main | all
    backend: str = "bubblewrap"
    allow_network: bool = False
    allow_file_system: bool | tuple[str, ...] = False  # True: / read-only; paths: those read-only
    image: str | None = None
    pids_limit: Any = None  # as written: the sandbox checks it when it is built (openclaw.agent.sandbox)
    memory: Any = None  # "512m", "2g" or bytes, as written


DEFAULT_HEARTBEAT_PROMPT = (
    "Read HEARTBEAT.md if it exists (workspace context). Follow it strictly. Do not infer or repeat old "
    "tasks from prior chats. If nothing needs attention, reply HEARTBEAT_OK."
)


@attrs.frozen
class AgentEntry:
    """One C{agents.list[]} entry."""

    id: str
    name: str | None = None
    default: bool = False
    identity_name: str | None = None  # identity.name
    identity_emoji: str | None = None  # identity.emoji


@attrs.frozen
class SessionPolicy:
    """C{session.*}: when a session's next message starts a new session."""

    idle_minutes: float | None = None  # idleMinutes: after this long without activity
    reset_mode: str = "daily"  # reset.mode: daily | off
    reset_at_hour: int = 4  # reset.atHour: local time


@attrs.frozen
class ToolPolicy:
    """C{tools.*}: which tools agents get, and whether sessions may message other agents' sessions."""

    allow: frozenset[str] | None = None  # allow: only these (None: every tool)
    deny: frozenset[str] = frozenset()
    agent_to_agent: bool = False  # agentToAgent.enabled
    agent_to_agent_allow: frozenset[str] | None = None  # agentToAgent.allow: these agents (None or "*": all)

    def agent_to_agent_allowed(self, sender: str, target: str) -> bool:
        if not self.agent_to_agent:
            return False
        allow = self.agent_to_agent_allow
        return allow is None or "*" in allow or (sender in allow and target in allow)


@attrs.frozen
class HeartbeatSettings:
    """C{agents.defaults.heartbeat}: what health reports while no scheduler reports its own (openclaw.cron reads the rest)."""

    prompt: str = DEFAULT_HEARTBEAT_PROMPT
    target: str = "last"
    ack_max_chars: int = 300
    model: str | None = None


@attrs.frozen
class AgentSettings:
    """C{agents.*}, C{session.*}, C{tools.*}: the agents and what their runs may do."""

    listed: tuple[AgentEntry, ...] = ()  # agents.list (entries with a string id)
    workspace: Path | None = None  # agents.defaults.workspace (None: <state>/workspace)
    default_model: str | None = None  # agents.defaults.model (its primary)
    session: SessionPolicy = SessionPolicy()
    tools: ToolPolicy = ToolPolicy()
    heartbeat: HeartbeatSettings = HeartbeatSettings()

    @property
    def entries(self) -> tuple[AgentEntry, ...]:
        """The configured agents, or just C{main}."""
        return self.listed or (AgentEntry("main"),)

    @property
    def default_id(self) -> str:
        return next((a.id for a in self.listed if a.default), self.entries[0].id)

    @property
    def ids(self) -> frozenset[str]:
        """The agents that exist: C{main} and every listed one."""
        return frozenset({"main", *(a.id for a in self.listed)})

    def entry(self, agent_id: str) -> AgentEntry | None:
        return next((a for a in self.listed if a.id == agent_id), None)


@attrs.frozen
class GatewaySettings:
    layout: Layout
    port: int
    bind: str
    hosts: tuple[str, ...]
    auth: AuthSettings
    logging: LogSettings
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    preauth_per_address: int = DEFAULT_PREAUTH_PER_ADDRESS
    preauth_timeout: float = DEFAULT_PREAUTH_TIMEOUT_MS / 1000  # seconds
    mode: str | None = None
    allow_unconfigured: bool = False
    force: bool = False
    flags: Flags = Flags()
    agents: AgentSettings = AgentSettings()
    sandbox: SandboxSettings = SandboxSettings()
    rate_limit: RateLimitSettings = RateLimitSettings()
    nodes: NodeSettings = NodeSettings()
    http: HttpSettings = HttpSettings()
    channels: tuple[str, ...] = ()  # channels.*: the names of those configured and enabled
    trusted_proxies: tuple[str, ...] = ()  # gateway.trustedProxies: whose X-Forwarded-For counts
    allowed_origins: tuple[str, ...] = ()  # gateway.controlUi.allowedOrigins: browser origins besides the gateway's own
    config: Mapping[str, Any] = attrs.field(factory=dict, repr=False)
    env: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    warnings: tuple[Issue, ...] = ()

    @property
    def ports(self) -> Ports:
        """Derived ports; a gateway on port 0 (tests) gets port 0 for each sibling too."""
        if self.port == 0:
            return Ports(0, 0, 0)
        return derive_ports(self.port)

    @property
    def bridge_enabled(self) -> bool:
        return bool(_get(self.config, "bridge.enabled", True))

    @property
    def bridge_port(self) -> int:
        return _first(_get(self.config, "bridge.port"), self.ports.bridge)

    @property
    def canvas_enabled(self) -> bool:
        return bool(_get(self.config, "canvasHost.enabled", True)) and self.env.get("OPENCLAW_SKIP_CANVAS_HOST") != "1"

    @property
    def canvas_port(self) -> int:
        return _first(_get(self.config, "canvasHost.port"), self.ports.canvas)

    @property
    def canvas_root(self) -> Path:
        root = _get(self.config, "canvasHost.root")
        return Path(root).expanduser() if root else self.state_dir / "canvas"

    @property
    def canvas_live_reload(self) -> bool:
        return bool(_get(self.config, "canvasHost.liveReload", True))

    @property
    def mdns_enabled(self) -> bool:
        """--mdns, or discovery.mdns.enabled (a mode of "off" wins over both)."""
        mdns = _get(self.config, "discovery.mdns", {}) or {}
        if mdns.get("mode") == "off":
            return False
        return bool(self.flags.mdns or mdns.get("enabled", False))

    @property
    def control_ui_enabled(self) -> bool:
        return bool(_get(self.config, "gateway.controlUi.enabled", True))

    @property
    def control_ui_base_path(self) -> str:
        return control_ui_base_path(self.config)

    @property
    def control_ui_root(self) -> Path | None:
        """C{gateway.controlUi.root}: a folder of UI files to serve instead of the bundled ones."""
        root = _get(self.config, "gateway.controlUi.root")
        return Path(root).expanduser() if root else None

    @property
    def bridge_tls(self) -> Mapping[str, Any] | None:
        tls = _get(self.config, "bridge.tls")
        return tls if isinstance(tls, dict) and tls.get("enabled") else None

    @property
    def state_dir(self) -> Path:
        return self.layout.state_dir


def sandbox_settings(config: Mapping[str, Any]) -> SandboxSettings:
    """The sandbox part of a canonical config (see L{checked})."""
    block = _get(config, "gateway.sandbox", {}) or {}
    files = block.get("allowFileSystem", False)
    return SandboxSettings(
        mode=block.get("mode", "off"),
        backend=block.get("backend", "bubblewrap"),
        allow_network=bool(block.get("allowNetwork", False)),
        allow_file_system=tuple(files) if isinstance(files, list) else bool(files),
        image=block.get("image") or None,
        pids_limit=block.get("pidsLimit"),
        memory=block.get("memory"),
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def agent_settings(config: Mapping[str, Any]) -> AgentSettings:
    """The agents part of a canonical config."""
    listed = []
    for raw in _get(config, "agents.list") or []:
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            continue
        identity = _dict(raw.get("identity"))
        listed.append(AgentEntry(raw["id"], _text(raw.get("name")), bool(raw.get("default")), identity.get("name") or None, identity.get("emoji") or None))
    workspace = _get(config, "agents.defaults.workspace")
    model = _get(config, "agents.defaults.model")
    if isinstance(model, dict):
        model = model.get("primary")
    session = _dict(_get(config, "session"))
    reset = _dict(session.get("reset"))
    idle = session.get("idleMinutes")
    tools = _dict(_get(config, "tools"))
    a2a = _dict(tools.get("agentToAgent"))
    heartbeat = _dict(_get(config, "agents.defaults.heartbeat"))
    return AgentSettings(
        listed=tuple(listed),
        workspace=Path(workspace).expanduser() if isinstance(workspace, str) else None,
        default_model=model if isinstance(model, str) and model else None,
        session=SessionPolicy(
            idle_minutes=idle if isinstance(idle, (int, float)) and not isinstance(idle, bool) and idle > 0 else None,
            reset_mode=reset.get("mode", "daily"),
            reset_at_hour=reset.get("atHour", 4),
        ),
        tools=ToolPolicy(
            allow=frozenset(_strings(tools["allow"])) if isinstance(tools.get("allow"), list) else None,
            deny=frozenset(_strings(tools.get("deny"))),
            agent_to_agent=a2a.get("enabled") is True,
            agent_to_agent_allow=frozenset(_strings(a2a["allow"])) if isinstance(a2a.get("allow"), list) else None,
        ),
        heartbeat=HeartbeatSettings(
            prompt=heartbeat["prompt"] if isinstance(heartbeat.get("prompt"), str) else DEFAULT_HEARTBEAT_PROMPT,
            target=heartbeat["target"] if isinstance(heartbeat.get("target"), str) else "last",
            ack_max_chars=heartbeat["ackMaxChars"] if isinstance(heartbeat.get("ackMaxChars"), int) else 300,
            model=_text(heartbeat.get("model")),
        ),
    )


def enabled_channels(config: Mapping[str, Any]) -> tuple[str, ...]:
    channels = config.get("channels") or {}
    return tuple(sorted(k for k, v in channels.items() if isinstance(v, dict) and v.get("enabled", True) is not False)) if isinstance(channels, dict) else ()


def _get(config: Mapping[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def control_ui_base_path(config: Mapping[str, Any]) -> str:
    """C{gateway.controlUi.basePath} as C{/} or C{/seg/.../} (the schema checked its segments)."""
    raw = _get(config, "gateway.controlUi.basePath") or DEFAULT_CONTROL_UI_BASE_PATH
    inner = "/".join(s for s in str(raw).split("/") if s)
    return f"/{inner}/" if inner else "/"


def _first(*values: Any) -> Any:
    """The first value given; 0 counts (a test may ask for port 0)."""
    return next(v for v in values if v is not None)


def _env_port(env: Mapping[str, str]) -> int | None:
    raw = env.get("OPENCLAW_GATEWAY_PORT")
    if not raw:
        return None
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise ConfigError([Issue("OPENCLAW_GATEWAY_PORT", f"expected a port from 1 to 65535, got {raw!r}")])
    return port


def in_container() -> bool:
    return Path("/.dockerenv").exists() or Path("/run/.containerenv").exists()


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def bind_hosts(
    bind: str,
    custom_host: str | None,
    tailnet_address: Callable[[], str | None],
    container: Callable[[], bool] = in_container,
) -> tuple[str, ...]:
    """The interfaces a bind mode listens on; tailnet and custom also keep loopback."""
    if bind == "loopback":
        return (LOOPBACK,)
    if bind == "lan":
        return (ANY,)
    if bind == "auto":
        return (ANY,) if container() else (LOOPBACK,)
    if bind == "tailnet":
        address = tailnet_address()
        return (address, LOOPBACK) if address else (LOOPBACK,)
    if bind == "custom":
        if not custom_host:
            raise ConfigError([Issue("gateway.customBindHost", 'required when gateway.bind is "custom"')])
        try:
            ipaddress.IPv4Address(custom_host)
        except ValueError:
            raise ConfigError([Issue("gateway.customBindHost", f"expected an IPv4 address, got {custom_host!r}")])
        if custom_host in (LOOPBACK, ANY):
            return (custom_host,)
        return (custom_host, LOOPBACK)
    raise ConfigError([Issue("gateway.bind", f"invalid value {bind!r}")])


def resolve_auth(config: Mapping[str, Any], env: Mapping[str, str], flags: Flags) -> AuthSettings:
    token = (
        flags.token
        or _get(config, "gateway.auth.token")
        or env.get("OPENCLAW_GATEWAY_TOKEN")
        or env.get("CLAWDBOT_GATEWAY_TOKEN")
        or None
    )
    password = (
        flags.password
        or _get(config, "gateway.auth.password")
        or env.get("OPENCLAW_GATEWAY_PASSWORD")
        or env.get("CLAWDBOT_GATEWAY_PASSWORD")
        or None
    )
    mode = _get(config, "gateway.auth.mode")
    if mode is None:
        mode = "password" if password and not token else "token"
    allow_insecure = bool(
        _get(config, "gateway.allowInsecureAuth", False) or _get(config, "gateway.controlUi.allowInsecureAuth", False)
    )
    return AuthSettings(mode=mode, token=token, password=password, allow_insecure=allow_insecure)


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


def rate_limit_settings(config: Mapping[str, Any]) -> RateLimitSettings:
    block = _dict(_get(config, "gateway.auth.rateLimit"))
    return RateLimitSettings(
        max_attempts=block.get("maxAttempts", 10),
        window=block.get("windowMs", 60_000) / 1000,
        lockout=block.get("lockoutMs", 300_000) / 1000,
        exempt_loopback=bool(block.get("exemptLoopback", True)),
    )


def node_settings(config: Mapping[str, Any]) -> NodeSettings:
    return NodeSettings(
        allow_commands=frozenset(_strings(_get(config, "gateway.nodes.commands.allow"))),
        deny_commands=frozenset(_strings(_get(config, "gateway.nodes.commands.deny"))),
        auto_approve_local=bool(_get(config, "gateway.nodes.pairing.autoApproveLocal", True)),
    )


def http_settings(config: Mapping[str, Any]) -> HttpSettings:
    return HttpSettings(
        chat_completions=bool(_get(config, "gateway.http.endpoints.chatCompletions.enabled", False)),
        tools_allow=frozenset(_strings(_get(config, "gateway.tools.allow"))),
        tools_deny=frozenset(_strings(_get(config, "gateway.tools.deny"))),
    )


def resolve_logging(config: Mapping[str, Any], layout: Layout, verbose: bool) -> LogSettings:
    level = _get(config, "logging.level", "info")
    console = _get(config, "logging.consoleLevel", "info")
    if verbose and console not in ("debug", "trace"):
        console = "debug"
    file = _get(config, "logging.file")
    return LogSettings(
        level=level,
        console_level=console,
        console_style=_get(config, "logging.consoleStyle", _get(config, "logging.format", "pretty")),
        file=Path(file).expanduser() if file else layout.log_file,
        max_bytes=_get(config, "logging.maxFileBytes", DEFAULT_LOG_MAX_BYTES),
        max_files=_get(config, "logging.maxFiles", DEFAULT_LOG_MAX_FILES),
    )


def checked(loaded: LoadedConfig) -> LoadedConfig:
    """
    Validate a loaded config and map the seed's aliases onto current values.

    @return: the same config with C{config} canonical and C{warnings} set.
    @raise ConfigError: the config is invalid.
    """
    errors, warnings = validate(loaded.config)
    if errors:
        raise ConfigError(errors, path=loaded.path)
    config, contradictions = canonical(loaded.config)
    if contradictions:
        raise ConfigError(contradictions, path=loaded.path)
    return attrs.evolve(loaded, config=config, warnings=tuple(warnings))


def check_config(loaded: LoadedConfig) -> tuple[Issue, ...]:
    """Raise L{ConfigError} for an invalid config; return its warnings."""
    return checked(loaded).warnings


def dotenv_files(layout: Layout, cwd: Path | None = None) -> list[Path]:
    """The C{.env} files, in the order they apply: the working directory's, then the state dir's."""
    return [(Path.cwd() if cwd is None else cwd) / ".env", layout.state_dir / ".env"]


def load_for(layout: Layout, env: Mapping[str, str], cwd: Path | None = None) -> LoadedConfig:
    """
    Read the layout's config the way the gateway and every command do: its
    C{.env} files, includes and C{${VAR}} resolved; not validated.

    @raise ConfigError: the file (or a variable) cannot be used; names the file.
    """
    try:
        return load_config(layout.config_path, env, dotenv_files(layout, cwd))
    except ConfigError as e:
        raise ConfigError(e.issues, path=e.path or layout.config_path) from None


def load_valid(layout: Layout, env: Mapping[str, str], cwd: Path | None = None) -> LoadedConfig:
    """L{load_for}, then L{checked}: the config commands act on."""
    return checked(load_for(layout, env, cwd))


def resolve_settings(
    loaded: LoadedConfig,
    layout: Layout,
    flags: Flags,
    tailnet_address: Callable[[], str | None] = lambda: None,
    container: Callable[[], bool] = in_container,
) -> GatewaySettings:
    """
    Validate and combine everything into settings.

    @raise ConfigError: the config (or a variable) is invalid.
    @raise GatewayRefused: the config is valid but must not run this way.
    """
    loaded = checked(loaded)
    config, env, warnings = loaded.config, loaded.env, loaded.warnings

    port = _first(flags.port, _env_port(env), _get(config, "gateway.port"), layout.default_port)
    bind = flags.bind or _get(config, "gateway.bind") or "loopback"
    hosts = bind_hosts(bind, _get(config, "gateway.customBindHost"), tailnet_address, container)
    auth = resolve_auth(config, env, flags)
    mode = _get(config, "gateway.mode")

    if mode != "local" and not flags.allow_unconfigured:
        current = "unset" if mode is None else repr(mode)
        raise GatewayRefused(
            f"Gateway start blocked: set gateway.mode to \"local\" in {loaded.path} (current: {current}) "
            "or pass --allow-unconfigured."
        )
    exposed = [h for h in hosts if not is_loopback(h)]
    has_secret = (auth.mode == "token" and auth.token) or (auth.mode == "password" and auth.password)
    if exposed and not has_secret and auth.mode != "trusted-proxy":
        raise GatewayRefused(
            f"Refusing to bind the gateway to {bind} ({', '.join(exposed)}) without auth: "
            "set gateway.auth.token (or OPENCLAW_GATEWAY_TOKEN, or --token) "
            "or gateway.auth.password, or use --bind loopback."
        )

    return GatewaySettings(
        layout=layout,
        port=port,
        bind=bind,
        hosts=hosts,
        auth=auth,
        logging=resolve_logging(config, layout, flags.verbose),
        max_connections=_get(config, "gateway.maxConnections", DEFAULT_MAX_CONNECTIONS),
        preauth_per_address=_get(config, "gateway.preauth.maxPerAddress", DEFAULT_PREAUTH_PER_ADDRESS),
        preauth_timeout=_get(config, "gateway.preauth.timeoutMs", DEFAULT_PREAUTH_TIMEOUT_MS) / 1000,
        mode=mode,
        allow_unconfigured=flags.allow_unconfigured,
        force=flags.force,
        flags=flags,
        agents=agent_settings(config),
        sandbox=sandbox_settings(config),
        channels=enabled_channels(config),
        rate_limit=rate_limit_settings(config),
        nodes=node_settings(config),
        http=http_settings(config),
        trusted_proxies=_strings(_get(config, "gateway.trustedProxies")),
        allowed_origins=_strings(_get(config, "gateway.controlUi.allowedOrigins")),
        config=config,
        env=env,
        warnings=warnings,
    )
