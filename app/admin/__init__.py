"""Admin area: dashboard, approval queue, user management and the audit log."""
