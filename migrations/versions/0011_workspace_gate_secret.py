"""workspace gate secret

The per-container secret the edge adds to every proxied request and the workspace's gate
checks, stored encrypted. Existing rows get NULL until their container is re-created.

Revision ID: 0011
Revises: 0009
"""
from alembic import op
import sqlalchemy as sa

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("workspaces") as batch:
        batch.add_column(sa.Column("gate_secret", sa.String(length=255), nullable=True))


def downgrade():
    with op.batch_alter_table("workspaces") as batch:
        batch.drop_column("gate_secret")
