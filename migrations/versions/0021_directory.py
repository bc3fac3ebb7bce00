"""directory login: users.auth_source ('local' | 'ldap') and users.directory_dn

Revision ID: 0021_directory
Revises: 0017
"""
from alembic import op
import sqlalchemy as sa

revision = "0021_directory"
down_revision = "0020_mail"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("auth_source", sa.String(length=16), nullable=False, server_default="local"))
        batch.add_column(sa.Column("directory_dn", sa.String(length=512), nullable=True))


def downgrade():
    with op.batch_alter_table("users") as batch:
        batch.drop_column("directory_dn")
        batch.drop_column("auth_source")
