"""Flags > environment > config file > defaults, and the refusals."""

from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from openclaw.config import ConfigError, Flags, GatewayRefused, LoadedConfig, SandboxSettings, resolve_settings
from openclaw.config.schema import validate
from openclaw.paths import resolve_layout

LOCAL = {"gateway": {"mode": "local"}}


def loaded(config, env=None):
    return LoadedConfig(path=Path("/c/openclaw.json"), exists=True, raw="{}", hash="h", config=config, env=env or {})


def settings(config=LOCAL, env=None, flags=Flags(), dev=False, **kw):
    env = {"HOME": "/home/u", **(env or {})}
    return resolve_settings(loaded(config, env), resolve_layout(env, dev=dev), flags, **kw)


def merged(*parts):
    out = {"gateway": {"mode": "local"}}
    for part in parts:
        out["gateway"].update(part)
    return out


class PrecedenceTests(SynchronousTestCase):
    def test_port_matrix(self):
        """Port: --port > OPENCLAW_GATEWAY_PORT > gateway.port > default (19001 with --dev)."""
        env = {"OPENCLAW_GATEWAY_PORT": "2000"}
        file = merged({"port": 3000})
        cases = [
            (Flags(port=1000), env, file, False, 1000),
            (Flags(), env, file, False, 2000),
            (Flags(), {}, file, False, 3000),
            (Flags(), {}, LOCAL, False, 18789),
            (Flags(), {}, LOCAL, True, 19001),
            (Flags(port=0), env, file, False, 0),
        ]
        for flags, e, config, dev, expected in cases:
            self.assertEqual(settings(config, e, flags, dev).port, expected, (flags, e, config, dev))

    def test_bad_env_port(self):
        """A non-numeric OPENCLAW_GATEWAY_PORT is a config error naming the variable."""
        with self.assertRaises(ConfigError) as cm:
            settings(env={"OPENCLAW_GATEWAY_PORT": "x"})
        self.assertIn("OPENCLAW_GATEWAY_PORT", str(cm.exception))

    def test_bind(self):
        """--bind beats gateway.bind; default loopback on 127.0.0.1 only."""
        self.assertEqual(settings().hosts, ("127.0.0.1",))
        s = settings(merged({"bind": "lan", "auth": {"token": "t"}}), flags=Flags(bind="loopback"))
        self.assertEqual((s.bind, s.hosts), ("loopback", ("127.0.0.1",)))

    def test_token_matrix(self):
        """Token: --token > gateway.auth.token > OPENCLAW_GATEWAY_TOKEN > CLAWDBOT_GATEWAY_TOKEN."""
        env = {"OPENCLAW_GATEWAY_TOKEN": "env", "CLAWDBOT_GATEWAY_TOKEN": "legacy"}
        file = merged({"auth": {"token": "file"}})
        self.assertEqual(settings(file, env, Flags(token="flag")).auth.token, "flag")
        self.assertEqual(settings(file, env).auth.token, "file")
        self.assertEqual(settings(LOCAL, env).auth.token, "env")
        self.assertEqual(settings(LOCAL, {"CLAWDBOT_GATEWAY_TOKEN": "legacy"}).auth.token, "legacy")
        self.assertIsNone(settings().auth.token)

    def test_auth_mode(self):
        """Mode unset: password when only a password resolves, else token."""
        self.assertEqual(settings(env={"OPENCLAW_GATEWAY_PASSWORD": "pw"}).auth.mode, "password")
        self.assertEqual(settings(env={"OPENCLAW_GATEWAY_PASSWORD": "pw", "OPENCLAW_GATEWAY_TOKEN": "t"}).auth.mode, "token")
        self.assertEqual(settings(merged({"auth": {"mode": "none"}})).auth.mode, "none")

    def test_secrets_not_in_repr(self):
        """The settings' repr never shows the token or password."""
        s = settings(env={"OPENCLAW_GATEWAY_TOKEN": "sekrit-token", "OPENCLAW_GATEWAY_PASSWORD": "sekrit-pw"})
        self.assertNotIn("sekrit", repr(s))

    def test_max_connections(self):
        """gateway.maxConnections defaults to 100."""
        self.assertEqual(settings().max_connections, 100)
        self.assertEqual(settings(merged({"maxConnections": 7})).max_connections, 7)

    def test_preauth(self):
        """gateway.preauth: 16 unauthenticated connections per address, 30 s deadline; both configurable and checked."""
        self.assertEqual((settings().preauth_per_address, settings().preauth_timeout), (16, 30.0))
        s = settings(merged({"preauth": {"maxPerAddress": 4, "timeoutMs": 2500}}))
        self.assertEqual((s.preauth_per_address, s.preauth_timeout), (4, 2.5))
        with self.assertRaises(ConfigError):
            settings(merged({"preauth": {"timeoutMs": 0}}))

    def test_logging(self):
        """logging.file and level from config; --verbose raises only the console level."""
        s = settings({**LOCAL, "logging": {"file": "/var/log/oc.log", "level": "warn"}}, flags=Flags(verbose=True))
        self.assertEqual((s.logging.file, s.logging.level, s.logging.console_level), (Path("/var/log/oc.log"), "warn", "debug"))
        self.assertEqual(settings().logging.file, Path("/home/u/.openclaw/logs/gateway.log"))


