# -*- test-case-name: tests.test_cli -*-
"""The base of every `openclaw` command: parse, then C{run} returns an exit code."""

from __future__ import annotations

from typing import IO, Any, Mapping

from twisted.python import usage

from openclaw.paths import resolve_layout

EX_USAGE = 2


class CommandOptions(usage.Options):
    """A command: parse, then C{run} returns an exit code."""

    def root(self) -> "usage.Options":
        node: Any = self
        while getattr(node, "parent", None) is not None:
            node = node.parent
        return node

    def layout(self, env: Mapping[str, str]) -> Any:
        root = self.root()
        return resolve_layout(env, profile=root["profile"], dev=bool(root["dev"]), config_path=self.get("config"))

    def parseOptions(self, options: list[str] | None = None) -> None:
        # usage.Options stops at the first positional (getopt); commands are
        # written `call health --url X`, so leaf commands move options first.
        if options is not None and not getattr(self, "subCommands", None):
            options = self._options_first(list(options))
        super().parseOptions(options)

    def _options_first(self, argv: list[str]) -> list[str]:
        takes_value = {f"--{o[:-1]}" for o in self.longOpt if o.endswith("=")}
        short_value = {f"-{c}" for c, colon in zip(self.shortOpt, self.shortOpt[1:] + " ") if c != ":" and colon == ":"}
        opts: list[str] = []
        args: list[str] = []
        i = 0
        while i < len(argv):
            token = argv[i]
            if token == "--":
                args.extend(argv[i + 1 :])
                break
            if token.startswith("-") and token != "-":
                opts.append(token)
                if (token in takes_value or token in short_value) and i + 1 < len(argv):
                    opts.append(argv[i + 1])
                    i += 1
            else:
                args.append(token)
            i += 1
        return opts + (["--"] + args if args else [])

    def run(self, env: Mapping[str, str], out: IO[str], err: IO[str]) -> int:
        if getattr(self, "subOptions", None) is not None:
            return self.subOptions.run(env, out, err)
        out.write(str(self))
        return EX_USAGE


