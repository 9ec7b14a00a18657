"""JSON-lines records, redaction, level filtering and rotation."""

import io
import json
import os
import stat
from pathlib import Path

from twisted.logger import Logger, LogPublisher
from twisted.trial.unittest import SynchronousTestCase

from openclaw.logs import ConsoleObserver, JsonLinesObserver, LogFileService, Redactor, config_secrets, filtered


class Sink(io.BytesIO):
    def lines(self):
        return [json.loads(line) for line in self.getvalue().decode().splitlines()]


class RecordTests(SynchronousTestCase):
    def setUp(self):
        self.publisher = LogPublisher()
        self.sink = Sink()
        self.redactor = Redactor(["configured-token-123"])
        self.publisher.addObserver(JsonLinesObserver(self.sink, self.redactor))
        self.log = Logger(namespace="openclaw.http", observer=self.publisher)

    def test_schema(self):
        """Each line has ts, level, subsystem, msg, then the event's own fields."""
        self.log.warn("client {peer} sent {n} bytes", peer="1.2.3.4", n=5)
        [record] = self.sink.lines()
        self.assertEqual(list(record)[:4], ["ts", "level", "subsystem", "msg"])
        self.assertRegex(record["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual(
            {k: record[k] for k in ("level", "subsystem", "msg", "peer", "n")},
            {"level": "warn", "subsystem": "http", "msg": "client 1.2.3.4 sent 5 bytes", "peer": "1.2.3.4", "n": 5},
        )

    def test_secrets_redacted(self):
        """Configured secrets, bearer headers, secret-named fields and URL tokens never reach the file."""
        self.log.info(
            "auth {header} with {value} at {url}",
            header="Bearer abcdefghijkl",
            value="configured-token-123",
            url="https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawQ/getMe?token=zzz",
            token="configured-token-123",
            apiKey="sk-abcdefghijklmnopqrstu",
            nested={"password": "hunter22", "ok": "fine"},
        )
        line = self.sink.getvalue().decode()
        for secret in ("abcdefghijkl", "configured-token-123", "AAHdqTcv", "zzz", "sk-abc", "hunter22"):
            self.assertNotIn(secret, line)
        [record] = self.sink.lines()
        self.assertEqual(record["token"], "***")
        self.assertEqual(record["nested"], {"password": "***", "ok": "fine"})
        self.assertIn("Bearer ***", record["msg"])

    def test_failure(self):
        """A logged failure carries error and stack, redacted too."""
        try:
            raise ValueError("bad configured-token-123")
        except ValueError:
            self.log.failure("handler failed")
        [record] = self.sink.lines()
        self.assertEqual(record["level"], "fatal")
        self.assertEqual(record["error"], "ValueError: bad ***")
        self.assertIn("Traceback", record["stack"])
        self.assertNotIn("configured-token-123", record["stack"])

    def test_unserializable_fields(self):
        """Objects that are not JSON become text instead of breaking the log."""
        self.log.info("x", thing=object(), path=Path("/a"), raw=b"bytes")
        [record] = self.sink.lines()
        self.assertTrue(record["thing"].startswith("<object object"))
        self.assertEqual((record["path"], record["raw"]), ("/a", "bytes"))


class LevelTests(SynchronousTestCase):
    def test_filter(self):
        """Events below the level are dropped; silent drops everything."""
        for level, expected in (("debug", 3), ("info", 2), ("error", 1), ("silent", 0)):
            publisher, sink = LogPublisher(), Sink()
            publisher.addObserver(filtered(JsonLinesObserver(sink, Redactor()), level))
            log = Logger(namespace="openclaw.t", observer=publisher)
            log.debug("d")
            log.info("i")
            log.error("e")
            self.assertEqual(len(sink.lines()), expected, level)

    def test_console(self):
        """The console shows time, level (unless info), subsystem and message."""
        out = io.StringIO()
        publisher = LogPublisher()
        publisher.addObserver(ConsoleObserver(out, Redactor(["tok-secret"])))
        log = Logger(namespace="openclaw.gateway", observer=publisher)
        log.info("listening on {port}", port=1)
        log.warn("bad tok-secret")
        first, second = out.getvalue().splitlines()
        self.assertRegex(first, r"^\d\d:\d\d:\d\d \[gateway\] listening on 1$")
        self.assertRegex(second, r"^\d\d:\d\d:\d\d warn \[gateway\] bad \*\*\*$")

    def test_console_error_field(self):
        """An event with an `error` field (not a failure) is printed, not lost to a KeyError."""
        out = io.StringIO()
        publisher = LogPublisher()
        publisher.addObserver(ConsoleObserver(out, Redactor()))
        Logger(namespace="openclaw.agent", observer=publisher).warn("model failed: {error}", error="boom")
        self.assertRegex(out.getvalue(), r"warn \[agent\] model failed: boom\n$")


class SecretTests(SynchronousTestCase):
    def test_config_secrets(self):
        """Every secret-named config value and environment variable is collected by value; flags and numbers are not."""
        config = {
            "models": {"providers": {"a": {"apiKey": "key-aaaaaaaa", "maxTokens": 100}}},
            "channels": {"telegram": {"botToken": "123:bot-token-x", "accounts": [{"appToken": "xapp-zzzzzz"}]}},
            "gateway": {"auth": {"password": "pass-word-1"}},
            "hooks": {"token": "hook-tok-77", "enabled": True},
            "tools": {"allow": ["token"]},
        }
        env = {"OPENAI_API_KEY": "env-openai-1", "PATH": "/usr/bin", "SOME_TOKEN": "false"}
        self.assertEqual(
            config_secrets(config, env),
            {"key-aaaaaaaa", "123:bot-token-x", "xapp-zzzzzz", "pass-word-1", "hook-tok-77", "env-openai-1"},
        )

    def test_scrub(self):
        """scrub masks known values in every string of a JSON value and changes nothing else."""
        redactor = Redactor(["prov-key-123456"])
        value = {"error": "401: prov-key-123456 is wrong", "n": 3, "list": ["Bearer abcdefghijkl", {"token": "keep-shape"}]}
        self.assertEqual(redactor.scrub(value), {"error": "401: *** is wrong", "n": 3, "list": ["Bearer abcdefghijkl", {"token": "keep-shape"}]})


class FileServiceTests(SynchronousTestCase):
    def test_rotation_bounded(self):
        """The file rotates by size and keeps at most max_files archives, all 0600."""
        folder = Path(self.mktemp())
        publisher = LogPublisher()
        service = LogFileService(folder / "logs" / "gateway.log", "info", Redactor(), publisher, 2048, 3)
        service.startService()
        log = Logger(namespace="openclaw.t", observer=publisher)
        for i in range(200):
            log.info("line {i} " + "x" * 100, i=i)
        service.stopService()
        names = sorted(os.listdir(folder / "logs"))
        self.assertEqual(names, ["gateway.log", "gateway.log.1", "gateway.log.2", "gateway.log.3"])
        for name in names:
            self.assertEqual(stat.S_IMODE(os.stat(folder / "logs" / name).st_mode), 0o600)
        last = (folder / "logs" / "gateway.log").read_text().splitlines()[-1]
        self.assertEqual(json.loads(last)["i"], 199)

    def test_stop_detaches(self):
        """After stopService nothing more is written."""
        path = Path(self.mktemp()) / "g.log"
        publisher = LogPublisher()
        service = LogFileService(path, "info", Redactor(), publisher, 10**6, 2)
        service.startService()
        log = Logger(namespace="openclaw.t", observer=publisher)
        log.info("one")
        service.stopService()
        log.info("two")
        self.assertEqual(len(path.read_text().splitlines()), 1)
