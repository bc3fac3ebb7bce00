"""audit action names follow one pattern: noun_verb, past tense (user_approved, task_cancelled)

Rewrites old audit rows and the log entries that mirror them. Downgrading restores the old
names, except that `add_server` rows come back as `server_added` (both were written before).

Revision ID: 0016
Revises: 0015
"""
from alembic import op
import sqlalchemy as sa

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

RENAMED = (
    ("add_registry", "registry_added"),
    ("add_server", "server_added"),
    ("add_workspace_image", "workspace_image_added"),
    ("approve_user", "user_approved"),
    ("cancel_task", "task_cancelled"),
    ("change_role", "user_role_changed"),
    ("create_admin", "admin_created"),
    ("add_build_template", "build_template_added"),
    ("edit_build_template", "build_template_edited"),
    ("delete_build_template", "build_template_deleted"),
    ("delete_image_requested", "image_delete_requested"),
    ("delete_registry", "registry_deleted"),
    ("delete_upload", "upload_deleted"),
    ("delete_user", "user_deleted"),
    ("edit_build_policy", "build_policy_edited"),
    ("edit_registry", "registry_edited"),
    ("import_requested", "image_import_requested"),
    ("login", "user_logged_in"),
    ("logout", "user_logged_out"),
    ("reconcile_routes_regenerated", "routes_regenerated"),
    ("register", "user_registered"),
    ("reinstate_user", "user_reinstated"),
    ("reject_user", "user_rejected"),
    ("remove_workspace_image", "workspace_image_removed"),
    ("reset_password", "user_password_reset"),
    ("retry_task", "task_retried"),
    ("suspend_user", "user_suspended"),
    ("test_registry", "registry_tested"),
    ("upload", "upload_stored"),
    ("workspace_admin_access", "workspace_admin_accessed"),
    ("workspace_admin_open", "workspace_admin_opened"),
    ("workspace_admin_request", "workspace_admin_requested"),
    ("workspace_error", "workspace_failed"),
    ("workspace_provision", "workspace_provision_requested"),
    ("reconcile_half_workspace_removed", "half_workspace_removed"),
    ("reconcile_container_vanished", "workspace_container_vanished"),
    ("reconcile_status_fixed", "workspace_status_fixed"),
    ("reconcile_orphan_removed", "orphan_container_removed"),
    ("build", "build_finished"),
    ("push", "push_finished"),
    ("import", "import_finished"),
    ("delete_image", "image_deleted"),
    ("workspace_start", "workspace_start_requested"),
    ("workspace_stop", "workspace_stop_requested"),
    ("workspace_restart", "workspace_restart_requested"),
    ("workspace_delete", "workspace_delete_requested"),
    ("workspace_recreate", "workspace_recreate_requested"),
)

audit_logs = sa.table("audit_logs", sa.column("action_type", sa.String))
log_entries = sa.table("log_entries", sa.column("category", sa.String))


def _rename(pairs):
    for old, new in pairs:
        op.execute(audit_logs.update().where(audit_logs.c.action_type == old).values(action_type=new))
        op.execute(log_entries.update().where(log_entries.c.category == f"audit.{old}")
                   .values(category=f"audit.{new}"))


def upgrade():
    _rename(RENAMED)


def downgrade():
    _rename([(new, old) for old, new in RENAMED if old != "add_server"])
