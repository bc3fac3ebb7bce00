"""Task pages: list, detail with live events, cancel and retry."""
