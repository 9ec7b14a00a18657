"""OpenClaw Gateway on Twisted.

Importing this package has no side effects: no reactor, no autobahn.
"""

__version__ = "0.1.0"
