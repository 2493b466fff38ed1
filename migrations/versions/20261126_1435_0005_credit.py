"""credit: the requested term of an application (checked against pledged patents' expiry)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 14:35:00
"""
from alembic import op
import sqlalchemy as sa

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("credit_application", schema=None) as batch_op:
        batch_op.add_column(sa.Column("requested_term_months", sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table("credit_application", schema=None) as batch_op:
        batch_op.drop_column("requested_term_months")
