"""A user's own security pages: password, MFA, sessions and API keys."""
