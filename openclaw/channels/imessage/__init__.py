"""iMessage: the `imsg rpc` helper as a child process, JSON-RPC 2.0 over stdio."""
