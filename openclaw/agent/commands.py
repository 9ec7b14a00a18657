# -*- test-case-name: tests.test_commands -*-
"""
Chat commands and directives: what a message starting with C{/} does before
the model sees it, on every surface (WebSocket C{chat.send} and C{agent},
and channels through L{ChatCommands.start}; the OpenAI-compatible C{/v1}
API is exempt).

  - B{commands} (the whole message): C{/new} and C{/reset} [text], C{/stop},
    C{/compact [instructions]}, C{/usage [off|tokens|full|cost]}, C{/help},
    C{/commands}, C{/status}, C{/whoami} (C{/id}). C{/help}, C{/commands},
    C{/status} and C{/whoami} also work inside a message: their answer opens
    the reply and the rest goes to the model.
  - B{directives}: C{/think <level>} (C{/thinking}, C{/t}), C{/verbose
    on|full|off} (C{/v}), C{/model [provider/model | N | list | status |
    default]} (C{/models}), C{/queue <mode>}. A message of directives only
    persists them to the session (as C{sessions.patch} does) and is
    acknowledged; inside a message they apply to that turn only.

Only authorized senders get any of this: operator connections with write
scope, and channel senders that are paired or allowlisted (the channel says
so in L{Sender}); C{commands.useAccessGroups: false} lets everyone. Anyone
else's text, slashes included, goes to the model as it is.

B{The channel hook}: a channel calls C{core.commands.start(session_key,
text, run_id, Sender(authorized=..., id=..., surface="telegram"),
agent_id=...)} instead of C{core.agent.start(...)}; it gets a
L{openclaw.interfaces.RunHandle} whose result text is the reply to deliver
(a command's answer, or the model's).
"""

from __future__ import annotations

import re
import time
from typing import Any, Awaitable, Callable, Mapping

import attrs

from openclaw.agent.catalog import catalog
from openclaw.agent.providers import resolve_ref
from openclaw.agent.runtime import AgentRuntime, Plan, Run, model_override
from openclaw.agent.sessions import agent_of
from openclaw.agent.usage import Window, format_usd, session_totals
from openclaw.agent.usage_methods import summarize
from openclaw.protocol.errors import INVALID_REQUEST, GatewayError

THINK_LEVELS = ("off", "minimal", "low", "medium", "high", "xhigh")
VERBOSE_LEVELS = ("on", "full", "off")
QUEUE_MODES = ("steer", "followup", "collect", "interrupt")
USAGE_MODES = ("off", "tokens", "full", "cost")
NATIVE_SURFACES = ("discord", "telegram", "slack")  # where commands.text: false turns text commands off

DIRECTIVES = {"think": "think", "thinking": "think", "t": "think", "verbose": "verbose", "v": "verbose", "model": "model", "models": "model", "queue": "queue"}
COMMANDS = {"new": "new", "reset": "new", "stop": "stop", "compact": "compact", "usage": "usage", "help": "help", "commands": "commands", "status": "status", "whoami": "whoami", "id": "whoami"}
SHORTCUTS = ("help", "commands", "status", "whoami")  # also inside a message

HELP = {
    "help": "this help",
    "commands": "the list of commands",
    "status": "model, tokens, context, queue and session",
    "whoami": "who you are to this gateway (alias /id)",
    "new": "start a new session (/reset; text after it is sent to the new one)",
    "stop": "stop the current run and what waits",
    "compact": "summarise older messages to free context (/compact [instructions])",
    "usage": "this session's tokens and cost; /usage off|tokens|full adds a usage line to replies; /usage cost: the last 30 days",
    "think": "thinking level: off, minimal, low, medium, high, xhigh (/t)",
    "verbose": "show tool calls: on, full, off (/v)",
    "model": "the session's model: /model list, /model <provider/model or number>, /model default",
    "queue": "what a message does while a run is going: steer, followup, collect, interrupt",
}


Work = Callable[[Run], Awaitable[str]]  # a command's reply, made when its run starts


@attrs.frozen
class Sender:
    """
    Who sent a message, as its surface knows them. C{authorized}: may use
    commands (an operator with write scope; a paired or allowlisted channel
    sender). C{id}, C{name}: what C{/whoami} shows. C{surface}: C{"webchat"}
    for the WebSocket, else the channel's id.
    """

    authorized: bool
    id: str | None = None
    name: str | None = None
    surface: str = "webchat"


