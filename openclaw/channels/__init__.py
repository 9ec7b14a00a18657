"""
Messaging channels: the framework (policy, pairing, routing, delivery,
supervision) and the platforms built on it (Telegram, ...).

Read L{openclaw.channels.interfaces} for the seam a platform implements and
L{openclaw.channels.ports} for what the framework needs from the gateway.
"""
