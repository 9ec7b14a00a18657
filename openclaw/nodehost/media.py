# -*- test-case-name: tests.test_nodehost -*-
"""
Camera and screen capture through ffmpeg on Linux: C{camera.snap} (v4l2)
and C{screen.record} (x11grab). Offered only when ffmpeg and the device
(a C{/dev/video*} camera, an X C{DISPLAY}) exist on this host.
"""

from __future__ import annotations

import base64
import glob
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Awaitable, Callable

from openclaw.nodehost.errors import CommandError

MAX_CLIP_MS = 60_000
MAX_BASE64_BYTES = 5 * 1024 * 1024

Runner = Callable[[list[str], float], Awaitable[Any]]  # NodeCommands.run_process


class FfmpegMedia:
    def __init__(self, run: Runner, path_env: str, env: dict[str, str] | None = None) -> None:
        self.run = run
        self.env = dict(os.environ if env is None else env)
        self.ffmpeg = shutil.which("ffmpeg", path=path_env)

    def cameras(self) -> list[str]:
        return sorted(glob.glob("/dev/video*"))

    def commands(self) -> list[str]:
        if self.ffmpeg is None:
            return []
        offered = []
        if self.cameras():
            offered += ["camera.list", "camera.snap"]
        if self.env.get("DISPLAY"):
            offered.append("screen.record")
        return offered

    async def _capture(self, args: list[str], suffix: str, timeout: float) -> bytes:
        if self.ffmpeg is None:
            raise CommandError("UNAVAILABLE", "command not supported: ffmpeg is not installed")
        with tempfile.TemporaryDirectory(prefix="openclaw-media-") as folder:
            out = Path(folder) / f"capture{suffix}"
            ran = await self.run([self.ffmpeg, "-hide_banner", "-loglevel", "error", "-y", *args, str(out)], timeout)
            if ran.code != 0 or not out.exists():
                detail = ran.stderr.decode("utf-8", "replace").strip()[-300:] or f"exit {ran.code}"
                raise CommandError("UNAVAILABLE", f"ffmpeg failed: {detail}")
            data = out.read_bytes()
        if len(data) * 4 // 3 > MAX_BASE64_BYTES:
            raise CommandError("PAYLOAD_TOO_LARGE", f"capture is {len(data)} bytes; lower maxWidth/quality or duration")
        return data

    async def camera_list(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"devices": [{"id": d, "name": os.path.basename(d), "position": "unknown"} for d in self.cameras()]}

    async def camera_snap(self, params: dict[str, Any]) -> dict[str, Any]:
        cameras = self.cameras()
        device = params.get("deviceId") or (cameras[0] if cameras else None)
        if device not in cameras:
            raise CommandError("UNAVAILABLE", "no such camera")
        width = int(params.get("maxWidth") or 1600)
        quality = float(params.get("quality") or 0.9)
        qscale = max(2, min(31, int(round(31 - quality * 29))))
        data = await self._capture(["-f", "v4l2", "-i", device, "-frames:v", "1", "-vf", f"scale='min({width},iw)':-2", "-q:v", str(qscale)], ".jpg", 20)
        return {"format": "jpg", "base64": base64.b64encode(data).decode(), **_jpeg_size(data)}

    async def screen_record(self, params: dict[str, Any]) -> dict[str, Any]:
        display = self.env.get("DISPLAY")
        if not display:
            raise CommandError("UNAVAILABLE", "command not supported: no X display")
        duration = max(250, min(int(params.get("durationMs") or 3000), MAX_CLIP_MS))
        fps = max(1, min(int(params.get("fps") or 10), 30))
        args = ["-f", "x11grab", "-framerate", str(fps), "-i", display, "-t", f"{duration / 1000:.3f}", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"]
        data = await self._capture(args, ".mp4", duration / 1000 + 20)
        return {"format": "mp4", "base64": base64.b64encode(data).decode(), "durationMs": duration, "hasAudio": False}


def _jpeg_size(data: bytes) -> dict[str, int]:
    """Width and height from a JPEG's SOF marker (0 when not found)."""
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            return {"height": int.from_bytes(data[i + 5 : i + 7], "big"), "width": int.from_bytes(data[i + 7 : i + 9], "big")}
        i += 2 + length
    return {"width": 0, "height": 0}
