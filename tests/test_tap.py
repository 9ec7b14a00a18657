"""twistd options and makeService, without sockets."""


from twisted.application.service import IService
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from openclaw.tap import Options, makeService
from tests.helpers import base_env, scratch_home, write_config


class OptionsTests(SynchronousTestCase):
    def setUp(self):
        self.home = scratch_home(self)
        self.env = base_env(self.home)

    def parse(self, *argv, env=None):
        options = Options(env=env or self.env, tailnet=lambda: None)
        options.parseOptions(list(argv))
        return options

    def test_whole_dict(self):
        """Parsing fills every option and resolves settings."""
        options = self.parse("--port", "1234", "--allow-unconfigured", "--verbose")
        settings = options["settings"]
        self.assertEqual(
            {k: v for k, v in options.items() if k != "settings"},
            {
                "port": 1234,
                "bind": None,
                "config": None,
                "profile": None,
                "token": None,
                "password": None,
                "dev": 0,
                "allow-unconfigured": 1,
                "force": 0,
                "verbose": 1,
                "mdns": 0,
            },
        )
        self.assertEqual((settings.port, settings.hosts), (1234, ("127.0.0.1",)))
        self.assertEqual(settings.state_dir, self.home / ".openclaw")

    def test_config_file_and_profile(self):
        """--profile reads <home>/.openclaw-NAME/openclaw.json."""
        write_config(self.home / ".openclaw-p1" / "openclaw.json", {"gateway": {"mode": "local", "port": 4000}})
        settings = self.parse("--profile", "p1")["settings"]
        self.assertEqual((settings.port, settings.layout.profile), (4000, "p1"))

    def test_usage_errors(self):
        """Bad flags, invalid config, and refusals are UsageErrors with the reason."""
        cases = [
            (["--port", "http"], "--port"),
            (["--port", "70000"], "--port"),
            (["--bind", "wan"], "allowed: loopback"),
            ([], "gateway.mode"),
            (["--allow-unconfigured", "--bind", "lan"], "without auth"),
            (["--profile", "../x", "--allow-unconfigured"], "invalid profile"),
        ]
        for argv, text in cases:
            with self.assertRaises(usage.UsageError) as cm:
                self.parse(*argv)
            self.assertIn(text, str(cm.exception), argv)

    def test_invalid_config_message(self):
        """An invalid config names the key path in the UsageError."""
        write_config(self.home / ".openclaw" / "openclaw.json", '{gateway: {mode: "local", port: "x"}}')
        with self.assertRaises(usage.UsageError) as cm:
            self.parse()
        self.assertIn("gateway.port: expected an integer from 1 to 65535", str(cm.exception))


class MakeServiceTests(SynchronousTestCase):
    def test_listeners_on_memory_reactor(self):
        """makeService listens on the gateway port, canvas (P+4) and bridge (P+1) per bind host; start and stop work twice."""
        home = scratch_home(self)
        options = Options(env=base_env(home, OPENCLAW_GATEWAY_TOKEN="tok-123456"), tailnet=lambda: "100.64.0.7")
        options.parseOptions(["--bind", "tailnet", "--allow-unconfigured"])
        reactor = MemoryReactorClock()
        service = IService(makeService(options, reactor=reactor))
        for _ in range(2):
            service.privilegedStartService()
            service.startService()
            self.successResultOf(service.stopService())
        self.assertEqual(
            [(port, iface) for (port, _f, _b, iface) in reactor.tcpServers],
            [(18789, "100.64.0.7"), (18789, "127.0.0.1"), (18793, "100.64.0.7"), (18793, "127.0.0.1"), (18790, "100.64.0.7"), (18790, "127.0.0.1")] * 2,
        )
        self.assertTrue((home / ".openclaw" / "logs" / "gateway.log").exists())

    def test_two_services_in_one_process(self):
        """Two gateways on separate state dirs run side by side in one process."""
        reactor = MemoryReactorClock()
        services = []
        for name in ("a", "b"):
            options = Options(env=base_env(scratch_home(self)), tailnet=lambda: None)
            options.parseOptions(["--allow-unconfigured", "--profile", name])
            services.append(makeService(options, reactor=reactor))
        for s in services:
            s.startService()
        for s in services:
            self.successResultOf(s.stopService())
        self.assertEqual(len(reactor.tcpServers), 6)  # gateway, canvas and bridge each
