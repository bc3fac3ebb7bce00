"""What a regular user sees: their home page."""
