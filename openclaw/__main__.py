"""`python -m openclaw` is the `openclaw` command."""

from openclaw.cli.main import entry

entry()
