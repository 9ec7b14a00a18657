"""HTTP on the gateway port: routing, health, JSON errors."""
