"""Tools: the tool loop end to end, file tools, exec on the host and in sandboxes, SSRF, /tools/invoke."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

from twisted.internet import reactor
from twisted.internet.defer import succeed
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SkipTest, TestCase
from twisted.web.resource import Resource
from twisted.web.static import Data
from twisted.web.server import Site
from twisted.web.util import Redirect

from openclaw.agent.sandbox import Bubblewrap, Docker, SandboxUnavailable
from openclaw.agent.tools import TOOLS, ToolContext, run_tool
from openclaw.agent.webfetch import FetchRefused, WebFetcher, is_public
from tests.fakes import openai_text, openai_tool_call, start_fake
from tests.test_agent import model_config
from tests.test_canvas import raw
from tests.wsclient import TOKEN, GatewayMixin, connect_params


def context(workspace, sandbox=None, runtime=None, key="agent:main:main"):
    return ToolContext(Path(workspace), key, sandbox, runtime, reactor)


class FileToolTests(TestCase):
    def setUp(self):
        self.ws = Path(self.mktemp()).resolve()
        self.ws.mkdir()

    async def call(self, name, args, **kw):
        return await run_tool(TOOLS[name], context(self.ws, **kw), args)

    async def test_write_read_edit(self):
        """write, read (with offset/limit), edit exactly-once; errors come back as tool errors."""
        self.assertEqual(await self.call("write", {"path": "a/b.txt", "content": "one\ntwo\nthree"}), ("wrote 13 bytes to a/b.txt", False))
        self.assertEqual(await self.call("read", {"path": "a/b.txt", "offset": 2, "limit": 1}), ("two", False))
        self.assertEqual(await self.call("edit", {"path": "a/b.txt", "oldText": "two", "newText": "2"}), ("edited a/b.txt", False))
        self.assertEqual((self.ws / "a" / "b.txt").read_text(), "one\n2\nthree")
        text, error = await self.call("edit", {"path": "a/b.txt", "oldText": "zzz", "newText": "x"})
        self.assertTrue(error)
        self.assertIn("exactly once", text)
        self.assertTrue((await self.call("read", {"path": "missing"}))[1])
        self.assertTrue((await self.call("read", {}))[1])

    async def test_confinement(self):
        """A sandboxed session cannot read or write outside its workspace (symlinks included)."""
        outside = self.ws.parent / "outside.txt"
        outside.write_text("secret")
        os.symlink(outside, self.ws / "link")
        for args in ({"path": "../outside.txt"}, {"path": str(outside)}, {"path": "link"}):
            text, error = await self.call("read", args, sandbox=Bubblewrap())
            self.assertTrue(error, args)
            self.assertNotIn("secret", text)
        self.assertTrue((await self.call("write", {"path": "../x", "content": "y"}, sandbox=Bubblewrap()))[1])

    async def test_exec_on_host(self):
        """The main session's exec runs on the host, in the workspace, with exit code and output."""
        text, error = await self.call("exec", {"command": "echo hi; pwd; exit 3"})
        self.assertFalse(error)
        self.assertIn("exit code: 3", text)
        self.assertIn(f"hi\n{self.ws}", text)
        text, _ = await self.call("exec", {"command": ["echo", "argv", "$HOME"]})
        self.assertIn("argv $HOME", text)


