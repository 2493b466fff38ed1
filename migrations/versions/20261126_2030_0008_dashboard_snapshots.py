"""dashboard snapshots: the write version every dashboard snapshot is filed under

One small table of counter rows ("slots"). Every transaction that writes a record the dashboard counts adds one
to one slot right before it commits (crm/dashboard/snapshots.py); the sum of the slots is the write version.
Snapshots themselves live in each worker's memory, keyed by that version.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 20:30:00
"""
from alembic import op
import sqlalchemy as sa

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

SLOTS = 16


def upgrade():
    table = op.create_table(
        "dashboard_write_version",
        sa.Column("slot", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("n", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("slot", name=op.f("pk_dashboard_write_version")),
    )
    op.bulk_insert(table, [{"slot": i, "n": 0} for i in range(SLOTS)])


def downgrade():
    op.drop_table("dashboard_write_version")
