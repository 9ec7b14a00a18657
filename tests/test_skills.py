"""
Skills: SKILL.md parsing, precedence, eligibility (a missing bin is named),
config switches and env, the prompt a fake provider receives, the skill env
in exec, skills.status / skills.bins over the wire (checked against upstream's
schemas), and `openclaw skills` as a subprocess.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase, TestCase

from openclaw.skills.loader import BUNDLED, Context, for_run, load_skills, parse_frontmatter, parse_metadata, read_skill, report, skill_dirs, status_entry, why_not
from tests import schemas
from tests.fakes import openai_text, openai_tool_call, start_fake
from tests.helpers import base_env, run_cli, scratch_home, write_config
from tests.test_agent import model_config
from tests.test_memory import tool_calls
from tests.test_nodes import node_params
from tests.wsclient import Device, GatewayMixin, connect_params

MISSING_BIN = "oc-no-such-binary-4711"


def make_skill(root: Path, folder: str, frontmatter: str, body: str = "Do the thing.\n") -> Path:
    path = root / folder / "SKILL.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("---\n" + textwrap.dedent(frontmatter).strip() + "\n---\n\n" + body)
    return path


class ParseTests(SynchronousTestCase):
    def test_frontmatter_and_metadata_forms(self):
        """Single-line JSON, a JSON5 block and a YAML mapping all give metadata.openclaw.requires."""
        fields, body = parse_frontmatter('---\nname: one\ndescription: "Says: hi"\nmetadata: {"openclaw": {"requires": {"bins": ["a"]}}}\n---\nBody\n')
        self.assertEqual((fields["name"], body), ("one", "Body\n"))
        self.assertEqual(parse_metadata(fields["metadata"])["openclaw"]["requires"]["bins"], ["a"])
        block = '\n  {\n    "openclaw": {\n      "requires": { "bins": ["b"], env: ["X_KEY"] },\n    },\n  }'
        self.assertEqual(parse_metadata(block)["openclaw"]["requires"], {"bins": ["b"], "env": ["X_KEY"]})
        yaml = "\n  openclaw:\n    os: [linux]\n    requires:\n      bins:\n        - c\n        - d\n    always: true"
        self.assertEqual(parse_metadata(yaml), {"openclaw": {"os": ["linux"], "requires": {"bins": ["c", "d"]}, "always": True}})
        for junk in ("", "[1, 2]", "not: [valid", "{", ":::"):
            self.assertIsInstance(parse_metadata(junk), dict)
        self.assertEqual(parse_frontmatter("no frontmatter"), ({}, "no frontmatter"))
        self.assertEqual(parse_frontmatter("---\nname: x\n"), ({}, "---\nname: x\n"))

    def test_bundled_skills_parse(self):
        """The bundled skills load, each with a description; weather needs curl, sysinfo is Linux-only."""
        found = {s.name: s for s in load_skills(skill_dirs({}, Path("/nonexistent"), Path("/nonexistent")))}
        self.assertTrue({"notes", "todo", "weather", "sysinfo"} <= set(found))
        self.assertTrue(all(s.description and s.source == "openclaw-bundled" for s in found.values()))
        self.assertEqual(found["weather"].requires.bins, ("curl",))
        self.assertEqual(found["sysinfo"].requires.os, ("linux",))
        self.assertTrue((BUNDLED / "weather" / "SKILL.md").is_file())


class EligibilityTests(SynchronousTestCase):
    def setUp(self):
        self.state = Path(self.mktemp()).resolve()
        self.workspace = self.state / "workspace"

    def ctx(self, config=None, env=None, bins=("curl", "grep")):
        return Context(config or {}, env or {"PATH": "/bin"}, "linux", lambda name, path: f"/bin/{name}" if name in bins else None)

    def entries(self, config=None, **kw):
        return {s["name"]: s for s in report(skill_dirs(config or {}, self.workspace, self.state), self.ctx(config, **kw))["skills"]}

    def test_missing_bin_is_named(self):
        """A skill needing a missing bin is not eligible, and the report names the bin."""
        make_skill(self.workspace / "skills", "radar", f'name: radar\ndescription: Radar.\nmetadata: {{"openclaw": {{"requires": {{"bins": ["curl", "{MISSING_BIN}"]}}}}}}')
        radar = self.entries()["radar"]
        self.assertFalse(radar["eligible"])
        self.assertEqual(radar["missing"]["bins"], [MISSING_BIN])
        self.assertEqual(radar["requirements"]["bins"], ["curl", MISSING_BIN])
        self.assertEqual(why_not(radar), f"missing bin: {MISSING_BIN}")
        self.assertEqual(radar["source"], "openclaw-workspace")
        # The weather skill says it needs curl when curl is missing.
        weather = self.entries(bins=("grep",))["weather"]
        self.assertEqual((weather["eligible"], weather["missing"]["bins"]), (False, ["curl"]))

    def test_other_requirements(self):
        """anyBins, env (from the environment, entries.env or apiKey+primaryEnv), config paths and os."""
        make_skill(self.workspace / "skills", "s1", 'name: s1\nmetadata: {"openclaw": {"requires": {"anyBins": ["x", "curl"], "env": ["S1_TOKEN"], "config": ["browser.enabled"]}, "primaryEnv": "S1_TOKEN", "os": ["darwin"]}}')
        s1 = self.entries()["s1"]
        self.assertEqual(s1["missing"], {"bins": [], "anyBins": [], "env": ["S1_TOKEN"], "config": ["browser.enabled"], "os": ["darwin"]})
        self.assertEqual(why_not(s1), "missing env: S1_TOKEN; config not set: browser.enabled; only for os: darwin")
        config = {"browser": {"enabled": True}, "skills": {"entries": {"s1": {"apiKey": "k-123456"}}}}
        s1 = self.entries(config)["s1"]
        self.assertEqual(s1["missing"]["env"], [])
        self.assertEqual(s1["configChecks"], [{"path": "browser.enabled", "value": True, "satisfied": True}])
        self.assertEqual(self.entries(env={"S1_TOKEN": "v"})["s1"]["missing"]["env"], [])

    def test_precedence_and_switches(self):
        """Workspace beats managed beats bundled; enabled:false and allowBundled turn skills off; always skips gates."""
        make_skill(self.state / "skills", "notes", "name: notes\ndescription: managed notes")
        self.assertEqual(self.entries()["notes"]["source"], "openclaw-managed")
        make_skill(self.workspace / "skills", "notes", "name: notes\ndescription: my notes")
        self.assertEqual(self.entries()["notes"]["description"], "my notes")
        off = self.entries({"skills": {"entries": {"todo": {"enabled": False}}, "allowBundled": ["weather"]}})
        self.assertEqual((off["todo"]["disabled"], off["todo"]["eligible"]), (True, False))
        self.assertIn("disabled in config", why_not(off["todo"]))
        self.assertEqual((off["sysinfo"]["blockedByAllowlist"], off["sysinfo"]["eligible"]), (True, False))
        self.assertTrue(off["weather"]["eligible"])
        self.assertTrue(off["notes"]["eligible"])  # allowBundled is about bundled skills only
        make_skill(self.workspace / "skills", "forced", f'name: forced\nmetadata: {{"openclaw": {{"always": true, "requires": {{"bins": ["{MISSING_BIN}"]}}}}}}')
        self.assertTrue(self.entries()["forced"]["eligible"])

    def test_run_prompt_and_env(self):
        """A run gets eligible skills in <available_skills> (locations, or instructions when sandboxed) and their env."""
        make_skill(self.workspace / "skills", "deploy", 'name: deploy\ndescription: Ship <it> & tell\nmetadata: {"openclaw": {"requires": {"env": ["DEPLOY_TOKEN"]}, "primaryEnv": "DEPLOY_TOKEN"}}', "Run ./ship.\n")
        make_skill(self.workspace / "skills", "hidden", "name: hidden\ndescription: x\ndisable-model-invocation: true")
        config = {"skills": {"entries": {"deploy": {"apiKey": "tok-abcdef", "env": {"DEPLOY_REGION": "eu", "PATH": "/evil"}}}}}
        run = for_run(config, {"PATH": "/usr/bin:/bin"}, self.workspace, self.state)
        prompt = "\n".join(run.prompt)
        self.assertIn("<name>deploy</name>", prompt)
        self.assertIn("<description>Ship &lt;it&gt; &amp; tell</description>", prompt)
        self.assertIn(f"<location>{self.workspace / 'skills' / 'deploy' / 'SKILL.md'}</location>", prompt)
        self.assertNotIn("hidden", prompt)
        self.assertEqual(run.env["DEPLOY_TOKEN"], "tok-abcdef")
        self.assertEqual(run.env["DEPLOY_REGION"], "eu")
        self.assertNotIn("PATH", run.env)  # set in the gateway's environment: not overridden
        inline = for_run(config, {"PATH": "/usr/bin:/bin"}, self.workspace, self.state, inline=True)
        self.assertIn("<instructions>Run ./ship.</instructions>", "\n".join(inline.prompt))
        self.assertEqual(dict(inline.env), {})  # sandboxed commands do not get host secrets

    def test_bad_skill_files(self):
        """Oversized, nameless-by-control-chars or unreadable SKILL.md files are skipped, not fatal."""
        big = make_skill(self.workspace / "skills", "big", "name: big", "x" * 300_000)
        self.assertIsNone(read_skill(big, "openclaw-workspace"))
        make_skill(self.workspace / "skills", "ctl", "name: a\x01b")
        (self.workspace / "skills" / "empty").mkdir()
        names = set(self.entries())
        self.assertNotIn("big", names)
        self.assertNotIn("a\x01b", names)
        self.assertNotIn("empty", names)
        self.assertIn("notes", names)

    def test_status_entry_matches_upstream_fields(self):
        """Each entry has the fields upstream's SkillStatusEntry has."""
        entry = status_entry(read_skill(BUNDLED / "weather" / "SKILL.md", "openclaw-bundled"), self.ctx())
        for key in ("name", "description", "source", "bundled", "filePath", "baseDir", "skillKey", "always", "disabled", "blockedByAllowlist", "eligible", "requirements", "missing", "configChecks", "install"):
            self.assertIn(key, entry)
        self.assertEqual(entry["homepage"], "https://wttr.in")


