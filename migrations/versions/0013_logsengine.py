"""logs: index log_entries (category, ts) for the rule engine's threshold look-back

Revision ID: 0013_logsengine
Revises: 0012
"""
from alembic import op

revision = "0013_logsengine"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_log_entries_category_ts", "log_entries", ["category", "ts"])


def downgrade():
    op.drop_index("ix_log_entries_category_ts", table_name="log_entries")
