"""Running the gateway as a person operates it: daemon, service units, sd_notify, doctor, Tailscale, metrics."""