class SkillsWireTests(GatewayMixin, TestCase):
    timeout = 60

    async def test_status_and_bins(self):
        """skills.status (operator.read; v3 and v4 params) and skills.bins (nodes only), shapes per upstream."""
        await self.gateway()
        workspace = self.service.settings.state_dir / "workspace"
        make_skill(workspace / "skills", "radar", f'name: radar\ndescription: Radar.\nmetadata: {{"openclaw": {{"requires": {{"bins": ["{MISSING_BIN}"]}}}}}}')
        ws, res = await self.connect(connect_params(protocol=3, scopes=["operator.read"]))
        status = await ws.request("skills.status", {})
        self.assertTrue(status["ok"], status)
        skills = {s["name"]: s for s in status["payload"]["skills"]}
        self.assertEqual(status["payload"]["workspaceDir"], str(workspace))
        self.assertEqual(skills["radar"]["missing"]["bins"], [MISSING_BIN])
        self.assertFalse(skills["radar"]["eligible"])
        self.assertIn("weather", skills)
        schemas.validate(3, "SkillsStatusParams", {})
        ws4, _ = await self.connect(connect_params(protocol=4, scopes=["operator.read"]))
        params = {"agentId": "main", "sessionKey": "agent:main:main"}
        schemas.validate(4, "SkillsStatusParams", params)
        self.assertTrue((await ws4.request("skills.status", params))["ok"])
        unknown = await ws4.request("skills.status", {"agentId": "ghost"})
        self.assertEqual((unknown["error"]["code"], unknown["error"]["message"]), ("INVALID_REQUEST", 'unknown agent id "ghost"'))
        extra = await ws4.request("skills.status", {"x": 1})
        self.assertEqual(extra["error"]["code"], "INVALID_REQUEST")
        refused = await ws.request("skills.bins", {})
        self.assertEqual(refused["error"]["message"], "unauthorized role: operator")

        node = await self.ws()
        params = node_params(3)
        device = Device()
        params["device"] = device.block(params, node.challenge["payload"]["nonce"], node.challenge["payload"]["ts"], "v3", params["auth"]["token"])
        self.assertTrue((await node.request("connect", params))["ok"])
        bins = await node.request("skills.bins", {})
        self.assertTrue(bins["ok"], bins)
        for version in (3, 4):
            schemas.validate(version, "SkillsBinsResult", bins["payload"])
            schemas.validate(version, "SkillsBinsParams", {})
        self.assertIn(MISSING_BIN, bins["payload"]["bins"])
        self.assertIn("curl", bins["payload"]["bins"])
        self.assertEqual(bins["payload"]["bins"], sorted(bins["payload"]["bins"]))


