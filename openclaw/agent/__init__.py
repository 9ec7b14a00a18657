"""The agent runtime: sessions and transcripts, model providers, the agent loop, streaming."""
