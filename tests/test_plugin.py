"""The twistd plugin: found in-process, and from a real wheel in a fresh venv."""

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
from twisted.trial.unittest import SynchronousTestCase

from tests.helpers import REPO


class PluginTests(SynchronousTestCase):
    def test_discovered(self):
        """getPlugins(IServiceMaker) offers `openclaw`, pointing at openclaw.tap."""
        makers = {m.tapname: m for m in getPlugins(IServiceMaker)}
        self.assertIn("openclaw", makers)
        self.assertEqual(makers["openclaw"].module, "openclaw.tap")

    def test_dropin_is_light(self):
        """Importing the dropin imports neither the reactor nor openclaw.tap."""
        code = (
            "import sys, importlib.util\n"
            f"spec = importlib.util.spec_from_file_location('p', {str(REPO / 'twisted/plugins/openclaw_plugin.py')!r})\n"
            "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
            "print('twisted.internet.reactor' in sys.modules, 'openclaw.tap' in sys.modules, 'autobahn' in sys.modules)\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        self.assertEqual(out.split(), ["False", "False", "False"])

    def test_no_init_in_plugins(self):
        """twisted/plugins has no __init__.py (it would shadow Twisted's own)."""
        self.assertFalse((REPO / "twisted" / "plugins" / "__init__.py").exists())
        self.assertFalse((REPO / "twisted" / "__init__.py").exists())


class FreshVenvTests(SynchronousTestCase):
    """A non-editable wheel install, outside the checkout, lists the plugin."""

    def test_wheel_in_fresh_venv(self):
        """`twistd --help` lists openclaw and `twistd -n openclaw --help` shows its options."""
        work = Path(self.mktemp()).resolve()
        work.mkdir()
        dist = work / "dist"
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(dist), str(REPO)],
            check=True,
            capture_output=True,
            cwd=str(work),
        )
        [wheel] = list(dist.glob("openclaw_twisted-*.whl"))
        venv = work / "venv"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        python = venv / "bin" / "python"
        site = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
        # Dependencies come from this venv (no network); the checkout is not on the path.
        (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
            check=True,
            capture_output=True,
        )
        self.assertTrue((site / "twisted" / "plugins" / "openclaw_plugin.py").exists())
        self.assertFalse((site / "twisted" / "plugins" / "__init__.py").exists())
        self.assertTrue((site / "openclaw" / "web" / "a2ui" / "a2ui.js").exists())  # package data ships
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(work)}
        # every subpackage made it into the wheel: the whole service and CLI import
        where = subprocess.run(
            [str(python), "-c", "import openclaw, openclaw.service, openclaw.cli.main; print(openclaw.__file__)"],
            env=env, cwd=str(work), capture_output=True, text=True, check=True,
        ).stdout
        self.assertTrue(where.startswith(str(site)), where)
        twistd = [str(python), "-c", "import sys; sys.argv[0] = 'twistd'; from twisted.scripts.twistd import run; run()"]
        listing = subprocess.run([*twistd, "--help"], env=env, cwd=str(work), capture_output=True, text=True)
        self.assertIn("openclaw", listing.stdout, listing.stderr)
        helptext = subprocess.run([*twistd, "-n", "openclaw", "--help"], env=env, cwd=str(work), capture_output=True, text=True)
        self.assertIn("--allow-unconfigured", helptext.stdout, helptext.stderr)
