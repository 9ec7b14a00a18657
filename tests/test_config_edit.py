"""`openclaw setup`, `onboard` and `config get|set|unset|file`: the file as written, edited crash-safe."""

from __future__ import annotations

import json
import stat
from io import StringIO

import json5
from twisted.trial.unittest import SynchronousTestCase

from openclaw.cli.main import OpenClawOptions
from openclaw.cli.setup import OnboardOptions
from openclaw.config.edit import NotEditable, has_comments, set_value, split_path, unset_value
from tests.helpers import base_env, run_cli, scratch_home, write_config


class EditTests(SynchronousTestCase):
    def test_split_path(self):
        """Dots and brackets; malformed paths are KeyErrors."""
        self.assertEqual(split_path("agents.list[0].id"), ["agents", "list", 0, "id"])
        self.assertEqual(split_path("a[1][2]"), ["a", 1, 2])
        for bad in ("", "a..b", "a[x]", "a[1]b", ".a"):
            self.assertRaises(KeyError, split_path, bad)

    def test_set_and_unset(self):
        """set creates objects on the way and appends at index len; unset removes; inputs are not changed."""
        raw = {"agents": {"list": [{"id": "main"}]}}
        out = set_value(raw, "agents.list[1].id", "work", "p")
        self.assertEqual(out["agents"]["list"], [{"id": "main"}, {"id": "work"}])
        self.assertEqual(raw, {"agents": {"list": [{"id": "main"}]}})
        self.assertRaises(NotEditable, set_value, raw, "agents.list[5].id", "x", "p")
        self.assertEqual(unset_value(out, "agents.list[0]", "p")["agents"]["list"], [{"id": "work"}])
        self.assertRaises(KeyError, unset_value, raw, "gateway.port", "p")

    def test_includes_are_not_edited(self):
        """A key under an $include is refused with the reason."""
        raw = {"gateway": {"$include": "./gw.json5"}}
        error = self.assertRaises(NotEditable, set_value, raw, "gateway.port", 1, "p")
        self.assertIn("$include", str(error))

    def test_has_comments(self):
        """Comments outside strings are found; slashes inside strings are not comments."""
        self.assertTrue(has_comments('{a: 1, // x\n}'))
        self.assertTrue(has_comments('{/* x */}'))
        self.assertFalse(has_comments('{url: "http://x//y", b: \'/*\'}'))