@attrs.frozen
class CommandSettings:
    """C{commands.*} (upstream's keys; this gateway acts on C{text} and C{useAccessGroups})."""

    text: bool = True
    use_access_groups: bool = True

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "CommandSettings":
        raw = config.get("commands")
        block: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
        return cls(text=block.get("text", True) is not False, use_access_groups=block.get("useAccessGroups", True) is not False)


@attrs.frozen
class Directive:
    name: str  # think | verbose | model | queue
    value: str | None


@attrs.frozen
class Parsed:
    """A message split into its directives and shortcuts, and the text left for the model."""

    text: str
    directives: tuple[Directive, ...] = ()
    shortcuts: tuple[str, ...] = ()
    bad: Directive | None = None  # a lone directive with a missing or invalid value


def _word(token: str) -> tuple[str, str | None]:
    """C{"/think:high"} → C{("think", "high")}; C{"/think:"} → C{("think", None)}."""
    name, colon, rest = token[1:].partition(":")
    return name.lower(), (rest if colon and rest else None)


def _valid(name: str, value: str) -> bool:
    if name == "think":
        return value.lower() in THINK_LEVELS
    if name == "verbose":
        return value.lower() in VERBOSE_LEVELS
    if name == "queue":
        return value.lower() in (*QUEUE_MODES, "default", "reset")
    return bool(value) and not value.startswith("/")  # model: checked when applied


def parse(message: str) -> Parsed:
    """Directives (with a valid value) and shortcuts anywhere; the rest of the message, as written, is the text."""
    spans = [(m.start(), m.end(), m.group()) for m in re.finditer(r"\S+", message)]
    taken: list[tuple[int, int]] = []
    directives: list[Directive] = []
    shortcuts: list[str] = []
    i = 0
    while i < len(spans):
        start, end, token = spans[i]
        if token.startswith("/") and len(token) > 1:
            name, inline = _word(token)
            if name in DIRECTIVES:
                kind = DIRECTIVES[name]
                value = inline if inline is not None else (spans[i + 1][2] if i + 1 < len(spans) else None)
                if value is not None and _valid(kind, value):
                    directives.append(Directive(kind, value))
                    last = i if inline is not None else i + 1
                    taken.append((start, spans[last][1]))
                    i = last + 1
                    continue
                if len(spans) <= 2 and i == 0:
                    return Parsed("", bad=Directive(kind, value))  # "/think" or "/think banana" alone
            elif COMMANDS.get(name) in SHORTCUTS and inline is None:
                shortcuts.append(COMMANDS[name])
                taken.append((start, end))
        i += 1
    text = message
    for start, end in reversed(taken):
        text = text[:start] + text[end:]
    return Parsed(re.sub(r"[ \t]{2,}", " ", text).strip(), tuple(directives), tuple(shortcuts))


