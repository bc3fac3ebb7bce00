"""Security primitives: password hashing, and (later) MFA, tokens and stored-secret crypto."""
