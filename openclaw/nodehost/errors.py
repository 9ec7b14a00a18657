"""The one error a node command raises: a code the operator sees, and a message."""

from __future__ import annotations


class CommandError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
