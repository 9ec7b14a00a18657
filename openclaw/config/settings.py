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
class SandboxSettings:
    """C{gateway.sandbox} with seed aliases mapped and defaults filled in."""

    mode: str = "off"  # off | non-main | all
    backend: str = "bubblewrap"
    allow_network: bool = False
    allow_file_system: bool | tuple[str, ...] = False  # True: / read-only; paths: those read-only
    image: str | None = None


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

    @property
    def sandbox(self) -> SandboxSettings:
        return sandbox_settings(self.config)


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
    )


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
        config=config,
        env=env,
        warnings=warnings,
    )