class RefusalTests(SynchronousTestCase):
    def test_mode_required(self):
        """Without gateway.mode local the gateway refuses unless --allow-unconfigured."""
        with self.assertRaises(GatewayRefused) as cm:
            settings({})
        self.assertIn("gateway.mode", str(cm.exception))
        self.assertIn("--allow-unconfigured", str(cm.exception))
        self.assertRaises(GatewayRefused, settings, {"gateway": {"mode": "remote"}})
        self.assertEqual(settings({}, flags=Flags(allow_unconfigured=True)).mode, None)

    def test_lan_without_auth(self):
        """A non-loopback bind with no token or password is refused, naming what to set."""
        with self.assertRaises(GatewayRefused) as cm:
            settings(merged({"bind": "lan"}))
        self.assertIn("gateway.auth.token", str(cm.exception))
        self.assertIn("0.0.0.0", str(cm.exception))
        self.assertRaises(GatewayRefused, settings, merged({"bind": "lan", "auth": {"mode": "none"}}))
        self.assertRaises(GatewayRefused, settings, merged({"bind": "lan", "auth": {"mode": "password", "token": "t"}}))
        self.assertEqual(settings(merged({"bind": "lan"}), flags=Flags(token="t")).hosts, ("0.0.0.0",))

    def test_invalid_config(self):
        """Schema errors raise ConfigError with every issue."""
        with self.assertRaises(ConfigError) as cm:
            settings({"gateway": {"mode": "local", "port": -1, "bind": 7}})
        self.assertEqual(len(cm.exception.issues), 2)
        self.assertIn("/c/openclaw.json", cm.exception.describe())


class BindHostTests(SynchronousTestCase):
    def test_tailnet(self):
        """tailnet binds the Tailscale address and loopback; loopback alone without one."""
        token = merged({"bind": "tailnet", "auth": {"token": "t"}})
        self.assertEqual(settings(token, tailnet_address=lambda: "100.100.1.2").hosts, ("100.100.1.2", "127.0.0.1"))
        self.assertEqual(settings(merged({"bind": "tailnet"}), tailnet_address=lambda: None).hosts, ("127.0.0.1",))

    def test_custom(self):
        """custom needs an IPv4 gateway.customBindHost and keeps loopback."""
        config = merged({"bind": "custom", "customBindHost": "192.0.2.9", "auth": {"token": "t"}})
        self.assertEqual(settings(config).hosts, ("192.0.2.9", "127.0.0.1"))
        self.assertRaises(ConfigError, settings, merged({"bind": "custom"}))
        self.assertRaises(ConfigError, settings, merged({"bind": "custom", "customBindHost": "::1"}))

    def test_auto(self):
        """auto is loopback on a host, all interfaces inside a container."""
        self.assertEqual(settings(merged({"bind": "auto"}), container=lambda: False).hosts, ("127.0.0.1",))
        with_token = merged({"bind": "auto", "auth": {"token": "t"}})
        self.assertEqual(settings(with_token, container=lambda: True).hosts, ("0.0.0.0",))


