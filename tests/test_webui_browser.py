"""
The Web UI end to end in a real headless Chromium, against a real gateway on
loopback with a fake streaming model provider. Screenshots of /chat and / go
to webui-artefacts/ in trial's working directory (or $OPENCLAW_WEBUI_ARTEFACTS).
"""

from __future__ import annotations

import json

from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.trial.unittest import SkipTest, TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import Data

from openclaw import __version__
from tests.browser import Browser, Keys, missing
from tests.fakes import Reply, openai_text, openai_tool_call, start_fake
from tests.helpers import scratch_home, write_config
from tests.test_agent import model_config
from tests.test_skills import MISSING_BIN, make_skill
from tests.wsclient import TOKEN, Device, GatewayMixin, connect_params, open_ws

log = Logger(namespace="openclaw.test")

FOREIGN_PAGE = b"""<!doctype html><html><head><script src="foreign.js"></script></head><body>foreign</body></html>"""
# Tries the gateway's WebSocket from another origin; says what happened in window.result.
FOREIGN_JS = b"""
window.result = "pending";
const ws = new WebSocket("ws://127.0.0.1:" + location.hash.slice(1) + "/");
ws.onopen = () => { window.result = "open"; };
ws.onclose = (e) => { if (window.result !== "open") window.result = "closed " + e.code; };
"""


class BrowserTestCase(GatewayMixin, TestCase):
    timeout = 120

    async def setUp(self):
        reason = missing()
        if reason:
            raise SkipTest(reason)
        self.fake, self.url = await start_fake(self)

    async def start(self, config=None):
        """A gateway with the fake model (or C{config}), its config also in the config file (what config.get reads)."""
        config = config or model_config(self.url)
        self.home = scratch_home(self)
        self.config_text = json.dumps({"gateway": {"mode": "local", "auth": {"token": TOKEN}}, **config}, indent=2)
        write_config(self.home / ".openclaw" / "openclaw.json", self.config_text)
        await self.gateway(**config)
        self.base = f"http://127.0.0.1:{self.service.port}"

    async def sign_in(self, browser, path="/chat"):
        """Open a page fresh, enter the token on the first-run screen, wait for the connection."""
        await browser.get(self.base + path)
        await browser.until("return document.querySelector('#login-secret')", "the first-run screen")
        await browser.keys("#login-secret", TOKEN)
        await browser.click("#login-submit")
        await browser.until("return document.body.dataset.conn === 'connected'", "the connection")

    async def operator(self):
        ws, res = await self.connect(connect_params(protocol=4, scopes=["operator.admin"]))
        self.assertTrue(res["ok"], res)
        return ws


