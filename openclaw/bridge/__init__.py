"""The legacy TCP JSONL node bridge (gateway port + 1)."""
