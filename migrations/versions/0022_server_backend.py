"""servers: the container backend (agent or swarm), a Swarm's TLS bundle and placement rules

Revision ID: 0022_server_backend
Revises: 0017
"""
import sqlalchemy as sa
from alembic import op

revision = "0022_server_backend"
down_revision = "0021_directory"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("servers") as batch:
        batch.add_column(sa.Column("backend", sa.String(length=16), nullable=False, server_default="agent"))
        batch.add_column(sa.Column("tls_encrypted", sa.Text(), nullable=True))
        batch.add_column(sa.Column("swarm_placement", sa.String(length=500), nullable=False,
                                   server_default=""))


def downgrade():
    with op.batch_alter_table("servers") as batch:
        batch.drop_column("swarm_placement")
        batch.drop_column("tls_encrypted")
        batch.drop_column("backend")
