"""Security primitives: passwords, MFA, brute-force defence, rate limits, trusted proxies, clock, crypto."""
