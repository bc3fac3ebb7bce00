"""What a regular user sees: their home page (their workspace arrives with its issue)."""
