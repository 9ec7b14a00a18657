"""Interop: the real upstream `openclaw` CLI against this gateway."""