class SkillsAgentTests(GatewayMixin, TestCase):
    timeout = 60

    async def setUp(self):
        self.fake, self.url = await start_fake(self)

    async def test_prompt_and_env_reach_the_model(self):
        """Eligible skills are in the system prompt the provider receives (ineligible ones are not); exec sees the skill env."""
        config = model_config(self.url)
        config["skills"] = {"entries": {"deploy": {"env": {"DEPLOY_REGION": "eu-west-9"}}, "todo": {"enabled": False}}}
        await self.gateway(**config)
        workspace = self.service.settings.state_dir / "workspace"
        make_skill(workspace / "skills", "deploy", 'name: deploy\ndescription: Ship the site.\nmetadata: {"openclaw": {"requires": {"env": ["DEPLOY_REGION"]}}}')
        make_skill(workspace / "skills", "radar", f'name: radar\ndescription: Radar.\nmetadata: {{"openclaw": {{"requires": {{"bins": ["{MISSING_BIN}"]}}}}}}')
        self.fake.replies += [openai_tool_call("exec", {"command": "echo region=$DEPLOY_REGION"}, "e1"), openai_text("done")]
        ws, res = await self.connect(connect_params(protocol=3, scopes=["operator.admin"]))
        ws.protocol.send_json({"type": "req", "id": "a", "method": "agent", "params": {"message": "ship it", "idempotencyKey": "s1"}})
        await ws.response("a")
        final = await ws.response("a", timeout=30)
        self.assertEqual(final["payload"]["status"], "ok", final)
        system = self.fake.requests[0]["body"]["messages"][0]["content"]
        self.assertIn("<available_skills>", system)
        self.assertIn("<name>deploy</name>", system)
        self.assertIn("<name>notes</name>", system)
        self.assertIn(str(BUNDLED / "notes" / "SKILL.md"), system)
        self.assertNotIn("<name>radar</name>", system)
        self.assertNotIn("<name>todo</name>", system)
        self.assertIn("region=eu-west-9", tool_calls(self.fake)["e1"])