class ChatCommands:
    """The one way a person's message becomes a run: commands and directives first (see the module doc)."""

    def __init__(self, runtime: AgentRuntime) -> None:
        self.runtime = runtime

    def settings(self) -> CommandSettings:
        return CommandSettings.from_config(self.runtime.settings.config)

    def applies(self, sender: Sender) -> bool:
        """Whether this sender's slashes are commands here."""
        settings = self.settings()
        if not settings.text and sender.surface in NATIVE_SURFACES:
            return False
        return sender.authorized or not settings.use_access_groups

    # -- entry points

    def start(
        self,
        session_key: str,
        message: str,
        run_id: str,
        sender: Sender,
        agent_id: str | None = None,
        timeout: float | None = None,
        queue_mode: str | None = None,
        quiet: bool = False,
    ) -> Run:
        """
        The channel hook: start (or queue) what C{message} asks for; a known
        C{run_id} gives the existing run. The handle's result text is the reply.

        @raise QueueFull: too many runs wait in the session.
        @raise InvalidInput: the key cannot be used.
        """
        return self.submit(session_key, message, run_id, sender, agent_id, timeout, queue_mode, quiet)[0]

    def submit(
        self,
        session_key: str,
        message: str,
        run_id: str,
        sender: Sender,
        agent_id: str | None = None,
        timeout: float | None = None,
        queue_mode: str | None = None,
        quiet: bool = False,
        literal: bool = False,
    ) -> tuple[Run, bool]:
        """L{start}, and whether this call created the run (C{chat.send}, C{agent}); C{literal}: no commands (C{suppressCommandInterpretation})."""
        runtime = self.runtime
        existing = runtime.lookup(run_id)
        if existing is not None:
            return existing, False
        key = runtime.key(session_key, agent_id)
        entry = runtime.store(agent_of(key)).get(key) or {}
        mode = queue_mode or (entry.get("queueMode") if entry.get("queueMode") in QUEUE_MODES else None) or "followup"
        planned = self.plan(key, message, sender) if not literal and self.applies(sender) and "/" in message else None
        plan, text = planned if planned is not None else (None, message)
        return runtime.submit(key, text, run_id, timeout=timeout, queue_mode=mode, quiet=quiet, plan=plan)

    # -- what a message means

    def plan(self, key: str, message: str, sender: Sender) -> tuple[Plan, str] | None:
        """The L{Plan} for an authorized sender's message and the text for the model, or None (plain text)."""
        stripped = message.strip()
        words = stripped.split(None, 1)
        first, rest = (words[0] if words else ""), (words[1] if len(words) > 1 else "")
        name, inline = _word(first) if first.startswith("/") else ("", None)
        rest = ((inline or "") + " " + rest).strip() if inline is not None else rest.strip()
        command = COMMANDS.get(name)
        if command == "new":
            return Plan(fresh=True), rest
        if command is not None and (command in ("stop", "compact", "usage") or (command in SHORTCUTS and not rest)):
            return self._command(key, command, rest, sender), ""
        parsed = parse(stripped)
        if parsed.bad is not None:
            bad = parsed.bad
            return Plan(work=self._fixed(self._current(key, bad.name, bad.value)), detached=True), ""
        if not parsed.directives and not parsed.shortcuts:
            return None
        preface = "\n\n".join(self._shortcut(key, s, sender) for s in parsed.shortcuts)
        if not parsed.text:
            if not parsed.directives:
                return Plan(work=self._fixed(preface), detached=True), ""
            return Plan(work=self._persist(key, parsed.directives, preface), detached=True), ""
        overrides = self._turn(key, parsed.directives)
        return Plan(model=overrides.get("model"), thinking=overrides.get("think"), verbose=overrides.get("verbose"), preface=preface), parsed.text

    @staticmethod
    def _fixed(text: str) -> Work:
        async def work(run: Run) -> str:
            return text

        return work

    def _command(self, key: str, command: str, rest: str, sender: Sender) -> Plan:
        runtime = self.runtime
        if command == "stop":

            async def stop(run: Run) -> str:
                stopped = runtime.abort(key)
                return "Stopped." if stopped else "Nothing is running."

            return Plan(work=stop, detached=True)
        if command == "compact":

            async def compact(run: Run) -> str:
                result = await runtime.compact(key, instructions=rest or None)
                if not result.get("compacted"):
                    return "Nothing to compact yet."
                return f"Compacted: older messages are now a summary ({result['summaryChars']} characters); the last {result['kept']} stay as they were."

            return Plan(work=compact)  # waits its turn in the session
        if command == "usage":
            return Plan(work=self._usage(key, rest.lower()), detached=True)
        return Plan(work=self._fixed(self._shortcut(key, command, sender)), detached=True)

    def _usage(self, key: str, mode: str) -> Work:
        runtime = self.runtime

        async def usage(run: Run) -> str:
            if mode in ("off", "tokens", "full"):
                runtime.store(agent_of(key)).patch(key, {"responseUsage": None if mode == "off" else mode})
                return "Usage line off." if mode == "off" else f"Usage line on ({mode}): each reply ends with what it used."
            if mode == "cost":
                now = int(time.time() * 1000)
                window = Window(now - 30 * 86_400_000, now)
                folder = runtime.settings.state_dir / "agents" / agent_of(key) / "sessions"
                summary = await summarize(runtime, {agent_of(key): folder}, window, 30, now)
                totals = summary["totals"]
                lines = [f"Cost (30 days, agent {agent_of(key)}): {format_usd(totals['totalCost'])} · {totals['totalTokens']} tokens"]
                for day in summary["daily"][-7:]:
                    lines.append(f"  {day['date']}: {format_usd(day['totalCost'])} · {day['totalTokens']} tokens")
                if totals["missingCostEntries"]:
                    lines.append(f"  {totals['missingCostEntries']} replies without prices (models.providers.<id>.models[].cost)")
                return "\n".join(lines)
            if mode:
                raise GatewayError(INVALID_REQUEST, f"Unknown /usage mode {mode[:20]!r}: use off, tokens, full or cost.")
            return self._session_usage(key)

        return usage

    def _session_usage(self, key: str) -> str:
        runtime = self.runtime
        store = runtime.store(agent_of(key))
        totals, _ = session_totals(store.entries(key), runtime.settings.config)
        mode = (store.get(key) or {}).get("responseUsage") or "off"
        cost = format_usd(totals.total_cost) + (f" (+{totals.missing_cost_entries} replies without prices)" if totals.missing_cost_entries else "")
        return (
            f"This session: {totals.count} replies · {totals.input + totals.cache_read + totals.cache_write} in / {totals.output} out"
            f" ({totals.cache_read} cache read, {totals.cache_write} cache write) · {totals.total_tokens} tokens · {cost}\n"
            f"Usage line: {mode} (/usage off|tokens|full)"
        )

    # -- shortcuts

    def _shortcut(self, key: str, command: str, sender: Sender) -> str:
        if command == "help":
            return "Commands:\n" + "\n".join(f"/{name} — {text}" for name, text in HELP.items())
        if command == "commands":
            return "Commands: " + " ".join(f"/{name}" for name in HELP)
        if command == "whoami":
            who = sender.name or sender.id or "an operator"
            detail = f" (id {sender.id})" if sender.id and sender.name else ""
            return f"You are {who}{detail} on {sender.surface}; commands: {'allowed' if sender.authorized else 'allowed for everyone (commands.useAccessGroups is off)'}."
        return self.status(key)

    def status(self, key: str) -> str:
        """C{/status}: model, tokens used, context size, queue, session."""
        runtime = self.runtime
        agent = agent_of(key)
        store = runtime.store(agent)
        entry = store.get(key) or {}
        models = runtime.models(agent, model_override(entry))
        model = models[0] if models else None
        totals, last = session_totals(store.entries(key), runtime.settings.config)
        window = _context_window(runtime.settings.config, model.provider, model.model) if model else None
        used = (last.get("input", 0) + last.get("cacheRead", 0) + last.get("cacheWrite", 0)) if last else 0
        active = runtime.active.get(key)
        waiting = len([r for r in runtime.queued.get(key, []) if r.status == "queued"])
        lines = [
            f"Session: {key}" + (f" (id {entry['sessionId']})" if entry.get("sessionId") else " (no messages yet)"),
            f"Model: {model.label if model else 'none configured'}" + (" (chosen for this session)" if model_override(entry) else "")
            + f" · thinking {entry.get('thinkingLevel') or 'off'} · verbose {entry.get('verboseLevel') or 'off'}",
            f"Context: {used} of {window if window else '?'} tokens" + (f" ({used * 100 // window}%)" if window else ""),
            f"Tokens: {totals.input + totals.cache_read + totals.cache_write} in / {totals.output} out over {totals.count} replies"
            + (f" · {format_usd(totals.total_cost)}" if totals.count > totals.missing_cost_entries else ""),
            f"Queue: {entry.get('queueMode') or 'followup'} · " + ("a run is going" if active is not None else "idle") + (f", {waiting} waiting" if waiting else ""),
        ]
        if entry.get("compactionCount"):
            lines.append(f"Compactions: {entry['compactionCount']}")
        return "\n".join(lines)

    # -- directives

    def _model_ref(self, key: str, value: str) -> str | None:
        """A C{/model} value as C{provider/model}: a ref, a number from C{/model list}, an alias, or a unique model id."""
        config, env = self.runtime.settings.config, self.runtime.settings.env
        rows = catalog(config, env, agent_of(key))
        if value.isdigit() and 1 <= int(value) <= len(rows):
            row = rows[int(value) - 1]
            return f"{row['provider']}/{row['id']}"
        if "/" in value and resolve_ref(value, config, env) is not None:
            return value
        named = [r for r in rows if value.lower() in (str(r.get("alias", "")).lower(), r["id"].lower())]
        if len(named) == 1:
            return f"{named[0]['provider']}/{named[0]['id']}"
        return None

    def _turn(self, key: str, directives: tuple[Directive, ...]) -> dict[str, Any]:
        """Inline directives: this turn's overrides (a model that cannot be used is left out)."""
        out: dict[str, Any] = {}
        for d in directives:
            value = d.value or ""
            if d.name == "think":
                out["think"] = value.lower()
            elif d.name == "verbose":
                out["verbose"] = value.lower() != "off"
            elif d.name == "model":
                ref = self._model_ref(key, value)
                if ref is not None:
                    out["model"] = ref
        return out

    def _persist(self, key: str, directives: tuple[Directive, ...], preface: str) -> Work:
        runtime = self.runtime

        async def persist(run: Run) -> str:
            fields: dict[str, Any] = {}
            lines = [preface] if preface else []
            for d in directives:
                value = (d.value or "").strip()
                if d.name == "think":
                    fields["thinkingLevel"] = value.lower()
                    lines.append(f"Thinking level set to {value.lower()}." if value.lower() != "off" else "Thinking off.")
                elif d.name == "verbose":
                    fields["verboseLevel"] = value.lower()
                    lines.append("Verbose off." if value.lower() == "off" else f"Verbose {value.lower()}: tool calls are shown.")
                elif d.name == "queue":
                    fields["queueMode"] = None if value.lower() in ("default", "reset") else value.lower()
                    lines.append(f"Queue mode set to {fields['queueMode'] or 'followup (default)'}.")
                elif d.name == "model":
                    lines.append(self._model(key, value, fields))
            if fields:
                runtime.store(agent_of(key)).patch(key, fields)
            return "\n".join(lines)

        return persist

    def _model(self, key: str, value: str, fields: dict[str, Any]) -> str:
        """C{/model <value>} in a directive-only message: list, status, default, or the session's model."""
        runtime = self.runtime
        config, env = runtime.settings.config, runtime.settings.env
        entry = runtime.store(agent_of(key)).get(key) or {}
        current = runtime.models(agent_of(key), model_override(entry))
        label = current[0].label if current else None
        if value.lower() == "list":
            rows = catalog(config, env, agent_of(key))
            if not rows:
                return "No models are configured (models.providers)."
            shown = [f"{i}. {r['provider']}/{r['id']}" + (" ← current" if f"{r['provider']}/{r['id']}" == label else "") + ("" if r.get("available") else " (unavailable)") for i, r in enumerate(rows, 1)]
            return "Models:\n" + "\n".join(shown) + "\nPick one with /model <number> or /model <provider/model>."
        if value.lower() == "status":
            if not current:
                return "No model is configured."
            chosen = current[0]
            return f"Model: {chosen.label} · api {chosen.api} · {chosen.base_url}" + (" (chosen for this session)" if model_override(entry) else "")
        if value.lower() == "default":
            fields["modelOverride"] = None
            fields["providerOverride"] = None
            default = runtime.models(agent_of(key))
            return f"Model reset to the default ({default[0].label if default else 'none configured'})."
        ref = self._model_ref(key, value)
        if ref is None:
            return f"Unknown or unavailable model {value[:80]!r}; see /model list."
        fields["modelOverride"] = ref
        fields["providerOverride"] = None
        return f"Model set to {ref}."

    def _current(self, key: str, name: str, value: str | None) -> str:
        """A lone directive without a valid value: what is set now, and what may be."""
        entry = self.runtime.store(agent_of(key)).get(key) or {}
        if name == "think":
            return f"Thinking level: {entry.get('thinkingLevel') or 'off'}. Use /think {'|'.join(THINK_LEVELS)}." + (f" ({value[:40]!r} is not a level.)" if value else "")
        if name == "verbose":
            return f"Verbose: {entry.get('verboseLevel') or 'off'}. Use /verbose on|full|off." + (f" ({value[:40]!r} is not a setting.)" if value else "")
        if name == "queue":
            return f"Queue mode: {entry.get('queueMode') or 'followup'}. Use /queue {'|'.join(QUEUE_MODES)}." + (f" ({value[:40]!r} is not a mode.)" if value else "")
        return self._model(key, "status", {}) + "\nUse /model list, /model <number>, /model <provider/model> or /model default."


def _context_window(config: Mapping[str, Any], provider: str, model: str) -> int | None:
    providers = (config.get("models") or {}).get("providers") if isinstance(config.get("models"), dict) else None
    entries = (providers.get(provider) or {}).get("models") if isinstance(providers, dict) and isinstance(providers.get(provider), dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("id") == model and isinstance(entry.get("contextWindow"), int) and entry["contextWindow"] > 0:
            return int(entry["contextWindow"])
    return None
