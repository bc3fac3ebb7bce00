"""task priority, and archive tables for finished tasks past retention

Revision ID: 0008
Revises: 0007
"""
from alembic import op
import sqlalchemy as sa

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="50"))
        batch.drop_index("ix_tasks_claim")
        batch.create_index("ix_tasks_claim", ["state", "priority", "run_after", "id"])
        batch.create_index("ix_tasks_finished_at", ["finished_at"])
    with op.batch_alter_table("tasks") as batch:
        batch.alter_column("priority", server_default=None, existing_type=sa.Integer(), existing_nullable=False)
    op.create_table(
        "tasks_archive",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=128), nullable=True),
        sa.Column("requested_by", sa.String(length=255), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("message", sa.String(length=1000), nullable=False),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("lock_key", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("archived_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_tasks_archive_kind"), "tasks_archive", ["kind"])
    op.create_index(op.f("ix_tasks_archive_requested_by"), "tasks_archive", ["requested_by"])
    op.create_index(op.f("ix_tasks_archive_state"), "tasks_archive", ["state"])
    op.create_table(
        "task_events_archive",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("progress", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["tasks_archive.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_task_events_archive_task_id"), "task_events_archive", ["task_id"])


def downgrade():
    op.drop_table("task_events_archive")
    op.drop_table("tasks_archive")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_index("ix_tasks_finished_at")
        batch.drop_index("ix_tasks_claim")
        batch.create_index("ix_tasks_claim", ["state", "run_after"])
        batch.drop_column("priority")