class WebChatTests(BrowserTestCase):
    async def test_stream_then_history(self):
        """/chat: token, focus, Enter sends, the reply streams then settles, Shift+Enter is a new line; a reload shows the history."""
        await self.start()
        slow = openai_text("Hello", " there,", " this is", " **streamed**", " text.")
        slow.delay = 0.4
        self.fake.replies += [slow, openai_text("Second answer")]
        browser = await Browser.start(self)
        await self.sign_in(browser)
        self.assertEqual(await browser.until("return document.activeElement && document.activeElement.id", "focus"), "input")
        await browser.keys("#input", "hi there", Keys.ENTER)
        partial = await browser.until(
            "const m = document.querySelector('.msg.assistant.streaming .md'); return m && m.textContent.length && m.textContent",
            "a streamed part of the reply",
        )
        final = "Hello there, this is streamed text."
        self.assertNotEqual(partial, final)
        self.assertTrue(final.startswith(partial), partial)
        await browser.until(
            "const m = document.querySelector('.msg.assistant:not(.streaming) .md'); return m && m.textContent === arguments[0]",
            "the final reply",
            20,
            final,
        )
        self.assertEqual(await browser.js("return document.querySelector('.msg.assistant strong').textContent"), "streamed")
        self.assertEqual(len(self.fake.requests), 1)
        # Shift+Enter is a new line, Enter sends both lines as one message
        await browser.keys("#input", "line one", Keys.SHIFT, Keys.ENTER, Keys.SHIFT, "line two", Keys.ENTER)
        await browser.until("return [...document.querySelectorAll('.msg.assistant .md')].some(m => m.textContent === 'Second answer')", "the second reply")
        self.assertEqual(self.fake.requests[1]["body"]["messages"][-1]["content"], "line one\nline two")
        # each message had its own idempotency key (two runs)
        runs = [r for r in self.service.core.agent.runs]
        self.assertEqual(len(set(runs)), 2)
        # a reload shows the conversation from chat.history (the token is kept for the tab)
        await browser.get(self.base + "/chat")
        await browser.until("return document.body.dataset.conn === 'connected' && document.querySelectorAll('#messages .msg').length === 4", "the history")
        texts = await browser.js("return [...document.querySelectorAll('#messages .msg')].map(m => (m.classList.contains('user') ? 'user: ' : 'assistant: ') + m.querySelector('.body').innerText.trim())")
        self.assertEqual(texts, ["user: hi there", f"assistant: {final}", "user: line one\nline two", "assistant: Second answer"])
        # loopback: the device was approved silently, nothing is pending
        device = await browser.js("return document.body.dataset.device")
        self.assertEqual(self.service.core.pairing.paired(device)["remoteIp"], "127.0.0.1")
        self.assertEqual(self.service.core.pairing.pending(self.service.core.boot.now_ms()), [])
        await browser.screenshot("chat.png")
        # phone width: nothing sticks out sideways, the message box is on screen
        await browser.resize(390, 844)
        await deferLater(reactor, 0.3, lambda: None)
        self.assertTrue(await browser.js("return document.documentElement.scrollWidth <= window.innerWidth + 1"))
        self.assertTrue(await browser.js("const r = document.getElementById('input').getBoundingClientRect(); return r.bottom <= window.innerHeight && r.width > 150"))
        await browser.screenshot("chat-phone.png")

    async def test_stop_and_unsafe_reply(self):
        """A reply with an <img onerror> and a javascript: link shows as text and runs nothing; Esc stops a reply mid-stream; a model error shows inline."""
        await self.start()
        self.fake.replies.append(openai_text('Look: <img src=x onerror="window.__pwned=1"> and [click me](javascript:window.__pwned=2) and <script>window.__pwned=3</script> [ok](https://example.com/)'))
        hanging = openai_text("Thinking", " slowly", " and", " never", " done")
        hanging.delay = 0.3
        hanging.hang = True
        hanging.chunks = hanging.chunks[:4]  # no finish: the run keeps going until stopped
        self.fake.replies.append(hanging)
        browser = await Browser.start(self)
        await self.sign_in(browser)
        await browser.keys("#input", "show me", Keys.ENTER)
        await browser.until("const m = document.querySelector('.msg.assistant:not(.streaming) .md'); return m && m.textContent.includes('click me')", "the unsafe reply")
        self.assertIsNone(await browser.js("return window.__pwned === undefined ? null : window.__pwned"))
        self.assertEqual(await browser.js("return document.querySelectorAll('#messages img, #messages script').length"), 0)
        self.assertEqual(await browser.js("return [...document.querySelectorAll('#messages a')].map(a => a.getAttribute('href'))"), ["https://example.com/"])
        self.assertEqual(await browser.js("return document.querySelector('#messages a').rel"), "noopener noreferrer nofollow")
        shown = await browser.js("return document.querySelector('.msg.assistant .md').textContent")
        self.assertIn('<img src=x onerror="window.__pwned=1">', shown)
        self.assertIn("[click me](javascript:window.__pwned=2)", shown)
        # Stop mid-stream, from the keyboard
        await browser.keys("#input", "go on", Keys.ENTER)
        await browser.until("const m = document.querySelector('.msg.assistant.streaming .md'); return m && m.textContent.startsWith('Thinking')", "the reply streaming")
        self.assertTrue(await browser.js("return !document.getElementById('stop').disabled"))
        await browser.keys("#input", Keys.ESCAPE)
        await browser.until("return document.querySelector('.msg.assistant.stopped .stop-note')", "the reply marked stopped")
        self.assertEqual(self.service.core.agent.active, {})
        self.assertTrue(await browser.js("return document.getElementById('stop').disabled"))
        for _ in range(50):  # the fake provider writes its scripted chunks out, then goes quiet
            if not any("FakeProvider" in repr(c.func) for c in reactor.getDelayedCalls()):
                break
            await deferLater(reactor, 0.1, lambda: None)
        # a failing model: the error shows inline, under the message
        self.fake.replies.append(Reply([b'{"error":{"message":"model overloaded, try later"}}'], status=400))
        await browser.keys("#input", "again", Keys.ENTER)
        error = await browser.until("const e = document.querySelector('.msg.assistant.failed .error'); return e && e.textContent", "the inline error")
        self.assertIn("model overloaded", error)


    async def test_tool_cards_when_verbose(self):
        """"Tools" makes the session verbose: tool calls show as cards, live and in the history; off hides them."""
        await self.start()
        workspace = self.service.settings.state_dir / "workspace"
        workspace.mkdir(parents=True, exist_ok=True)
        (workspace / "notes.txt").write_text("buy <b>milk</b>")
        self.fake.replies += [openai_tool_call("read", {"path": "notes.txt"}), openai_text("The note says to buy milk.")]
        browser = await Browser.start(self)
        await self.sign_in(browser)
        await browser.click("#verbose")
        store = self.service.core.agent.store("main")
        for _ in range(50):
            if (store.get("agent:main:main") or {}).get("verboseLevel") == "on":
                break
            await deferLater(reactor, 0.1, lambda: None)
        self.assertEqual(store.get("agent:main:main")["verboseLevel"], "on")
        await browser.keys("#input", "what do my notes say?", Keys.ENTER)
        await browser.until("const r = document.querySelector('.msg.assistant .tool .result'); return r && r.textContent.includes('milk')", "the tool card with its result")
        self.assertEqual(await browser.js("return document.querySelector('.tool .tool-name').textContent"), "read")
        self.assertIn('"path": "notes.txt"', await browser.js("return document.querySelector('.tool pre.json').textContent"))
        self.assertEqual(await browser.js("return document.querySelectorAll('#messages b').length"), 0)
        await browser.until("return [...document.querySelectorAll('.msg.assistant .md')].some(m => m.textContent === 'The note says to buy milk.')", "the final reply")
        await browser.get(self.base + "/chat")
        await browser.until("return document.body.dataset.conn === 'connected' && document.querySelector('#messages .tool .result')", "the tool card in the history")
        await browser.click("#verbose")
        await browser.until("return document.body.dataset.conn === 'connected' && !document.querySelector('#messages .tool') && document.querySelectorAll('#messages .msg').length === 2", "the history without tool cards")


