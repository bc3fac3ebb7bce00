"""request analytics: raw request rows, per-minute rollups by route and by user

Revision ID: 0017
Revises: 0016
"""
from alembic import op
import sqlalchemy as sa

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade():
    op.create_table(
        "request_logs",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("route", sa.String(length=255), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("client_addr", sa.String(length=45), nullable=False),
        sa.Column("response_bytes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_request_logs_at", "request_logs", ["at"])
    op.create_index("ix_request_logs_user_at", "request_logs", ["user_id", "at"])
    op.create_table(
        "request_rollups",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("span_minutes", sa.SmallInteger(), nullable=False),
        sa.Column("minute", sa.DateTime(), nullable=False),
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("route", sa.String(length=255), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("errors_4xx", sa.Integer(), nullable=False),
        sa.Column("errors_5xx", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("duration_sum_ms", sa.Float(), nullable=False),
        sa.Column("p50_ms", sa.Float(), nullable=False),
        sa.Column("p95_ms", sa.Float(), nullable=False),
        sa.Column("p99_ms", sa.Float(), nullable=False),
        sa.Column("max_ms", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("span_minutes", "minute", "method", "route", name="uq_request_rollups_minute_route"),
    )
    op.create_index("ix_request_rollups_route_minute", "request_rollups", ["span_minutes", "route", "method", "minute"])
    op.create_table(
        "request_user_rollups",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("span_minutes", sa.SmallInteger(), nullable=False),
        sa.Column("minute", sa.DateTime(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("errors_4xx", sa.Integer(), nullable=False),
        sa.Column("errors_5xx", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("span_minutes", "minute", "user_id", name="uq_request_user_rollups_minute_user"),
    )
    op.create_index("ix_request_user_rollups_count", "request_user_rollups",
                    ["span_minutes", "minute", "user_id", "count"])


def downgrade():
    op.drop_index("ix_request_user_rollups_count", table_name="request_user_rollups")
    op.drop_table("request_user_rollups")
    op.drop_index("ix_request_rollups_route_minute", table_name="request_rollups")
    op.drop_table("request_rollups")
    op.drop_index("ix_request_logs_user_at", table_name="request_logs")
    op.drop_index("ix_request_logs_at", table_name="request_logs")
    op.drop_table("request_logs")
