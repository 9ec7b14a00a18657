"""The OpenClaw gateway wire protocol (v3 and v4), as plain data and functions."""