class SandboxTests(TestCase):
    def setUp(self):
        self.ws = Path(self.mktemp()).resolve()
        self.ws.mkdir()

    async def test_bubblewrap_confines(self):
        """bubblewrap: the workspace is writable; the host's files and the network are not reachable."""
        if shutil.which("bwrap") is None:
            raise SkipTest("bubblewrap is not installed here (apt-get install bubblewrap): the sandbox is untested")
        secret = self.ws.parent / "secret.txt"
        secret.write_text("host secret")
        from twisted.internet.protocol import Factory, Protocol

        listener = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Factory.forProtocol(Protocol))
        self.addCleanup(listener.stopListening)
        port = listener.getHost().port
        probe = f"bash -c 'echo > /dev/tcp/127.0.0.1/{port}' 2>/dev/null && echo net || echo nonet"
        script = f"echo inside > made.txt; cat {secret} 2>&1; cat /etc/hostname 2>&1; {probe}"
        text, error = await run_tool(TOOLS["exec"], context(self.ws, Bubblewrap(), key="agent:main:telegram:group:1"), {"command": script})
        self.assertFalse(error, text)
        self.assertNotIn("host secret", text)
        self.assertIn("No such file", text)
        self.assertIn("nonet", text)
        self.assertEqual((self.ws / "made.txt").read_text(), "inside\n")

    def test_bubblewrap_network_flag(self):
        """allowNetwork keeps the network (both modes); allowFileSystem true binds the host's top folders read-only."""
        for as_root in (False, True):
            open_net = Bubblewrap(allow_network=True, allow_file_system=True, binary="/usr/bin/bwrap", setpriv="/usr/bin/setpriv", as_root=as_root).prepare(["true"], self.ws)
            closed = Bubblewrap(binary="/usr/bin/bwrap", setpriv="/usr/bin/setpriv", as_root=as_root).prepare(["true"], self.ws)
            for launch in (open_net, closed):
                launch.close()
            if as_root:  # no --unshare-all as root: it would map root into a user namespace
                self.assertEqual(("--unshare-net" in open_net.argv, "--unshare-net" in closed.argv), (False, True))
            else:
                self.assertEqual(("--share-net" in open_net.argv, "--share-net" in closed.argv), (True, False))
            self.assertEqual(open_net.argv[open_net.argv.index("/usr") - 1 : open_net.argv.index("/usr") + 2], ["--ro-bind", "/usr", "/usr"])
            self.assertNotIn("/proc", open_net.argv[: open_net.argv.index("--proc")])

    async def test_docker_with_fake_cli(self):
        """The docker backend drives the docker CLI: no network, the workspace mounted, the image named."""
        bin_dir = Path(self.mktemp()).resolve()
        bin_dir.mkdir()
        log = bin_dir / "calls.jsonl"
        fake = bin_dir / "docker"
        fake.write_text(f"#!/usr/bin/env python3\nimport json, sys, subprocess\nopen({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\nargs = sys.argv[1:]\ncmd = args[args.index('img:1') + 1:]\nsys.exit(subprocess.call(cmd))\n")
        fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
        sandbox = Docker("img:1", binary=str(fake))
        text, error = await run_tool(TOOLS["exec"], context(self.ws, sandbox, key="agent:main:x"), {"command": ["echo", "from docker"]})
        self.assertFalse(error, text)
        self.assertIn("from docker", text)
        [call] = [json.loads(line) for line in log.read_text().splitlines()]
        self.assertEqual(call[:3], ["run", "--rm", "-i"])
        for flag, value in (("--network", "none"), ("--cap-drop", "ALL"), ("--security-opt", "no-new-privileges"), ("--pids-limit", "256")):
            self.assertEqual(call[call.index(flag) + 1], value)
        self.assertEqual(call[call.index("--user") + 1], "65534:65534" if os.geteuid() == 0 else f"{os.getuid()}:{os.getgid()}")
        self.assertIn(f"{self.ws}:/workspace", call)

    async def test_missing_backend_refused(self):
        """A missing backend refuses clearly instead of running on the host."""
        text, error = await run_tool(TOOLS["exec"], context(self.ws, Bubblewrap(binary=None), key="agent:main:x"), {"command": "echo hi"})
        self.assertTrue(error)
        self.assertIn("apt-get install bubblewrap", text)
        with self.assertRaises(SandboxUnavailable):
            Docker(binary=None).check()


class SSRFTests(TestCase):
    def test_address_table(self):
        """Loopback, private, link-local/metadata, mapped, CGNAT and reserved addresses are not public."""
        for address in ("127.0.0.1", "::1", "::ffff:127.0.0.1", "10.1.2.3", "192.168.1.1", "172.16.0.1", "169.254.169.254", "fe80::1", "100.64.0.1", "0.0.0.0", "224.0.0.1", "fc00::1"):
            self.assertFalse(is_public(address), address)
        for address in ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "1.1.1.1"):
            self.assertTrue(is_public(address), address)

    async def test_refused_urls(self):
        """Real resolution: loopback names, decimal/hex IP forms, metadata and IPv6 forms are all refused."""
        fetcher = WebFetcher(reactor)
        for url in ("http://127.0.0.1/", "http://localhost:1/", "http://[::1]/", "http://[::ffff:127.0.0.1]/", "http://2130706433/", "http://0x7f.0.0.1/", "http://169.254.169.254/latest/meta-data", "http://10.0.0.1/", "file:///etc/passwd", "ftp://x/"):
            with self.assertRaises(FetchRefused, msg=url):
                await fetcher.fetch(url)

    async def test_redirect_to_loopback_refused(self):
        """An allowed server that redirects to loopback is refused at the redirect; allowed text is fetched."""
        inner = Resource()
        inner.putChild(b"secret", Data(b"private data", "text/plain"))
        private = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Site(inner))
        self.addCleanup(private.stopListening)
        outer = Resource()
        outer.putChild(b"go", Redirect(f"http://127.0.0.1:{private.getHost().port}/secret".encode()))
        outer.putChild(b"page", Data(b"public page", "text/plain"))
        public = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.2").listen(Site(outer))
        self.addCleanup(public.stopListening)
        # 127.0.0.2 plays a public host here; everything else keeps the real rule.
        fetcher = WebFetcher(reactor, resolve=lambda host: succeed([host]), public=lambda a: a == "127.0.0.2" or is_public(a))
        ok = await fetcher.fetch(f"http://127.0.0.2:{public.getHost().port}/page")
        self.assertEqual((ok.status, ok.text), (200, "public page"))
        with self.assertRaises(FetchRefused):
            await fetcher.fetch(f"http://127.0.0.2:{public.getHost().port}/go")


