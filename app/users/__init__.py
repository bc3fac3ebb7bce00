"""Old user-area addresses, redirected to the workspace page."""
