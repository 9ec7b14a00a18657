# -*- test-case-name: tests.test_config -*-
"""
The shape of C{openclaw.json}.

Sections this gateway does not interpret yet are accepted as they are (they
belong to other subsystems); unknown keys are warnings, never refusals, so a
config written by a newer or older OpenClaw still starts.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import attrs

from openclaw.config.errors import Issue
from openclaw.shape import Any_, check, Bool, Duration, Either, Int, Kind, Lenient, List, Num, Obj, Str

FREE = Obj(rest=Any_())
PORT = Int(1, 65535)
STRINGS = List(Str())
LOG_LEVELS = ("silent", "fatal", "error", "warn", "info", "debug", "trace")
BIND_MODES = ("loopback", "lan", "tailnet", "auto", "custom")
AUTH_MODES = ("none", "token", "password", "trusted-proxy")

# First path segments the gateway port already serves; the Control UI may not shadow them.
RESERVED_PATHS = ("health", "healthz", "v1", "tools", "__openclaw__")
_SEGMENT = re.compile(r"^[A-Za-z0-9_~-][A-Za-z0-9._~-]*$")


@attrs.frozen
class BasePath(Kind):
    """A URL path prefix such as C{/} or C{/openclaw}: plain segments, none reserved."""

    description = 'a path such as "/" or "/openclaw"'

    def check(self, value: Any, path: str, errors: list[Issue], warnings: list[Issue]) -> None:
        if not isinstance(value, str) or not value.startswith("/"):
            errors.append(Issue(path, f"expected {self.description}, got {value!r}"))
            return
        segments = [s for s in value.split("/") if s]
        bad = next((s for s in segments if not _SEGMENT.match(s)), None)
        if bad is not None:
            errors.append(Issue(path, f"invalid path segment {bad!r} (use letters, digits, '-', '_', '.', '~')"))
        elif segments and segments[0] in RESERVED_PATHS:
            errors.append(Issue(path, f"/{segments[0]} is served by the gateway already, pick another base path"))

    def json_schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": "^/"}


TLS = Obj({"enabled": Bool(), "autoGenerate": Bool(), "certPath": Str(), "keyPath": Str(), "caPath": Str()})

GATEWAY = Obj(
    {
        "mode": Str(("local", "remote", "cloud")),  # "cloud": the seed's name for local (config/aliases.py)
        "port": PORT,
        "bind": Str(BIND_MODES),
        "customBindHost": Str(nonempty=True),
        "maxConnections": Int(1, 100_000),
        "preauth": Obj({"maxPerAddress": Int(1, 100_000), "timeoutMs": Int(100, 3_600_000)}),
        "allowInsecureAuth": Bool(),
        "trustedProxies": STRINGS,
        "allowRealIpFallback": Bool(),
        "auth": Obj(
            {
                "mode": Str(AUTH_MODES),
                "token": Str(),
                "password": Str(),
                "allowTailscale": Bool(),
                "rateLimit": Obj(
                    {
                        "maxAttempts": Int(1),
                        "windowMs": Int(1),
                        "lockoutMs": Int(0),
                        "exemptLoopback": Bool(),
                    }
                ),
                "trustedProxy": FREE,
            }
        ),
        "controlUi": Obj(
            {
                "enabled": Bool(),
                "basePath": BasePath(),
                "root": Str(),
                "allowedOrigins": STRINGS,
                "allowInsecureAuth": Bool(),
                "dangerouslyDisableDeviceAuth": Bool(),
                # told to upstream's v4 UI in <basePath>control-ui-config.json (web/uiconfig.py)
                "embedSandbox": Str(("strict", "scripts", "trusted")),
                "allowExternalEmbedUrls": Bool(),
                "automaticallyFetchFavicons": Bool(),
                "communityInvite": Bool(),
            }
        ),
        "remote": Obj(
            {
                "url": Str(),
                "transport": Str(("ssh", "direct")),
                "token": Str(),
                "password": Str(),
                "tlsFingerprint": Str(),
                "sshTarget": Str(),
                "sshIdentity": Str(),
                "remotePort": PORT,
            }
        ),
        "tailscale": Obj({"mode": Str(("off", "serve", "funnel")), "resetOnExit": Bool()}),
        "tls": TLS,
        "nodes": Obj(
            {
                "pairing": Obj({"autoApproveLocal": Bool(), "autoApproveCidrs": STRINGS, "sshVerify": Bool()}),
                "commands": Obj({"allow": STRINGS, "deny": STRINGS}),
                "browser": FREE,
                "pluginTools": FREE,
                "allowSkills": Any_(),
            }
        ),
        "http": FREE,
        "tools": Obj({"deny": STRINGS, "allow": STRINGS}),
        "reload": Obj({"mode": Str(("hybrid", "hot", "restart", "off")), "debounceMs": Int(0)}),
        "sandbox": Obj(
            {
                "mode": Str(("off", "non-main", "all")),
                "enabled": Bool(),  # the seed's switch: true is mode "non-main", false is "off"
                "backend": Str(("bubblewrap", "docker")),
                "allowNetwork": Bool(),
                # "workspace" (the seed's value) is false: the session workspace only
                "allowFileSystem": Either((Bool(), Str(("workspace",)), STRINGS)),
                "image": Str(),
                "pidsLimit": Int(1),
                "memory": Either((Int(1), Str(nonempty=True))),
            }
        ),
    }
)

LOGGING = Obj(
    {
        "level": Str(LOG_LEVELS),
        "consoleLevel": Str(LOG_LEVELS),
        "file": Str(nonempty=True),
        "format": Str(("pretty", "compact", "json")),
        "consoleStyle": Str(("pretty", "compact", "json")),
        "maxFileBytes": Int(1024),
        "maxFiles": Int(1, 100),
        "redactSensitive": Str(("off", "tools")),
        "redactPatterns": STRINGS,
    }
)

PAIRING = Obj({"enabled": Bool(), "codeExpiry": Duration(), "maxPending": Int(1, 1000)})

BRIDGE = Obj({"enabled": Bool(), "port": PORT, "tls": TLS})  # binds where gateway.bind says

CANVAS_HOST = Obj({"enabled": Bool(), "root": Str(), "port": PORT, "liveReload": Bool()})

DISCOVERY = Obj(
    {
        "mdns": Obj({"enabled": Bool(), "mode": Str(("off", "minimal", "full"))}),
        "wideArea": FREE,
    }
)

# channels.<id>: the keys every channel shares, then each platform's own.
ALLOW_LIST = List(Either((Str(), Int())))
TOPIC = Obj({"requireMention": Bool(), "enabled": Bool(), "allowFrom": ALLOW_LIST, "systemPrompt": Str(), "skills": Any_()})
GROUP = Obj({**TOPIC.fields, "topics": Obj(rest=TOPIC)})
CHANNEL_COMMON = {
    "enabled": Bool(),
    "name": Str(),
    "dmPolicy": Str(("pairing", "allowlist", "open", "disabled")),
    "allowFrom": ALLOW_LIST,
    "groupPolicy": Str(("allowlist", "open", "disabled")),
    "groupAllowFrom": ALLOW_LIST,
    "groups": Obj(rest=GROUP),
    "textChunkLimit": Int(64, 100_000),
    "replyToMode": Str(("off", "first", "all")),
}
TELEGRAM_ACCOUNT = Obj(
    {
        **CHANNEL_COMMON,
        "botToken": Str(),
        "tokenFile": Str(),
        "apiRoot": Str(nonempty=True),
        "linkPreview": Bool(),
        "pollTimeoutSeconds": Int(0, 50),
        "timeoutSeconds": Int(1, 600),
        "deleteWebhookOnStart": Bool(),
        "webhookUrl": Str(),
        "webhookSecret": Str(),
        "webhookPath": Str(nonempty=True),
    }
)
TELEGRAM = Obj({**TELEGRAM_ACCOUNT.fields, "accounts": Obj(rest=TELEGRAM_ACCOUNT)})
SLACK_ACCOUNT = Obj(
    {
        **CHANNEL_COMMON,
        "mode": Str(("socket", "http")),
        "botToken": Str(),
        "appToken": Str(),
        "signingSecret": Str(),
        "webhookPath": Str(nonempty=True),
        "apiBase": Str(nonempty=True),
        "timeoutSeconds": Int(1, 600),
    }
)
SLACK = Obj({**SLACK_ACCOUNT.fields, "accounts": Obj(rest=SLACK_ACCOUNT)})
WHATSAPP_ACCOUNT = Obj(
    {
        **CHANNEL_COMMON,
        "transport": Str(("web", "cloud")),
        # web: a linked device through a helper process
        "bridgeCommand": Either((Str(nonempty=True), List(Str(nonempty=True)))),
        "authDir": Str(nonempty=True),
        "selfChatMode": Bool(),
        "sendReadReceipts": Bool(),
        "pingSeconds": Int(1, 3600),
        "pingTimeoutSeconds": Int(1, 600),
        # cloud: the Cloud API (Graph API + webhook)
        "accessToken": Str(),
        "accessTokenFile": Str(),
        "phoneNumberId": Either((Str(), Int())),
        "appSecret": Str(),
        "verifyToken": Str(),
        "webhookPath": Str(nonempty=True),
        "graphBase": Str(nonempty=True),
        "graphVersion": Str(nonempty=True),
        "timeoutSeconds": Int(1, 600),
        # upstream keys this gateway accepts and does not act on yet
        "configWrites": Bool(),
        "mediaMaxMb": Any_(),
        "ackReaction": Any_(),
        "historyLimit": Any_(),
        "dmHistoryLimit": Any_(),
        "dms": Any_(),
        "actions": Any_(),
        "messagePrefix": Any_(),
        "chunkMode": Any_(),
    }
)
WHATSAPP = Obj({**WHATSAPP_ACCOUNT.fields, "accounts": Obj(rest=WHATSAPP_ACCOUNT)})
IMESSAGE_ACCOUNT = Obj(
    {
        **CHANNEL_COMMON,
        "cliPath": Str(nonempty=True),
        "dbPath": Str(nonempty=True),
        "service": Str(("imessage", "sms", "auto")),
        "region": Str(nonempty=True),
        "includeAttachments": Bool(),
        "timeoutSeconds": Int(1, 600),
    }
)
IMESSAGE = Obj({**IMESSAGE_ACCOUNT.fields, "accounts": Obj(rest=IMESSAGE_ACCOUNT)})
SIGNAL_ACCOUNT = Obj(
    {
        **CHANNEL_COMMON,
        "account": Str(nonempty=True),
        "httpUrl": Str(nonempty=True),
        "httpHost": Str(nonempty=True),
        "httpPort": PORT,
        "timeoutSeconds": Int(1, 600),
        "idleTimeoutSeconds": Int(1, 3600),
        "mediaMaxMb": Int(1, 100),
    }
)
SIGNAL = Obj({**SIGNAL_ACCOUNT.fields, "accounts": Obj(rest=SIGNAL_ACCOUNT)})
DISCORD_ACCOUNT = Obj(
    {
        **CHANNEL_COMMON,
        "token": Str(),
        "tokenFile": Str(),
        "apiBase": Str(nonempty=True),
        "intents": Obj({"messageContent": Bool()}),
        "allowBots": Bool(),
        "timeoutSeconds": Int(1, 600),
    }
)
DISCORD = Obj({**DISCORD_ACCOUNT.fields, "accounts": Obj(rest=DISCORD_ACCOUNT)})
MATRIX_GROUP = Obj({**GROUP.fields, "allow": Bool(), "users": ALLOW_LIST})  # upstream's room spellings
MATRIX_ACCOUNT = Obj(
    {
        **CHANNEL_COMMON,
        "groups": Obj(rest=MATRIX_GROUP),
        "rooms": Obj(rest=MATRIX_GROUP),
        "dm": Obj({"policy": Str(("pairing", "allowlist", "open", "disabled")), "allowFrom": ALLOW_LIST, "enabled": Bool()}),
        "homeserver": Str(nonempty=True),
        "userId": Str(),
        "accessToken": Str(),
        "password": Str(),
        "deviceName": Str(),
        "encryption": Bool(),  # accepted so upstream configs load; E2EE is not supported (status says so)
        "threadReplies": Str(("off", "inbound", "always")),
        "autoJoin": Str(("always", "allowlist", "off")),
        "autoJoinAllowlist": ALLOW_LIST,
        "syncTimeoutSeconds": Int(0, 120),
        "timeoutSeconds": Int(1, 600),
    }
)
MATRIX = Obj({**MATRIX_ACCOUNT.fields, "accounts": Obj(rest=MATRIX_ACCOUNT)})
IRC_ACCOUNT = Obj(
    {
        **CHANNEL_COMMON,
        "host": Str(nonempty=True),
        "port": PORT,
        "tls": Bool(),
        "tlsCaFile": Str(),
        "nick": Str(nonempty=True),
        "username": Str(),
        "realname": Str(),
        "password": Str(),
        "passwordFile": Str(),
        "channels": STRINGS,
        "nickserv": Obj({"enabled": Bool(), "service": Str(), "password": Str(), "passwordFile": Str(), "register": Bool(), "registerEmail": Str()}),
        "sasl": Obj({"username": Str(), "password": Str(), "passwordFile": Str()}),
        "mentionPatterns": STRINGS,
        "dangerouslyAllowNameMatching": Bool(),
        "lineRate": Any_(),  # seconds between lines after a burst (a number; 0 turns pacing off)
        "pingIntervalSeconds": Int(1, 3600),
        "pingTimeoutSeconds": Int(1, 600),
        "connectTimeoutSeconds": Int(1, 300),
    }
)
IRC = Obj({**IRC_ACCOUNT.fields, "accounts": Obj(rest=IRC_ACCOUNT)})
CHANNELS = Obj({"telegram": TELEGRAM, "slack": SLACK, "whatsapp": WHATSAPP, "imessage": IMESSAGE, "signal": SIGNAL, "discord": DISCORD, "matrix": MATRIX, "irc": IRC}, rest=Obj(rest=Any_()))  # other platforms (adapters, upstream-only ones) check their own sections
# Sections whose readers check them themselves and fall back from values they
# cannot use (saying so): never refused, described for the Control UI's form.
# Keys not named here are kept as they are (upstream's, other subsystems').
MODEL_REF = Either((Obj({"primary": Str(nonempty=True), "fallbacks": STRINGS}, rest=Any_()), Str(nonempty=True)))
HEARTBEAT = Obj(
    {
        "every": Either((Str(nonempty=True), Int(0))),
        "prompt": Str(),
        "target": Str(),
        "to": Str(),
        "ackMaxChars": Int(0),
        "session": Str(),
        "model": Str(),
        "activeHours": Obj({"start": Str(), "end": Str(), "timezone": Str()}, rest=Any_()),
    },
    rest=Any_(),
)
MODEL = Obj(
    {"id": Str(nonempty=True), "name": Str(), "alias": Str(), "contextWindow": Int(1), "maxTokens": Int(1), "reasoning": Bool(), "input": STRINGS},
    rest=Any_(),
)
PROVIDER = Obj({"baseUrl": Str(), "apiKey": Str(), "api": Str(), "models": List(MODEL)}, rest=Any_())
MODELS = Obj({"providers": Obj(rest=PROVIDER)}, rest=Any_())
TOOLS = Obj({"allow": STRINGS, "deny": STRINGS, "agentToAgent": Obj({"enabled": Bool(), "allow": STRINGS}, rest=Any_())}, rest=Any_())
SESSION = Obj({"idleMinutes": Num(0), "reset": Obj({"mode": Str(("daily", "off")), "atHour": Int(0, 23)}, rest=Any_())}, rest=Any_())
CRON = Obj({"enabled": Bool(), "store": Str(), "maxConcurrentRuns": Int(1, 32), "missedRuns": Str(("run-once", "skip"))}, rest=Any_())
AGENT = Obj(
    {
        "id": Str(nonempty=True),
        "name": Str(),
        "default": Bool(),
        "model": MODEL_REF,
        "identity": Obj({"name": Str(), "emoji": Str()}, rest=Any_()),
        "heartbeat": HEARTBEAT,
    },
    rest=Any_(),
)

# Memory search (openclaw/agent/memory/settings.py reads it; clamps weights to 0..1).
MEMORY_SEARCH = Obj(
    {
        "enabled": Bool(),
        "sources": STRINGS,
        "extraPaths": STRINGS,
        "experimental": FREE,
        "provider": Str(("openai", "ollama", "local", "gemini", "voyage", "mistral")),
        "remote": Obj({"baseUrl": Str(), "apiKey": Str(), "headers": Obj(rest=Str()), "batch": FREE}),
        "fallback": Str(("openai", "ollama", "gemini", "local", "voyage", "mistral", "none")),
        "model": Str(),
        "local": FREE,
        "store": Obj({"driver": Str(("sqlite",)), "path": Str(nonempty=True), "vector": FREE}),
        "chunking": Obj({"tokens": Int(1), "overlap": Int(0)}),
        "sync": Obj({"onSessionStart": Bool(), "onSearch": Bool(), "watch": Bool(), "watchDebounceMs": Int(0), "intervalMinutes": Int(0), "sessions": FREE}),
        "query": Obj(
            {
                "maxResults": Int(1),
                "minScore": Num(0),
                "hybrid": Obj({"enabled": Bool(), "vectorWeight": Num(0), "textWeight": Num(0), "candidateMultiplier": Int(1), "mmr": FREE, "temporalDecay": FREE}),
            }
        ),
        "cache": Obj({"enabled": Bool(), "maxEntries": Int(1)}),
    }
)

MEMORY_FLUSH = Obj({"enabled": Bool(), "softThresholdTokens": Int(0), "prompt": Str(), "systemPrompt": Str()})

# Only the keys interpreted here are checked (memory); the keys the agents, the
# heartbeat and the catalog read fall back on values they cannot use (Lenient:
# described for the form, never refused); the rest of agents.* is accepted as it is.
AGENTS = Obj(
    {
        "defaults": Obj(
            {
                "memorySearch": MEMORY_SEARCH,
                "compaction": Obj({"memoryFlush": MEMORY_FLUSH}, rest=Any_()),
                "model": Lenient(MODEL_REF),
                "workspace": Lenient(Str()),
                "userTimezone": Lenient(Str()),
                "heartbeat": Lenient(HEARTBEAT),
            },
            rest=Any_(),
        ),
        "list": List(Obj({"memorySearch": MEMORY_SEARCH, "skills": STRINGS, **{k: Lenient(v) for k, v in AGENT.fields.items()}}, rest=Any_())),
    },
    rest=Any_(),
)

SKILLS = Obj(
    {
        "allowBundled": STRINGS,
        "load": Obj({"extraDirs": STRINGS, "watch": Bool(), "watchDebounceMs": Int(0)}),
        "install": FREE,
        "entries": Obj(rest=Obj({"enabled": Bool(), "apiKey": Str(), "env": Obj(rest=Str()), "config": FREE})),
    }
)

# Sections that later subsystems interpret; accepted as they are for now.
_OTHER_SECTIONS = (
    "meta wizard auth messages commands web talk "
    "plugins browser ui hooks broadcast diagnostics update audio approvals routing "
    "identity whatsapp telegram discord slack signal imessage memory secrets"
).split()

ROOT = Obj(
    {
        "$schema": Str(),
        "env": Obj({"vars": Obj(rest=Str()), "shellEnv": FREE}, rest=Str()),
        "gateway": GATEWAY,
        "logging": LOGGING,
        "pairing": PAIRING,
        "canvasHost": CANVAS_HOST,
        "bridge": BRIDGE,
        "discovery": DISCOVERY,
        "channels": CHANNELS,
        "agents": AGENTS,
        "skills": SKILLS,
        "models": Lenient(MODELS),
        "tools": Lenient(TOOLS),
        "session": Lenient(SESSION),
        "cron": Lenient(CRON),
        **{name: Any_() for name in _OTHER_SECTIONS},
    }
)


def validate(config: Mapping[str, Any]) -> tuple[list[Issue], list[Issue]]:
    """Return C{(errors, warnings)} for a parsed config."""
    return check(ROOT, config)
