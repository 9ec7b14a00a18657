"""Discord: gateway v10 on autobahn, REST on treq (hand-written)."""
