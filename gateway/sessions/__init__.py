"""The home session: one person's login, everything they hold hangs off it, and one way to end it."""
