"""Gateway clients: device identity, the protocol core, and the WebSocket adapter."""
