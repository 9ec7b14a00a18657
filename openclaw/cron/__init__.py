"""Scheduled work: cron jobs, reminders and heartbeats behind typed ports (docs/scheduling.md)."""
