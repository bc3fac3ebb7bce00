"""All models, re-exported so `from app.models import User` works everywhere."""

from app.models.analytics import RequestLog, RequestRollup, RequestUserRollup
from app.models.audit import LOG_LEVELS, AuditLog
from app.models.connection import ConnectionSession, ConnectionTail
from app.models.heartbeat import WorkerHeartbeat
from app.models.image import BuildPolicy, BuildTemplate, Registry, Upload, WorkspaceImage
from app.models.logs import (
    ALERT_SEVERITIES,
    ALERT_STATES,
    ENTRY_LEVELS,
    Alert,
    AlertEntry,
    AlertRule,
    LogCursor,
    LogEntry,
)
from app.models.mail import MAIL_KINDS, MailOptOut, PasswordResetToken
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
from app.models.task_archive import ArchivedTask, ArchivedTaskEvent
from app.models.user import ROLES, STATUSES, User, UserSession
from app.models.workspace import WORKSPACE_STATUSES, UsedHandoffToken, Workspace

__all__ = [
    "MAIL_KINDS",
    "MailOptOut",
    "PasswordResetToken",
    "ALERT_SEVERITIES",
    "ALERT_STATES",
    "ENTRY_LEVELS",
    "Alert",
    "AlertEntry",
    "AlertRule",
    "LogCursor",
    "LogEntry",
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
    "ArchivedTask",
    "ArchivedTaskEvent",
    "User",
    "UserSession",
    "UsedHandoffToken",
    "WORKSPACE_STATUSES",
    "Workspace",
    "WorkerHeartbeat",
    "RequestLog",
    "RequestRollup",
    "RequestUserRollup",
    "ConnectionSession",
    "ConnectionTail",
]
