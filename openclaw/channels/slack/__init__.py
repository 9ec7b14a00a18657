"""Slack: Socket Mode (or the HTTP Events API) and the Web API, hand-written on autobahn and treq."""
