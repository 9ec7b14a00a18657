"""`openclaw node run`: a headless node host for Linux and macOS."""
