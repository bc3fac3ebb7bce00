"""logs: entries, alert rules, alerts, cursors; agent event cursor per server; wider API key scope

Revision ID: 0012
Revises: 0011
"""
from alembic import op
import sqlalchemy as sa

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade():
    op.create_table(
        "log_entries",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("ts", sa.DateTime(), nullable=False),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("server_id", sa.Integer(), nullable=True),
        sa.Column("workspace_id", sa.Integer(), nullable=True),
        sa.Column("username", sa.String(length=64), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("risk_score", sa.Integer(), nullable=False),
        sa.Column("rule_ids", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_log_entries_ts", "log_entries", ["ts"])
    op.create_index("ix_log_entries_source_id", "log_entries", ["source", "id"])
    op.create_index("ix_log_entries_level_id", "log_entries", ["level", "id"])
    op.create_index("ix_log_entries_server_id", "log_entries", ["server_id", "id"])
    op.create_index("ix_log_entries_username_id", "log_entries", ["username", "id"])
    op.create_index("ix_log_entries_workspace_id", "log_entries", ["workspace_id", "id"])
    op.create_index("ix_log_entries_risk_id", "log_entries", ["risk_score", "id"])
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("builtin", sa.Boolean(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=True),
        sa.Column("category", sa.String(length=64), nullable=True),
        sa.Column("level", sa.String(length=16), nullable=True),
        sa.Column("field_equals", sa.JSON(), nullable=False),
        sa.Column("message_regex", sa.String(length=500), nullable=True),
        sa.Column("threshold_count", sa.Integer(), nullable=False),
        sa.Column("window_seconds", sa.Integer(), nullable=False),
        sa.Column("group_by", sa.String(length=32), nullable=True),
        sa.Column("risk_score", sa.Integer(), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("webhook_url", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.Integer(), nullable=True),
        sa.Column("rule_name", sa.String(length=100), nullable=False),
        sa.Column("group_value", sa.String(length=255), nullable=False),
        sa.Column("open_key", sa.String(length=300), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("risk_score", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("message", sa.String(length=500), nullable=False),
        sa.Column("server_id", sa.Integer(), nullable=True),
        sa.Column("username", sa.String(length=64), nullable=True),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.Column("acknowledged_by", sa.String(length=64), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(), nullable=True),
        sa.Column("resolved_by", sa.String(length=64), nullable=True),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("webhook_status", sa.String(length=16), nullable=False),
        sa.Column("webhook_attempts", sa.Integer(), nullable=False),
        sa.Column("webhook_last_error", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(["rule_id"], ["alert_rules.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("open_key"),
    )
    op.create_index(op.f("ix_alerts_rule_id"), "alerts", ["rule_id"])
    op.create_index("ix_alerts_state_severity", "alerts", ["state", "severity"])
    op.create_table(
        "alert_entries",
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("entry_id", BIG_ID, nullable=False),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("alert_id", "entry_id"),
    )
    op.create_table(
        "log_cursors",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("servers") as batch:
        batch.add_column(sa.Column("events_cursor", sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("events_epoch", sa.String(length=64), nullable=False, server_default=""))
    with op.batch_alter_table("servers") as batch:
        batch.alter_column("events_cursor", server_default=None, existing_type=sa.BigInteger(),
                           existing_nullable=False)
        batch.alter_column("events_epoch", server_default=None, existing_type=sa.String(length=64),
                           existing_nullable=False)
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("scope", type_=sa.String(length=16), existing_type=sa.String(length=8),
                           existing_nullable=False)


def downgrade():
    op.execute("DELETE FROM api_keys WHERE scope = 'logs:write'")
    with op.batch_alter_table("api_keys") as batch:
        batch.alter_column("scope", type_=sa.String(length=8), existing_type=sa.String(length=16),
                           existing_nullable=False)
    with op.batch_alter_table("servers") as batch:
        batch.drop_column("events_epoch")
        batch.drop_column("events_cursor")
    op.drop_table("log_cursors")
    op.drop_table("alert_entries")
    op.drop_index("ix_alerts_state_severity", table_name="alerts")
    op.drop_index(op.f("ix_alerts_rule_id"), table_name="alerts")
    op.drop_table("alerts")
    op.drop_table("alert_rules")
    op.drop_table("log_entries")
