"""Profiles, state directories and derived ports."""

from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from openclaw.paths import ProfileError, derive_ports, resolve_layout


class LayoutTests(SynchronousTestCase):
    home = {"HOME": "/home/u"}

    def test_default(self):
        """No profile: ~/.openclaw, config inside it, base port 18789."""
        layout = resolve_layout(self.home)
        self.assertEqual(layout.state_dir, Path("/home/u/.openclaw"))
        self.assertEqual(layout.config_path, Path("/home/u/.openclaw/openclaw.json"))
        self.assertEqual(layout.default_port, 18789)
        self.assertEqual(layout.log_file, Path("/home/u/.openclaw/logs/gateway.log"))

    def test_profile(self):
        """--profile NAME moves state and config to ~/.openclaw-NAME and its base port to a slot of its own."""
        layout = resolve_layout(self.home, profile="work")
        self.assertEqual(layout.state_dir, Path("/home/u/.openclaw-work"))
        self.assertEqual(layout.config_path, Path("/home/u/.openclaw-work/openclaw.json"))
        self.assertEqual(layout.default_port, 18929)
        self.assertEqual(resolve_layout(self.home, profile="default").default_port, 18789)

    def test_profile_ports_are_spaced(self):
        """Every named profile's base port is 18789 + 20k: its derived ports never meet the default's or dev's."""
        from openclaw.paths import profile_port

        for name in ("a", "b", "work", "rescue", "main", "x" * 64):
            port = profile_port(name)
            self.assertEqual((port - 18789) % 20, 0)
            self.assertTrue(18809 <= port <= 19769)
            for other in (18789, 19001):
                self.assertGreaterEqual(abs(port - other), 5)

    def test_profile_from_env(self):
        """OPENCLAW_PROFILE applies when no flag is given; the flag wins."""
        env = {**self.home, "OPENCLAW_PROFILE": "a"}
        self.assertEqual(resolve_layout(env).state_dir, Path("/home/u/.openclaw-a"))
        self.assertEqual(resolve_layout(env, profile="b").state_dir, Path("/home/u/.openclaw-b"))

    def test_dev(self):
        """--dev is ~/.openclaw-dev with base port 19001."""
        layout = resolve_layout(self.home, dev=True)
        self.assertEqual(layout.state_dir, Path("/home/u/.openclaw-dev"))
        self.assertEqual(layout.default_port, 19001)

    def test_state_dir_and_config_env(self):
        """OPENCLAW_STATE_DIR and OPENCLAW_CONFIG_PATH override; --config beats both."""
        env = {**self.home, "OPENCLAW_STATE_DIR": "/srv/oc", "OPENCLAW_CONFIG_PATH": "/etc/oc.json"}
        layout = resolve_layout(env, profile="x")
        self.assertEqual(layout.state_dir, Path("/srv/oc"))
        self.assertEqual(layout.config_path, Path("/etc/oc.json"))
        self.assertEqual(resolve_layout(env, config_path="/c.json5").config_path, Path("/c.json5"))

    def test_bad_profile(self):
        """A profile name that could escape the home folder is refused."""
        for name in ("../x", "a/b", "", ".hidden", "x" * 65):
            self.assertRaises(ProfileError, resolve_layout, self.home, profile=name)

    def test_two_profiles_do_not_share(self):
        """Two profiles get different state dirs; ports are derived per base port."""
        a = resolve_layout(self.home, profile="a")
        b = resolve_layout(self.home, profile="b")
        self.assertNotEqual(a.state_dir, b.state_dir)
        self.assertNotEqual(a.config_path, b.config_path)

    def test_derived_ports(self):
        """Bridge is P+1 and canvas P+4: 18790 and 18793 for 18789."""
        ports = derive_ports(18789)
        self.assertEqual((ports.gateway, ports.bridge, ports.canvas), (18789, 18790, 18793))
        dev = derive_ports(19001)
        self.assertEqual((dev.bridge, dev.canvas), (19002, 19005))
