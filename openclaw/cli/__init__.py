"""The `openclaw` command line."""
