"""Signal: a signal-cli daemon's HTTP JSON-RPC and Server-Sent Events, on treq."""
