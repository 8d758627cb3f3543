"""Members themselves: sign-in by a one-time code, their own page, the consents they control."""
