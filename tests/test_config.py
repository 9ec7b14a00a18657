"""Reading openclaw.json: JSON5, includes, .env, ${VAR}, and validation messages."""

import json
import os
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from openclaw.config import ConfigError
from openclaw.config.loader import MAX_CONFIG_BYTES, config_hash, load_config, parse_dotenv
from openclaw.config.schema import validate


class Base(SynchronousTestCase):
    def setUp(self):
        self.dir = Path(self.mktemp())
        self.dir.mkdir()

    def write(self, name, text):
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def load(self, text, env=None, dotenv=()):
        return load_config(self.write("openclaw.json", text), env or {}, list(dotenv))

    def messages(self, text, env=None):
        with self.assertRaises(ConfigError) as cm:
            self.load(text, env)
        return [str(i) for i in cm.exception.issues]


class JSON5Tests(Base):
    def test_comments_and_trailing_commas(self):
        """JSON5: comments, unquoted keys, single quotes and trailing commas."""
        loaded = self.load("// top\n{ gateway: { port: 1234, /* inline */ mode: 'local', }, }\n")
        self.assertEqual(loaded.config, {"gateway": {"port": 1234, "mode": "local"}})
        self.assertTrue(loaded.exists)
        self.assertEqual(loaded.hash, config_hash(loaded.raw))

    def test_missing_file_is_empty(self):
        """No file: an empty config, exists false, no hash."""
        loaded = load_config(self.dir / "none.json", {}, [])
        self.assertEqual((loaded.config, loaded.exists, loaded.hash), ({}, False, None))

    def test_parse_error_names_file_and_line(self):
        """A syntax error names the file and the line."""
        [msg] = self.messages("{\n gateway: {port: }\n}")
        self.assertIn("openclaw.json:2", msg)
        self.assertIn("JSON5 parse error", msg)

    def test_top_level_must_be_object(self):
        """A list at the top level is refused."""
        [msg] = self.messages("[1, 2]")
        self.assertIn("must hold a JSON5 object", msg)


class SubstitutionTests(Base):
    def test_var(self):
        """${VAR} is replaced in any string value, also inside text."""
        loaded = self.load('{a: "${TOKEN_A}", b: ["x-${TOKEN_A}-y"]}', {"TOKEN_A": "s3"})
        self.assertEqual(loaded.config, {"a": "s3", "b": ["x-s3-y"]})

    def test_escape(self):
        """$${VAR} gives a literal ${VAR} and needs no variable."""
        loaded = self.load('{a: "$${HOME_X}/y"}', {})
        self.assertEqual(loaded.config["a"], "${HOME_X}/y")

    def test_missing_var(self):
        """A missing or empty variable is an error naming the key and the variable."""
        msgs = self.messages('{gateway: {auth: {token: "${NOPE}"}}, x: ["${EMPTY}"]}', {"EMPTY": ""})
        self.assertEqual(
            msgs,
            [
                "gateway.auth.token: environment variable NOPE is missing or empty",
                "x[0]: environment variable EMPTY is missing or empty",
            ],
        )

    def test_lowercase_not_matched(self):
        """Only upper-case names are variables."""
        self.assertEqual(self.load('{a: "${lower}"}').config["a"], "${lower}")

    def test_config_env_vars(self):
        """env.vars (and plain env strings) feed substitution without overriding the environment."""
        loaded = self.load('{env: {A_ONE: "1", vars: {B_TWO: "2"}}, x: "${A_ONE}${B_TWO}", y: "${C}"}', {"C": "3", "A_ONE": "outer"})
        self.assertEqual((loaded.config["x"], loaded.config["y"]), ("outer2", "3"))
        self.assertEqual(loaded.env["B_TWO"], "2")


class DotenvTests(Base):
    def test_parse(self):
        """KEY=VALUE lines with export, quotes and comments."""
        text = "# c\nexport A=1\nB = 'two words'\nC=\"x\\ny\"\nD=v # comment\nbad line\n"
        self.assertEqual(parse_dotenv(text), {"A": "1", "B": "two words", "C": "x\ny", "D": "v"})

    def test_order_and_no_override(self):
        """CWD .env first, then the state dir's; neither overrides the environment."""
        cwd = self.write("cwd/.env", "A=cwd\nB=cwd\n")
        state = self.write("state/.env", "B=state\nC=state\nD=state\n")
        loaded = self.load('{x: "${A}${B}${C}${D}"}', {"D": "env"}, [cwd, state])
        self.assertEqual(loaded.config["x"], "cwdcwdstateenv")


class IncludeTests(Base):
    def test_single_and_nested(self):
        """$include replaces the object; included files may include (relative to themselves)."""
        self.write("sub/agents.json5", '{list: {$include: "./more.json5"}}')
        self.write("sub/more.json5", '[{id: "main"}]')
        loaded = self.load('{agents: {$include: "./sub/agents.json5"}}')
        self.assertEqual(loaded.config, {"agents": {"list": [{"id": "main"}]}})

    def test_array_merge_and_siblings(self):
        """A list of includes deep-merges in order; sibling keys override."""
        self.write("a.json5", "{x: {p: 1, q: 1}, y: 1}")
        self.write("b.json5", "{x: {q: 2}}")
        loaded = self.load('{$include: ["./a.json5", "./b.json5"], y: 9}')
        self.assertEqual(loaded.config, {"x": {"p": 1, "q": 2}, "y": 9})

    def test_missing(self):
        """A missing include names the resolved path."""
        [msg] = self.messages('{a: {$include: "./gone.json5"}}')
        self.assertIn(str((self.dir / "gone.json5").resolve()), msg)

    def test_circular(self):
        """A loop of includes is reported with its chain."""
        self.write("a.json5", '{$include: "./b.json5"}')
        self.write("b.json5", '{$include: "./a.json5"}')
        [msg] = self.messages('{x: {$include: "./a.json5"}}')
        self.assertIn("circular include", msg)

    def test_included_files_get_substitution(self):
        """${VAR} works inside included files."""
        self.write("inc.json5", '{t: "${SECRET_X}"}')
        self.assertEqual(self.load('{$include: "./inc.json5"}', {"SECRET_X": "v"}).config, {"t": "v"})


