"""Trial suite for openclaw-twisted."""