class ControlUiTests(BrowserTestCase):
    async def test_tabs(self):
        """/#token=…: connects and strips the token; approves a waiting device; Skills says why one is left out; Logs shows a logged line; Config names a bad key."""
        await self.start()
        browser = await Browser.start(self)
        await browser.get(f"{self.base}/#token={TOKEN}")
        await browser.until("return document.body.dataset.conn === 'connected'", "the connection")
        self.assertEqual(await browser.js("return location.href"), self.base + "/")
        self.assertEqual(await browser.js("return sessionStorage.length + localStorage.length"), 1)  # for this tab only
        await browser.until("const v = document.querySelector('#overview-model-name'); return v && v.textContent === 'fake/m1'", "the configured model")
        self.assertEqual(await browser.js("return document.querySelector('#overview-gateway dd').textContent"), __version__)
        await browser.until("return document.querySelectorAll('#overview-presence tbody tr').length >= 2", "the presence list")
        await browser.screenshot("control.png")

        # Approvals: a second signed client, not local, waits; one click approves it
        await browser.click('#tabs a[data-tab="approvals"]')
        self.assertEqual(await browser.js("return location.pathname"), "/approvals")
        await browser.until("return document.querySelector('#approvals-devices p')", "the approvals tab")
        device = Device()
        elsewhere = {"X-Forwarded-For": "203.0.113.9"}
        params = connect_params(protocol=4, client_id="cli", mode="cli", scopes=["operator.read"])
        ws = await open_ws(self.service.port, elsewhere)
        self.addCleanup(self._close_ws, ws)
        params["device"] = device.block(params, ws.challenge["payload"]["nonce"], ws.challenge["payload"]["ts"], token=TOKEN)
        refused = await ws.request("connect", params)
        self.assertEqual(refused["error"]["details"]["code"], "PAIRING_REQUIRED")
        request_id = refused["error"]["details"]["requestId"]
        await browser.until("return document.querySelector(`#approvals-devices button[data-request='${arguments[0]}']`)", "the waiting device", 20, request_id)
        self.assertIn(device.id[:16], await browser.js("return document.querySelector('#approvals-devices').textContent"))
        await browser.click(f"#approvals-devices button[data-request='{request_id}']")
        await browser.until("return document.querySelector('#approvals-paired') && document.querySelector('#approvals-paired').textContent.includes(arguments[0])", "the device among the paired", 20, device.id[:16])
        again = await open_ws(self.service.port, elsewhere)
        self.addCleanup(self._close_ws, again)
        params["device"] = device.block(params, again.challenge["payload"]["nonce"], again.challenge["payload"]["ts"], token=TOKEN)
        accepted = await again.request("connect", params)
        self.assertTrue(accepted["ok"], accepted)

        # Skills: the bundled ones eligible; a workspace skill needing a missing bin says which
        make_skill(self.service.settings.state_dir / "workspace" / "skills", "radar", f'name: radar\ndescription: Radar sweep.\nmetadata: {{"openclaw": {{"requires": {{"bins": ["{MISSING_BIN}"]}}}}}}')
        await browser.click('#tabs a[data-tab="skills"]')
        self.assertEqual(await browser.js("return location.pathname"), "/skills")
        why = await browser.until("const s = document.querySelector('#skills-list [data-skill=radar]'); return s && s.closest('tr').querySelector('.skill-why').textContent", "the radar skill")
        self.assertEqual(why, f"missing bin: {MISSING_BIN}")
        self.assertEqual(await browser.js("return document.querySelector('#skills-list [data-skill=notes]').closest('tr').querySelector('.skill-why').textContent"), "")

        # Logs: a line the test logs shows up live; filters and pause work
        await browser.click('#tabs a[data-tab="logs"]')
        log.info("webui-marker-one from the test")
        await browser.until("return document.getElementById('logs-view').textContent.includes('webui-marker-one')", "the logged line")
        await browser.js("const s = document.getElementById('logs-level'); s.value = 'error'; s.dispatchEvent(new Event('change'))")
        self.assertFalse(await browser.js("return document.getElementById('logs-view').textContent.includes('webui-marker-one')"))
        await browser.js("const s = document.getElementById('logs-level'); s.value = ''; s.dispatchEvent(new Event('change'))")
        await browser.keys("#logs-filter", "marker-one")
        self.assertEqual(await browser.js("return document.querySelectorAll('#logs-view .line').length"), 1)
        await browser.click("#logs-pause")
        log.info("webui-marker-two while paused")
        await deferLater(reactor, 2.0, lambda: None)
        await browser.js("const f = document.getElementById('logs-filter'); f.value = ''; f.dispatchEvent(new Event('input'))")
        self.assertFalse(await browser.js("return document.getElementById('logs-view').textContent.includes('webui-marker-two')"))
        await browser.click("#logs-pause")
        await browser.until("return document.getElementById('logs-view').textContent.includes('webui-marker-two')", "the line logged while paused")

        # Config: a bad port is refused, naming the key; nothing is written
        await browser.click('#tabs a[data-tab="config"]')
        await browser.until("const t = document.getElementById('config-raw'); return t && t.value.trim().length > 0", "the config text")
        config = json.dumps({"gateway": {"mode": "local", "port": 99999, "auth": {"token": TOKEN}}})
        await browser.js("document.getElementById('config-raw').value = arguments[0]", config)
        await browser.click("#config-save")
        issue = await browser.until("const l = document.querySelector('#config-issues li'); return l && l.textContent", "the validation error")
        self.assertIn("gateway.port", await browser.js("return document.querySelector('#config-issues code.key').textContent"))
        self.assertIn("65535", issue)
        self.assertEqual(self.service.settings.layout.config_path.read_text(), self.config_text)


    async def test_exec_approval_and_usage(self):
        """An agent's exec waiting for approval is counted on the Approvals link and listed there; Allow once runs it; Overview shows the priced tokens."""
        from tests.test_usage import priced, usd

        config = priced(self.url)
        config["tools"] = {"exec": {"host": "gateway", "security": "allowlist", "ask": "always"}}
        self.fake.replies += [openai_tool_call("exec", {"command": "echo from-the-browser"}, call_id="b1", usage={"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}), openai_text("done")]
        await self.start(config)
        browser = await Browser.start(self)
        await browser.get(f"{self.base}/approvals#token={TOKEN}")
        await browser.until("const p = document.querySelector('#approvals-exec p'); return p && p.textContent.includes('No command is waiting')", "the empty exec approvals list")
        user, res = await self.connect(connect_params(protocol=3, scopes=["operator.write"]))
        self.assertTrue(res["ok"], res)
        await user.request("chat.send", {"sessionKey": "main", "message": "run it", "idempotencyKey": "b-run"})
        command = await browser.until("const c = document.querySelector('#approvals-exec code.command'); return c && c.textContent", "the waiting command")
        self.assertEqual(command, "echo from-the-browser")
        self.assertIn("gateway · agent main · agent:main:main", await browser.js("return document.querySelector('#approvals-exec').textContent"))
        self.assertEqual(await browser.js("""return document.querySelector('#tabs a[data-tab="approvals"]').textContent"""), "Approvals (1)")
        await browser.screenshot("control-exec-approval.png")
        await browser.click("#approvals-exec button[data-approval]")
        result = await self.service.core.agent.lookup("b-run").finished()
        self.assertEqual((result.status, result.text), ("ok", "done"))
        tool = [m for r in self.fake.requests for m in r["body"]["messages"] if m.get("role") == "tool"]
        self.assertIn("from-the-browser", tool[0]["content"])
        await browser.until("""return document.querySelector('#tabs a[data-tab="approvals"]').textContent === 'Approvals'""", "the count to clear")
        await browser.until("const p = document.querySelector('#approvals-exec p'); return p && p.textContent.includes('No command is waiting')", "the list to empty")
        await browser.click('#tabs a[data-tab="overview"]')
        totals = await browser.until("const t = document.getElementById('overview-usage-totals'); return t && t.textContent.includes('128 tokens') && t.textContent", "the usage totals")
        self.assertIn(f"${usd({'input': 111, 'output': 17}):.4f}", totals)
        self.assertIn("fake/m1", await browser.js("return document.getElementById('overview-usage').textContent"))


class DeviceAccessTests(BrowserTestCase):
    async def test_remote_approval_insecure_and_foreign(self):
        """Non-loopback: waits for approval with the device id and goes on without a reload; plain HTTP gets the explanation; a foreign page cannot open the WebSocket."""
        await self.start()
        port = self.service.port
        foreign = Resource()
        foreign.putChild(b"foreign.html", Data(FOREIGN_PAGE, "text/html"))
        foreign.putChild(b"foreign.js", Data(FOREIGN_JS, "text/javascript"))
        listening = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Site(foreign))
        self.addCleanup(listening.stopListening)
        browser = await Browser.start(
            self,
            "--host-resolver-rules=MAP *.test 127.0.0.1",
            # a stand-in for an HTTPS name such as Tailscale Serve's: a secure context that is not loopback
            f"--unsafely-treat-insecure-origin-as-secure=http://remote.test:{port}",
        )
        await browser.get(f"http://remote.test:{port}/chat#token={TOKEN}")
        device = await browser.until("const d = document.getElementById('pair-device'); return d && d.textContent", "the waiting-for-approval screen")
        self.assertEqual(device, await browser.js("return document.body.dataset.device"))
        self.assertRegex(device, "^[0-9a-f]{64}$")
        self.assertIn("openclaw devices approve", await browser.js("return document.getElementById('pairing').textContent"))
        await browser.js("window.__sameDocument = true")
        operator = await self.operator()
        pending = (await operator.request("device.pair.list"))["payload"]["pending"]
        self.assertEqual([p["deviceId"] for p in pending], [device])
        self.assertTrue((await operator.request("device.pair.approve", {"requestId": pending[0]["requestId"]}))["ok"])
        await browser.until("return document.body.dataset.conn === 'connected' && !document.getElementById('app').hidden", "the page to go on once approved", 30)
        self.assertTrue(await browser.js("return window.__sameDocument === true"))

        # plain HTTP from a non-loopback name: no WebCrypto, so the explanation instead
        await browser.get(f"http://plain.test:{port}/")
        text = await browser.until("const i = document.getElementById('insecure'); return i && i.textContent", "the insecure-context explanation")
        self.assertIn("Tailscale Serve", text)
        self.assertIn(f"ssh -N -L {port}:127.0.0.1:{port}", text)

        # a page from another origin cannot open the gateway's WebSocket
        await browser.get(f"http://127.0.0.1:{listening.getHost().port}/foreign.html#{port}")
        result = await browser.until("return window.result !== 'pending' && window.result", "the foreign page's attempt")
        self.assertTrue(result.startswith("closed"), result)
