"""dashboard snapshots shared by every worker: one JSON row per snapshot key at its newest write version

Until now each worker kept its snapshots in memory only, so every worker (and every worker gunicorn recycled)
paid the full computation of each dashboard view once per write version. crm/dashboard/snapshots.py now also
files each computed snapshot here and reads it before computing. Writes to this table never move the write
version (it is in IGNORED_TABLES).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-27 05:30:00
"""
from alembic import op
import sqlalchemy as sa

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "dashboard_snapshot",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_dashboard_snapshot")),
    )


def downgrade():
    op.drop_table("dashboard_snapshot")
