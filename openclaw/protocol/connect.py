# -*- test-case-name: tests.test_protocol -*-
"""The shape of C{connect} params (v3 and v4 together), roles and scopes."""

from __future__ import annotations

from openclaw.shape import Any_, Bool, Int, List, Obj, Str

CLIENT_IDS = (
    "webchat-ui",
    "openclaw-control-ui",
    "openclaw-browser-copilot",
    "openclaw-tui",
    "webchat",
    "cli",
    "gateway-client",
    "openclaw-macos",
    "openclaw-linux",
    "openclaw-ios",
    "openclaw-watchos",
    "openclaw-android",
    "node-host",
    "openclaw-worker",
    "test",
    "fingerprint",
    "openclaw-probe",
    # names from before the OpenClaw rename, still in the v3 schema
    "clawdbot-control-ui",
    "clawdbot-macos",
    "clawdbot-probe",
)
CLIENT_MODES = ("webchat", "cli", "ui", "backend", "node", "worker", "probe", "test")
BROWSER_CLIENTS = ("webchat-ui", "openclaw-control-ui", "clawdbot-control-ui", "webchat", "openclaw-browser-copilot")
# Operator UIs that must prove a device identity unless allowInsecureAuth is set.
CONTROL_UI_CLIENTS = ("webchat-ui", "openclaw-control-ui", "clawdbot-control-ui", "openclaw-tui")

ROLE_OPERATOR = "operator"
ROLE_NODE = "node"
ROLE_CHANNEL = "channel"  # an out-of-process channel adapter (ours: upstream knows operator, node, worker)

READ = "operator.read"
WRITE = "operator.write"
ADMIN = "operator.admin"
APPROVALS = "operator.approvals"
PAIRING = "operator.pairing"
TALK = "operator.talk"
QUESTIONS = "operator.questions"
OPERATOR_SCOPES = (ADMIN, READ, WRITE, APPROVALS, PAIRING, TALK, "operator.talk.secrets", QUESTIONS, "operator.sessions.read", "operator.sessions.write")

_NONEMPTY = Str(nonempty=True)
_STRINGS = List(_NONEMPTY)

CONNECT_PARAMS = Obj(
    {
        "minProtocol": Int(1),
        "maxProtocol": Int(1),
        "client": Obj(
            {
                "id": Str(CLIENT_IDS),
                "displayName": _NONEMPTY,
                "version": _NONEMPTY,
                "buildId": Str(nonempty=True, max_length=96),
                "platform": _NONEMPTY,
                "deviceFamily": _NONEMPTY,
                "modelIdentifier": _NONEMPTY,
                "timeZone": Str(max_length=64),
                "mode": Str(CLIENT_MODES),
                "instanceId": _NONEMPTY,
            },
            required=("id", "version", "platform", "mode"),
            closed=True,
        ),
        "caps": _STRINGS,
        "commands": _STRINGS,
        "permissions": Obj(rest=Bool(), closed=True),
        "pathEnv": Str(),
        "role": _NONEMPTY,
        "scopes": _STRINGS,
        "device": Obj(
            {"id": _NONEMPTY, "publicKey": _NONEMPTY, "signature": _NONEMPTY, "signedAt": Int(0), "nonce": _NONEMPTY},
            required=("id", "publicKey", "signature", "signedAt"),
            closed=True,
        ),
        "auth": Obj(
            {
                "token": Str(),
                "password": Str(),
                "deviceToken": Str(),
                "bootstrapToken": Str(),
                "approvalRuntimeToken": Str(),
                "agentRuntimeIdentityToken": Str(),
            },
            closed=True,
        ),
        "locale": Str(),
        "userAgent": Str(),
        "computerUse": Any_(),
        "workerRuns": Any_(),
        "modelCatalog": Any_(),
    },
    required=("minProtocol", "maxProtocol", "client"),
    closed=True,
)
