# -*- test-case-name: tests.test_uiconfig -*-
"""
C{<basePath>control-ui-config.json}: the bootstrap settings upstream's v4
Control UI fetches from the origin that served it, before it connects
(also at upstream's older spelling C{<basePath>__openclaw/control-ui-config.json}).

Like upstream, the answer needs the gateway's bearer secret (the token or
password the UI holds; counted by the failure limiter like every other
guess): it names the assistant and this gateway's build. Its fields are
upstream's, with this gateway's truths: no terminal, no CLI agents, no
plugin frames; the assistant is the default agent's identity; upstream's
community invite only when C{gateway.controlUi.communityInvite} is true.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from twisted.web.server import Request

from openclaw import __version__
from openclaw.config.settings import GatewaySettings
from openclaw.web.bearer import BearerAuth
from openclaw.web.jsonpage import JsonError, write_json

DEFAULT_ASSISTANT = "OpenClaw"


def ui_config(settings: GatewaySettings, config: Mapping[str, Any]) -> dict[str, Any]:
    """The bootstrap settings for the config in force (C{config}: its last good version)."""
    agents = settings.agents
    agent = agents.entry(agents.default_id)
    name = (agent.identity_name or agent.name) if agent is not None else None
    base = settings.control_ui_base_path.rstrip("/")
    controls = (config.get("gateway") or {}).get("controlUi") or {}
    body: dict[str, Any] = {
        "basePath": base,
        "assistantName": name or DEFAULT_ASSISTANT,
        "assistantAgentId": agents.default_id,
        "serverVersion": __version__,
        "embedSandbox": controls.get("embedSandbox") if controls.get("embedSandbox") in ("strict", "scripts", "trusted") else "scripts",
        "allowExternalEmbedUrls": controls.get("allowExternalEmbedUrls") is True,
        "automaticallyFetchFavicons": controls.get("automaticallyFetchFavicons") is not False,
        "communityInvite": controls.get("communityInvite") is True,  # upstream's community, not this gateway's: opt in
        "terminalEnabled": False,  # no terminal sessions on this gateway
        "cliAgentsEnabled": False,  # no external CLI agents either
        "pluginAssetsRequireAuth": settings.auth.mode != "none",
        "pluginFrameGrants": [],
    }
    if agent is not None and agent.identity_emoji:
        body["assistantAvatar"] = agent.identity_emoji
    seam = (config.get("ui") or {}).get("seamColor")
    if isinstance(seam, str) and seam.strip():
        body["seamColor"] = seam.strip()
    return body


class UiConfig:
    """Answers the bootstrap config for L{openclaw.web.controlui.ControlUi} (GET and HEAD)."""

    def __init__(self, bearer: BearerAuth, settings: GatewaySettings, config: Callable[[], Mapping[str, Any]]) -> None:
        self.bearer = bearer
        self.settings = settings
        self.config = config

    def render(self, request: Request) -> bytes:
        bearer = self.bearer.authorize(request)
        if bearer.retry_after is not None:
            request.setHeader(b"Retry-After", str(bearer.retry_after).encode())
            return JsonError(429, "rate_limited", "Too many failed authentication attempts; retry later.").render(request)
        if not bearer.ok:
            request.setHeader(b"WWW-Authenticate", b"Bearer")
            return JsonError(401, "unauthorized", "Send the gateway token (or password) as a bearer token.").render(request)
        body = write_json(request, 200, ui_config(self.settings, self.config()))
        request.setHeader(b"Cache-Control", b"no-cache")
        return body
