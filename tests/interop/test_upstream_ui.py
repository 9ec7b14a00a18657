"""
Upstream's own Control UI (the build shipped in the 2026.1.30 CLI package,
protocol v3) served by this gateway (`gateway.controlUi.root`) in a real
headless Chromium: the Nodes tab's exec approvals card reads and saves this
gateway's `exec-approvals.json`, and the approval prompt answers an agent's
paused `exec`.

The UI comes from the CLI cache that tests/interop/test_real_cli.py installs;
without it, or without a browser, the tests are skipped with the reason.
"""

from __future__ import annotations

import json
from pathlib import Path

from twisted.trial.unittest import SkipTest, TestCase

from openclaw.store import write_json
from tests.browser import Browser, missing
from tests.fakes import openai_text, openai_tool_call, start_fake
from tests.interop.test_real_cli import VERSIONS, install
from tests.test_cron_gateway import until
from tests.test_agent import model_config
from tests.wsclient import TOKEN, GatewayMixin, connect_params

# Click the first enabled button whose text is exactly `name` (Lit renders into the light DOM).
CLICK = """
const button = [...document.querySelectorAll('button')].find(b => b.textContent.trim() === arguments[0] && !b.disabled);
if (button) { button.click(); return true; }
return false;
"""


def upstream_ui() -> Path:
    """The v3 Control UI's dist folder, or SkipTest saying why there is none."""
    reason = missing()
    if reason:
        raise SkipTest(reason)
    wrapper = Path(install(VERSIONS["v3"]))
    dist = wrapper.parent / "cli" / "node_modules" / "openclaw" / "dist" / "control-ui"
    if not (dist / "index.html").exists():
        raise SkipTest(f"the {VERSIONS['v3']} CLI package has no Control UI at {dist}")
    return dist


class UpstreamControlUITests(GatewayMixin, TestCase):
    timeout = 180

    async def open(self, path: str, **config) -> Browser:
        await self.gateway(gateway={"controlUi": {"root": str(upstream_ui())}}, **config)
        browser = await Browser.start(self)
        await browser.get(f"http://127.0.0.1:{self.service.port}{path}?token={TOKEN}")
        return browser

    async def click(self, browser: Browser, name: str) -> None:
        await browser.until(CLICK, f"a {name!r} button", 20.0, name)

    async def test_nodes_tab_exec_approvals(self):
        """Nodes tab: the card shows the gateway's allowlist (exec.approvals.get); a changed default is saved with the hash it read (exec.approvals.set)."""
        home_file = {"version": 1, "defaults": {"askFallback": "deny"}, "agents": {"main": {"allowlist": [{"pattern": "/usr/bin/uptime"}]}}}
        browser = await self.open("/nodes")
        approvals = self.service.settings.state_dir / "exec-approvals.json"
        write_json(approvals, home_file)
        await browser.get(f"http://127.0.0.1:{self.service.port}/nodes?token={TOKEN}")  # again, now that the file is there
        await self.click(browser, "main")
        await browser.until("return [...document.querySelectorAll('input')].some(i => i.value === '/usr/bin/uptime')", "the allowlist pattern")
        await self.click(browser, "Defaults")
        chosen = """
const select = [...document.querySelectorAll('select')].find(s => [...s.options].some(o => o.value === 'always'));
if (!select) return false;
select.value = 'always';
select.dispatchEvent(new Event('change', {bubbles: true}));
return true;
"""
        await browser.until(chosen, "the Ask select")
        await self.click(browser, "Save")
        await until(lambda: json.loads(approvals.read_text()).get("defaults", {}).get("ask") == "always")
        stored = json.loads(approvals.read_text())
        self.assertEqual(stored["defaults"], {"askFallback": "deny", "ask": "always"})
        self.assertEqual([e["pattern"] for e in stored["agents"]["main"]["allowlist"]], ["/usr/bin/uptime"])
        self.assertEqual(approvals.stat().st_mode & 0o777, 0o600)

    async def test_approval_prompt_resumes_the_run(self):
        """An exec with ask: always: the UI's prompt shows the command; Allow once runs it and the run finishes."""
        fake, url = await start_fake(self)
        fake.replies += [openai_tool_call("exec", {"command": "echo from-the-ui"}, call_id="ui1"), openai_text("done")]
        config = model_config(url)
        config["tools"] = {"exec": {"host": "gateway", "security": "allowlist", "ask": "always"}}
        browser = await self.open("/overview", **config)
        core = self.service.core
        await browser.until("return document.body.innerText.includes('Health')", "the UI")
        await until(lambda: core.approver_besides(None))  # the UI is connected (operator.approvals)
        user, res = await self.connect(connect_params(protocol=3, scopes=["operator.write"]))
        self.assertTrue(res["ok"], res)
        await user.request("chat.send", {"sessionKey": "main", "message": "run it", "idempotencyKey": "ui-run"})
        command = await browser.until("const c = document.querySelector('.exec-approval-command'); return c && c.textContent.trim()", "the approval prompt")
        self.assertEqual(command, "echo from-the-ui")
        await self.click(browser, "Allow once")
        result = await core.agent.lookup("ui-run").finished()
        self.assertEqual((result.status, result.text), ("ok", "done"))
        tool = [m for r in fake.requests for m in r["body"]["messages"] if m.get("role") == "tool"]
        self.assertIn("from-the-ui", tool[0]["content"])
        await browser.until("return !document.querySelector('.exec-approval-command')", "the prompt to close")
