"""Out-of-process channel adapters: a WebSocket client with role C{channel} serves a channel (see docs/channels.md, "Adapters")."""
