"""All models, re-exported so `from app.models import User` works everywhere."""

from app.models.audit import LOG_LEVELS, AuditLog
from app.models.image import BuildPolicy, BuildTemplate, Registry, Upload, WorkspaceImage
from app.models.security import (
    API_SCOPES,
    ApiKey,
    BannedIP,
    LoginAttempt,
    MfaBackupCode,
    PasswordHistory,
    RolePolicy,
)
from app.models.server import SERVER_STATUSES, PollerLease, Server, ServerMetric
from app.models.task import FINISHED_STATES, TASK_STATES, Task, TaskEvent
from app.models.user import ROLES, STATUSES, User, UserSession
from app.models.workspace import WORKSPACE_STATUSES, UsedHandoffToken, Workspace

__all__ = [
    "BuildPolicy",
    "BuildTemplate",
    "Registry",
    "Upload",
    "WorkspaceImage",
    "API_SCOPES",
    "ApiKey",
    "BannedIP",
    "LoginAttempt",
    "MfaBackupCode",
    "PasswordHistory",
    "RolePolicy",
    "FINISHED_STATES",
    "LOG_LEVELS",
    "ROLES",
    "STATUSES",
    "SERVER_STATUSES",
    "TASK_STATES",
    "AuditLog",
    "PollerLease",
    "Server",
    "ServerMetric",
    "Task",
    "TaskEvent",
    "User",
    "UserSession",
    "UsedHandoffToken",
    "WORKSPACE_STATUSES",
    "Workspace",
]
