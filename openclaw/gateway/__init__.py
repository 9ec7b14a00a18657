"""The gateway core: connections, auth, pairing, methods, events (no sockets here)."""
