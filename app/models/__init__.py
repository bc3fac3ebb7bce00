"""All models, re-exported so `from app.models import User` works everywhere."""

from app.models.audit import LOG_LEVELS, AuditLog
from app.models.user import ROLES, STATUSES, User, UserSession

__all__ = ["LOG_LEVELS", "ROLES", "STATUSES", "AuditLog", "User", "UserSession"]
