"""worker heartbeats: one row per worker role, read by /health/ready and /metrics

Revision ID: 0015
Revises: 0013_logsengine
"""
from alembic import op
import sqlalchemy as sa

revision = "0015"
down_revision = "0013_logsengine"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "worker_heartbeats",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("beat_at", sa.DateTime(), nullable=False),
        sa.Column("round_seconds", sa.Float(), nullable=True),
        sa.Column("stats", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade():
    op.drop_table("worker_heartbeats")
