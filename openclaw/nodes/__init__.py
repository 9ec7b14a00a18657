"""Device nodes: one registry for nodes on the WebSocket and on the JSONL bridge."""
