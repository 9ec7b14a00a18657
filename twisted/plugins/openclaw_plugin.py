# Loaded by twistd's plugin scan: keep it to one lazy line (no reactor import).
from twisted.application.service import ServiceMaker

openclaw = ServiceMaker(
    "OpenClaw Gateway",
    "openclaw.tap",
    "The OpenClaw Gateway: WebSocket control plane, node bridge, canvas and channels.",
    "openclaw",
)
