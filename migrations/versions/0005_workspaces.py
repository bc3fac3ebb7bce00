"""workspaces

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "workspaces",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("username", sa.String(length=32), nullable=False),
        sa.Column("server_id", sa.Integer(), nullable=False),
        sa.Column("container_id", sa.String(length=80), nullable=True),
        sa.Column("container_name", sa.String(length=80), nullable=False),
        sa.Column("image", sa.String(length=255), nullable=False),
        sa.Column("cpu", sa.Float(), nullable=False),
        sa.Column("memory_mb", sa.Integer(), nullable=False),
        sa.Column("ports", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.String(length=1000), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["server_id"], ["servers.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id"),
        sa.UniqueConstraint("username"),
        sa.UniqueConstraint("container_name"),
    )
    op.create_index(op.f("ix_workspaces_server_id"), "workspaces", ["server_id"])
    op.create_index(op.f("ix_workspaces_status"), "workspaces", ["status"])
    op.create_table(
        "used_handoff_tokens",
        sa.Column("jti", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("jti"),
    )
    op.create_index(op.f("ix_used_handoff_tokens_expires_at"), "used_handoff_tokens", ["expires_at"])


def downgrade():
    op.drop_table("used_handoff_tokens")
    op.drop_table("workspaces")
