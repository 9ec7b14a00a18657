"""The Dockerfile: what it promises (non-root, bind lan, token from the environment, /health check), and a real build where an engine runs."""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import time
import urllib.request

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.helpers import REPO, free_port


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def engine() -> str:
    """The docker CLI, if it reaches an engine; else the test is skipped naming what is missing."""
    docker = shutil.which("docker")
    if docker is None:
        raise SkipTest("no docker CLI on PATH")
    try:
        info = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        raise SkipTest("docker engine not answering (docker info timed out)")
    if info.returncode != 0 or not info.stdout.strip():
        raise SkipTest("no docker engine reachable (docker info failed: the CLI is here, the daemon is not)")
    return docker


class DockerfileTests(SynchronousTestCase):
    def test_promises(self):
        """Runs as a non-root user, binds lan, bakes in no token, checks /health."""
        steps = instructions()
        users = [args for word, args in steps if word == "USER"]
        self.assertEqual(users[-1], "openclaw")
        cmd = json.loads(next(args for word, args in steps if word == "CMD"))
        self.assertEqual(cmd[:4], ["gateway", "run", "--bind", "lan"])
        self.assertEqual(json.loads(next(args for word, args in steps if word == "ENTRYPOINT")), ["openclaw"])
        health = next(args for word, args in steps if word == "HEALTHCHECK")
        self.assertIn("/health", health)
        env = " ".join(args for word, args in steps if word in ("ENV", "ARG"))
        self.assertNotIn("TOKEN", env)
        self.assertNotIn("PASSWORD", env)


class DockerBuildTests(SynchronousTestCase):
    def test_build_and_run(self):
        """Build the image, run it with a token from the environment: healthy, non-root, refuses without a token."""
        docker = engine()
        tag = f"openclaw-gateway-test:{secrets.token_hex(4)}"
        build = subprocess.run([docker, "build", "-t", tag, str(REPO)], capture_output=True, text=True, timeout=1800)
        self.assertEqual(build.returncode, 0, build.stderr[-2000:])
        self.addCleanup(subprocess.run, [docker, "rmi", "-f", tag], capture_output=True)
        port = free_port()
        token = secrets.token_hex(16)
        name = f"openclaw-test-{secrets.token_hex(4)}"
        run = subprocess.run([docker, "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:18789", "-e", f"OPENCLAW_GATEWAY_TOKEN={token}", tag], capture_output=True, text=True, timeout=120)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.addCleanup(subprocess.run, [docker, "rm", "-f", name], capture_output=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    self.assertEqual(r.status, 200)
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        uid = subprocess.run([docker, "exec", name, "id", "-u"], capture_output=True, text=True, timeout=30)
        self.assertNotEqual(uid.stdout.strip(), "0")
        refused = subprocess.run([docker, "run", "--rm", tag], capture_output=True, text=True, timeout=120)
        self.assertEqual(refused.returncode, 1)
        self.assertIn("without auth", refused.stderr)