class SetupCommandTests(SynchronousTestCase):
    def setUp(self):
        self.home = scratch_home(self)
        self.env = base_env(self.home)
        self.config = self.home / ".openclaw" / "openclaw.json"

    def test_setup_writes_a_minimal_valid_config(self):
        """A fresh HOME: mode local, a strong token (never printed), a workspace; 0600 in 0700; validate passes."""
        result = run_cli("setup", env=self.env)
        self.assertEqual(result.returncode, 0, result.stderr)
        raw = json5.loads(self.config.read_text())
        token = raw["gateway"]["auth"]["token"]
        self.assertEqual(raw["gateway"]["mode"], "local")
        self.assertGreaterEqual(len(token), 40)
        self.assertNotIn(token, result.stdout)
        self.assertTrue((self.home / ".openclaw" / "workspace").is_dir())
        self.assertEqual(stat.S_IMODE(self.config.stat().st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(self.config.parent.stat().st_mode), 0o700)
        self.assertEqual(run_cli("config", "validate", env=self.env).returncode, 0)
        again = run_cli("setup", env=self.env)
        self.assertIn("Unchanged", again.stdout)
        self.assertEqual(json5.loads(self.config.read_text())["gateway"]["auth"]["token"], token)

    def test_setup_keeps_what_is_there(self):
        """An existing config keeps its values and ${VAR} references; a secret in .env means no token is generated."""
        write_config(self.config, '{gateway: {port: 18800, auth: {token: "${MY_TOKEN}"}}, logging: {level: "debug"}}')
        (self.home / ".openclaw" / ".env").write_text("MY_TOKEN=abcdefgh\n")
        result = run_cli("onboard", "--non-interactive", "--json", env=self.env)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(json.loads(result.stdout)["added"], ["gateway.mode", "agents.defaults.workspace"])
        raw = json5.loads(self.config.read_text())
        self.assertEqual(raw["gateway"]["auth"], {"token": "${MY_TOKEN}"})
        self.assertEqual((raw["gateway"]["port"], raw["logging"]["level"]), (18800, "debug"))

    def test_onboard_asks_on_a_terminal(self):
        """onboard on a terminal asks for what the config lacks (port, bind, workspace), writes the answers, and asks nothing once all are set."""
        answers = iter(["18850", "lan", str(self.home / "ws")])
        asked = []

        def prompt(question):
            asked.append(question)
            return next(answers)

        root = OpenClawOptions()
        root.parseOptions(["onboard"])  # the root's own options (profile, dev) for the layout
        onboard = OnboardOptions(prompt=prompt, isatty=lambda: True)
        onboard.parent = root
        onboard.parseOptions([])
        out, err = StringIO(), StringIO()
        self.assertEqual(onboard.run(self.env, out, err), 0, err.getvalue())
        self.assertEqual([q.split(" [")[0] for q in asked], ["Gateway port", "Bind (loopback keeps it on this machine)", "Workspace"])
        raw = json5.loads(self.config.read_text())
        self.assertEqual((raw["gateway"]["port"], raw["gateway"]["bind"], raw["agents"]["defaults"]["workspace"]), (18850, "lan", str(self.home / "ws")))
        self.assertTrue((self.home / "ws").is_dir())

        asked.clear()
        again = OnboardOptions(prompt=prompt, isatty=lambda: True)
        again.parent = root
        again.parseOptions([])
        self.assertEqual(again.run(self.env, StringIO(), StringIO()), 0)
        self.assertEqual(asked, [])  # everything is set: nothing to ask

    def test_profiles_get_ports_apart(self):
        """Two profiles set up one after another get base ports at least 5 apart."""
        ports = []
        for name in ("one", "two", "three"):
            result = run_cli("--profile", name, "setup", "--json", env=self.env)
            self.assertEqual(result.returncode, 0, result.stderr)
            ports.append(json.loads(result.stdout)["port"])
        for i, a in enumerate(ports):
            for b in ports[i + 1 :]:
                self.assertGreaterEqual(abs(a - b), 5)

    def test_invalid_config_is_not_touched(self):
        """A config that does not parse: exit 78 with the file named, nothing written."""
        write_config(self.config, "{gateway: {")
        result = run_cli("setup", env=self.env)
        self.assertEqual(result.returncode, 78)
        self.assertIn(str(self.config), result.stderr)
        self.assertEqual(self.config.read_text(), "{gateway: {")


class ConfigCommandTests(SynchronousTestCase):
    def setUp(self):
        self.home = scratch_home(self)
        self.env = base_env(self.home)
        self.config = self.home / ".openclaw" / "openclaw.json"

    def cli(self, *args, **extra):
        return run_cli(*args, env={**self.env, **extra})

    def test_set_get_unset(self):
        """set parses JSON5 (else a string), get reads it back, unset removes it; each says where."""
        result = self.cli("config", "set", "gateway.port", "19100")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(f"Set gateway.port = 19100 in {self.config}", result.stdout)
        self.cli("config", "set", "gateway.controlUi.allowedOrigins", '["https://a.example"]')
        self.cli("config", "set", "agents.defaults.workspace", "~/work space")
        self.assertEqual(self.cli("config", "get", "gateway.port").stdout, "19100\n")
        self.assertEqual(json.loads(self.cli("config", "get", "gateway.controlUi.allowedOrigins").stdout), ["https://a.example"])
        self.assertEqual(self.cli("config", "get", "agents.defaults.workspace").stdout, "~/work space\n")
        result = self.cli("config", "unset", "gateway.port")
        self.assertEqual(result.returncode, 0, result.stderr)
        missing = self.cli("config", "get", "gateway.port")
        self.assertEqual((missing.returncode, missing.stderr), (1, "Config path not found: gateway.port\n"))
        self.assertEqual(self.cli("config", "unset", "gateway.port").returncode, 1)
        self.assertEqual(stat.S_IMODE(self.config.stat().st_mode), 0o600)

    def test_set_refuses_an_invalid_value(self):
        """A value the schema refuses: exit 78 naming the key and the allowed values; the file is unchanged."""
        self.cli("config", "set", "gateway.bind", "loopback")
        before = self.config.read_text()
        result = self.cli("config", "set", "gateway.bind", "everywhere")
        self.assertEqual(result.returncode, 78)
        self.assertIn("gateway.bind", result.stderr)
        self.assertIn("loopback, lan", result.stderr)
        self.assertEqual(self.config.read_text(), before)

    def test_variables_stay_as_written(self):
        """${VAR} is stored as written, checked against the environment, and get --raw shows it."""
        refused = self.cli("config", "set", "gateway.auth.token", "${TOK}")
        self.assertEqual(refused.returncode, 78)
        self.assertIn("TOK is missing", refused.stderr)
        result = self.cli("config", "set", "gateway.auth.token", "${TOK}", TOK="s3cret-value")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("(value hidden)", result.stdout)
        self.assertNotIn("s3cret", result.stdout)
        self.assertIn('"${TOK}"', self.config.read_text())
        self.assertEqual(self.cli("config", "get", "gateway.auth.token", "--raw").stdout, "${TOK}\n")
        self.assertEqual(self.cli("config", "get", "gateway.auth.token", TOK="s3cret-value").stdout, "s3cret-value\n")

    def test_json_flag_and_readable_output(self):
        """--json requires JSON5; the file is readable JSON5 (unquoted keys); a dropped comment is said."""
        write_config(self.config, "{\n  // my gateway\n  gateway: {mode: 'local'},\n}\n")
        bad = self.cli("config", "set", "gateway.port", "not json", "--json")
        self.assertEqual(bad.returncode, 1)
        result = self.cli("config", "set", "gateway.port", "19001", "--json")
        self.assertIn("comments were not kept", result.stdout)
        text = self.config.read_text()
        self.assertIn("  gateway: {\n    mode: \"local\",\n    port: 19001,\n  },", text)

    def test_file(self):
        """config file prints the path (per profile); --json says whether it exists."""
        self.assertEqual(self.cli("config", "file").stdout, f"{self.config}\n")
        out = json.loads(self.cli("--profile", "p1", "config", "file", "--json").stdout)
        self.assertEqual(out, {"path": str(self.home / ".openclaw-p1" / "openclaw.json"), "exists": False})
