"""IRC: twisted.words' IRCClient with CAP/SASL, keepalive and paced sends."""
