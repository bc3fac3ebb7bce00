"""connection log: sessions of workspace use from the edge's access log, its tail cursor, idle stop columns

Revision ID: 0019_connection_log
Revises: 0017
"""
from alembic import op
import sqlalchemy as sa

revision = "0019_connection_log"
down_revision = "0017"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade():
    op.create_table(
        "connection_log",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("owner", sa.String(length=32), nullable=False),
        sa.Column("app", sa.String(length=16), nullable=False),
        sa.Column("username", sa.String(length=32), nullable=False),
        sa.Column("client_addr", sa.String(length=45), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("last_at", sa.DateTime(), nullable=False),
        sa.Column("requests", sa.Integer(), nullable=False),
        sa.Column("websockets", sa.Integer(), nullable=False),
        sa.Column("errors", sa.Integer(), nullable=False),
        sa.Column("bytes_sent", sa.BigInteger(), nullable=False),
        sa.Column("bytes_received", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_connection_log_last_at", "connection_log", ["last_at"])
    op.create_index("ix_connection_log_owner_last", "connection_log", ["owner", "last_at"])
    op.create_index("ix_connection_log_username_last", "connection_log", ["username", "last_at"])
    op.create_table(
        "connection_tail",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("inode", sa.BigInteger(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("lines", sa.BigInteger(), nullable=False),
        sa.Column("garbled", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    with op.batch_alter_table("workspaces") as batch:
        batch.add_column(sa.Column("last_activity_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("running_since", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("idle_stopped_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("keep_running", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade():
    with op.batch_alter_table("workspaces") as batch:
        batch.drop_column("keep_running")
        batch.drop_column("idle_stopped_at")
        batch.drop_column("running_since")
        batch.drop_column("last_activity_at")
    op.drop_table("connection_tail")
    op.drop_index("ix_connection_log_username_last", table_name="connection_log")
    op.drop_index("ix_connection_log_owner_last", table_name="connection_log")
    op.drop_index("ix_connection_log_last_at", table_name="connection_log")
    op.drop_table("connection_log")