class SkillsCLITests(TestCase):
    timeout = 60

    def test_list_info_check(self):
        """`openclaw skills list|info|check`: a missing bin is named; --json has the status fields; unknown names exit 1."""
        home = scratch_home(self)
        env = base_env(home)
        workspace = home / ".openclaw" / "workspace"
        make_skill(workspace / "skills", "radar", f'name: radar\ndescription: Radar sweep.\nmetadata: {{"openclaw": {{"requires": {{"bins": ["{MISSING_BIN}"]}}}}}}')
        write_config(home / ".openclaw" / "openclaw.json", {"skills": {"entries": {"todo": {"enabled": False}}}})
        listed = run_cli("skills", "list", env=env)
        self.assertEqual(listed.returncode, 0, listed.stderr)
        self.assertIn("radar", listed.stdout)
        self.assertIn(f"missing bin: {MISSING_BIN}", listed.stdout)
        self.assertIn("disabled in config (skills.entries.todo.enabled)", listed.stdout)
        eligible = run_cli("skills", "list", "--eligible", "--json", env=env)
        names = [s["name"] for s in json.loads(eligible.stdout)["skills"]]
        self.assertIn("notes", names)
        self.assertNotIn("radar", names)
        info = run_cli("skills", "info", "radar", env=env)
        self.assertEqual(info.returncode, 0, info.stderr)
        self.assertIn(f"needs bins: {MISSING_BIN} (missing)", info.stdout)
        self.assertIn("not eligible", info.stdout)
        detail = json.loads(run_cli("skills", "info", "weather", "--json", env=env).stdout)
        self.assertEqual(detail["requirements"]["bins"], ["curl"])
        missing = run_cli("skills", "info", "nope", env=env)
        self.assertEqual(missing.returncode, 1)
        self.assertIn("No skill named 'nope'", missing.stderr)
        check = run_cli("skills", "check", env=env)
        self.assertEqual(check.returncode, 0, check.stderr)
        self.assertIn(f"Missing for radar: missing bin: {MISSING_BIN}", check.stdout)
        self.assertIn("Turned off: todo", check.stdout)
        summary = json.loads(run_cli("skills", "check", "--json", env=env).stdout)
        self.assertEqual(summary["missingRequirements"]["radar"], f"missing bin: {MISSING_BIN}")