SEED = {"gateway": {"mode": "cloud", "sandbox": {"enabled": True, "allowFileSystem": "workspace", "allowNetwork": False}}}


class SeedAliasTests(SynchronousTestCase):
    def test_seed_config_starts(self):
        """The seed's gateway.mode "cloud" is a local gateway: valid, and the gateway starts with it."""
        s = settings(SEED)
        self.assertEqual(s.mode, "local")
        self.assertEqual(s.config["gateway"]["mode"], "local")
        self.assertEqual(validate(SEED), ([], []))

    def test_sandbox_enabled_and_workspace(self):
        """sandbox.enabled true is mode non-main; allowFileSystem "workspace" is false (the workspace only)."""
        s = settings(SEED)
        self.assertEqual(s.sandbox, SandboxSettings(mode="non-main", allow_file_system=False))
        # What the agent runtime and the sandbox read is canonical too: no seed key is left.
        self.assertEqual(s.config["gateway"]["sandbox"], {"mode": "non-main", "allowFileSystem": False, "allowNetwork": False})

    def test_sandbox_disabled(self):
        """sandbox.enabled false is mode off: no session is sandboxed."""
        s = settings({"gateway": {"mode": "local", "sandbox": {"enabled": False}}})
        self.assertEqual((s.sandbox.mode, s.config["gateway"]["sandbox"]), ("off", {"mode": "off"}))

    def test_enabled_agrees_with_mode(self):
        """enabled and a mode that agree are fine; a contradiction names both keys."""
        self.assertEqual(settings(merged({"sandbox": {"enabled": True, "mode": "all"}})).sandbox.mode, "all")
        self.assertEqual(settings(merged({"sandbox": {"enabled": False, "mode": "off"}})).sandbox.mode, "off")
        for enabled, mode in ((False, "non-main"), (True, "off")):
            with self.assertRaises(ConfigError) as cm:
                settings(merged({"sandbox": {"enabled": enabled, "mode": mode}}))
            [issue] = cm.exception.issues
            self.assertEqual(issue.path, "gateway.sandbox.enabled")
            self.assertIn(f"contradicts gateway.sandbox.mode '{mode}'", issue.message)

    def test_current_values_unchanged(self):
        """Current values pass through: paths stay paths, true stays true, remote stays remote."""
        s = settings(merged({"sandbox": {"mode": "all", "allowFileSystem": ["/opt/data"], "backend": "docker", "image": "i:1"}}))
        self.assertEqual(s.sandbox, SandboxSettings(mode="all", backend="docker", allow_file_system=("/opt/data",), image="i:1"))
        self.assertIs(settings(merged({"sandbox": {"allowFileSystem": True}})).sandbox.allow_file_system, True)
        self.assertEqual(settings(LOCAL).sandbox, SandboxSettings())
        self.assertRaises(GatewayRefused, settings, {"gateway": {"mode": "remote"}})

    def test_other_strings_refused(self):
        """allowFileSystem takes "workspace" and no other word; sandbox.enabled must be a boolean."""
        errors, _ = validate(merged({"sandbox": {"allowFileSystem": "everything", "enabled": "yes"}}))
        files, enabled = sorted(errors, key=lambda e: e.path)
        self.assertEqual((files.path, enabled.path), ("gateway.sandbox.allowFileSystem", "gateway.sandbox.enabled"))
        self.assertIn("one of workspace", files.message)
        self.assertIn("got 'everything'", files.message)
        self.assertEqual(enabled.message, "expected true or false, got 'yes'")

    def test_input_not_changed(self):
        """Mapping the aliases leaves the loaded config as it was (config.get shows the file)."""
        config = {"gateway": {"mode": "cloud", "sandbox": {"enabled": True}}}
        settings(config)
        self.assertEqual(config, {"gateway": {"mode": "cloud", "sandbox": {"enabled": True}}})