class ToolLoopTests(GatewayMixin, TestCase):
    timeout = 60

    async def test_tool_call_round_trip(self):
        """The model calls write, the result goes back, the model answers; tool events reach tool-events clients."""
        fake, url = await start_fake(self)
        fake.replies += [openai_tool_call("write", {"path": "notes.txt", "content": "remember milk"}), openai_text("Saved it.")]
        await self.gateway(**model_config(url))
        ws, _ = await self.connect(connect_params(protocol=3, caps=["tool-events"]))
        ws.protocol.send_json({"type": "req", "id": "t", "method": "agent", "params": {"message": "note: milk", "idempotencyKey": "tool1"}})
        await ws.response("t")
        final = (await ws.response("t"))["payload"]
        self.assertEqual(final["result"]["payloads"], [{"text": "Saved it."}])
        workspace = self.service.core.agent.workspace()
        self.assertEqual((workspace / "notes.txt").read_text(), "remember milk")
        tool_events = [e["payload"]["data"] for e in ws.events if e.get("event") == "agent" and e["payload"]["stream"] == "tool"]
        self.assertEqual([(e["phase"], e["name"]) for e in tool_events], [("start", "write"), ("result", "write")])
        second = fake.requests[1]["body"]["messages"]
        self.assertEqual(second[-2]["tool_calls"][0]["function"]["name"], "write")
        self.assertEqual((second[-1]["role"], second[-1]["tool_call_id"]), ("tool", "call_1"))
        self.assertEqual([t["function"]["name"] for t in fake.requests[0]["body"]["tools"]][:3], ["read", "write", "edit"])

    async def test_non_main_session_is_sandboxed(self):
        """With sandbox.mode non-main, a group session's exec runs in bubblewrap (its own workspace)."""
        if shutil.which("bwrap") is None:
            raise SkipTest("bubblewrap is not installed here: the non-main sandbox is untested")
        fake, url = await start_fake(self)
        fake.replies += [openai_tool_call("exec", {"command": "cat /etc/hostname 2>&1; pwd"}), openai_text("ok")]
        await self.gateway(gateway={"sandbox": {"mode": "non-main", "backend": "bubblewrap"}}, **model_config(url))
        ws, _ = await self.connect()
        ws.protocol.send_json({"type": "req", "id": "g", "method": "agent", "params": {"message": "x", "idempotencyKey": "g1", "sessionKey": "telegram:group:9"}})
        await ws.response("g")
        await ws.response("g")
        result = fake.requests[1]["body"]["messages"][-1]["content"]
        self.assertIn("No such file", result)
        self.assertIn("/workspace", result)

    async def test_tools_invoke_http(self):
        """/tools/invoke: bearer required; exec is denied by default (404); read works once allowed."""
        await self.gateway(gateway={"tools": {"allow": ["read"]}})
        workspace = self.service.core.agent.workspace()
        workspace.mkdir(parents=True, exist_ok=True)
        (workspace / "hello.txt").write_text("hi from the workspace")

        def post(body, token=TOKEN):
            import http.client

            conn = http.client.HTTPConnection("127.0.0.1", self.service.port, timeout=10)
            try:
                conn.request("POST", "/tools/invoke", body=json.dumps(body), headers={"Authorization": f"Bearer {token}"} if token else {})
                r = conn.getresponse()
                return r.status, json.loads(r.read())
            finally:
                conn.close()

        self.assertEqual((await deferToThread(post, {"tool": "read", "args": {"path": "hello.txt"}}, None))[0], 401)
        self.assertEqual(await deferToThread(post, {"tool": "exec", "args": {"command": "id"}}), (404, {"ok": False, "error": {"type": "not_found", "message": "tool not available over HTTP: exec"}}))
        status, body = await deferToThread(post, {"tool": "read", "args": {"path": "hello.txt"}})
        self.assertEqual((status, body), (200, {"ok": True, "result": "hi from the workspace"}))
        status, _, _ = await deferToThread(raw, self.service.port, "GET", "/tools/invoke")
        self.assertEqual(status, 405)
