"""Matrix: the client-server API, hand-written on treq (sync long polling; no E2EE)."""
