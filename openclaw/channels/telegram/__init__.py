"""Telegram: the Bot API, hand-written on treq (long polling or webhook)."""
