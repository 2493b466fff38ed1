"""dashboard visit inserts: each commit's new visits, for the firm shards and people whose rows only they moved

A visit saved bumps the ``visit`` version row of its firm's shard and the ``people`` rows of its relationship manager
and companions, and every kept dashboard view then recomputed that shard's visits and firms reached from all its
firms' visits and check-ins, and those people's staff numbers from all their visits (on PostgreSQL at scale 1 the
most expensive statements of the page after a new visit). crm/dashboard/snapshots.py now writes here, in the same
transaction, for each such row the commit bumped with new visits only, the row's count after the bump and those
visits' ids; crm/dashboard/shards.py reads the rows a kept view has not seen and counts the new visits into the
shard's and the people's parts instead of recomputing them. A count with no row here (an edit, a deletion, a
companion added to a stored visit) is recomputed as before. Writers drop a row's entries older than its last
hundred. Writes to this table never move the write version (IGNORED_TABLES).

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-29 18:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "dashboard_visit_insert",
        sa.Column("slot", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("visit_ids", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("slot", "seq", name=op.f("pk_dashboard_visit_insert")),
    )


def downgrade():
    op.drop_table("dashboard_visit_insert")