class NotRegularFileTests(Base):
    """Only regular files are read: a FIFO would block for ever, a device could be endless.

    (FIFOs and /dev/zero are tried through the CLI in a subprocess, where a
    regression hangs or fills memory under a limit: tests.test_cli.)"""

    def refused(self, text, dotenv=()):
        with self.assertRaises(ConfigError) as cm:
            self.load(text, {}, dotenv)
        return str(cm.exception)

    def test_config_is_a_device(self):
        """openclaw.json linked to a character device (even an empty one) is refused, naming it."""
        os.symlink("/dev/null", self.dir / "openclaw.json")
        with self.assertRaises(ConfigError) as cm:
            load_config(self.dir / "openclaw.json", {}, [])
        self.assertIn(f"{self.dir / 'openclaw.json'} is a character device, not a regular file", str(cm.exception))

    def test_config_is_a_directory(self):
        """A directory where the config should be is refused."""
        (self.dir / "openclaw.json").mkdir()
        with self.assertRaises(ConfigError) as cm:
            load_config(self.dir / "openclaw.json", {}, [])
        self.assertIn("is a directory, not a regular file", str(cm.exception))

    def test_config_too_large(self):
        """A config over the size limit is refused before it is parsed."""
        msg = self.refused(" " * (MAX_CONFIG_BYTES + 1))
        self.assertIn(f"the limit is {MAX_CONFIG_BYTES}", msg)

    def test_include_is_a_device(self):
        """An $include of a device is refused as well."""
        os.symlink("/dev/null", self.dir / "dev.json5")
        msg = self.refused('{agents: {$include: "./dev.json5"}}')
        self.assertIn("included file", msg)
        self.assertIn("is a character device", msg)

    def test_dotenv_is_a_device(self):
        """A .env that is a device is refused; a .env directory (a virtualenv) is skipped."""
        os.symlink("/dev/null", self.dir / "dev.env")
        (self.dir / "venv.env").mkdir()
        self.assertEqual(self.load('{x: "${A}"}', {"A": "1"}, [self.dir / "venv.env"]).config, {"x": "1"})
        msg = self.refused('{x: "${A}"}', [self.dir / "venv.env", self.dir / "dev.env"])
        self.assertIn(f".env file {self.dir / 'dev.env'} is a character device", msg)

    def test_symlink_to_a_file_is_fine(self):
        """A link to a regular file (a dotfiles checkout) is read as the file."""
        target = self.write("real.json5", '{gateway: {port: 1234}}')
        os.symlink(target.resolve(), self.dir / "openclaw.json")
        self.assertEqual(load_config(self.dir / "openclaw.json", {}, []).config, {"gateway": {"port": 1234}})


class ValidationTests(SynchronousTestCase):
    def check(self, config):
        errors, warnings = validate(config)
        return [str(e) for e in errors], [str(w) for w in warnings]

    def test_valid(self):
        """A typical config validates with no errors or warnings."""
        config = {
            "gateway": {"mode": "local", "port": 18789, "bind": "lan", "auth": {"mode": "token", "token": "t"}, "maxConnections": 5},
            "logging": {"level": "debug", "file": "/tmp/x.log"},
            "pairing": {"enabled": True, "codeExpiry": "1h", "maxPending": 3},
            "gateway_extra": None,
        }
        del config["gateway_extra"]
        self.assertEqual(self.check(config), ([], []))

    def test_messages_name_path_problem_and_allowed(self):
        """Each error names the key path, what is wrong, and what is allowed."""
        errors, _ = self.check({"gateway": {"port": "abc", "bind": "wan", "auth": {"mode": 3}}, "logging": {"level": "loud"}})
        self.assertEqual(
            sorted(errors),
            sorted(
                [
                    "gateway.port: expected an integer from 1 to 65535, got 'abc'",
                    "gateway.bind: invalid value 'wan'; allowed: loopback, lan, tailnet, auto, custom",
                    "gateway.auth.mode: expected one of none, token, password, trusted-proxy, got 3",
                    "logging.level: invalid value 'loud'; allowed: silent, fatal, error, warn, info, debug, trace",
                ]
            ),
        )

    def test_bool_is_not_int(self):
        """true is not a port."""
        errors, _ = self.check({"gateway": {"port": True}})
        self.assertEqual(errors, ["gateway.port: expected an integer from 1 to 65535, got true"])

    def test_unknown_keys_are_warnings(self):
        """Unknown keys are reported (with the known ones), not refused."""
        errors, warnings = self.check({"gatewy": {}, "gateway": {"prot": 1}})
        self.assertEqual(errors, [])
        self.assertEqual(len(warnings), 2)
        self.assertTrue(warnings[0].startswith("gatewy: unknown key (known keys here: "))
        self.assertIn("gateway.prot: unknown key", warnings[1])
        self.assertIn("port", warnings[1])

    def test_other_sections_pass(self):
        """Sections owned by later subsystems are accepted as they are."""
        config = json.loads('{"agents": {"list": [{"id": "x"}]}, "channels": {"telegram": {"botToken": "b"}}}')
        self.assertEqual(self.check(config), ([], []))
