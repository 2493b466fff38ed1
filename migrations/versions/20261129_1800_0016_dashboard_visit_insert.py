"""dashboard visit inserts: the new visits of each commit that bumped a person's shard with new visits only

A visit saved bumps the ``people`` version rows of its relationship manager and companions, and every kept dashboard
view then recomputed those people's staff numbers from all their visits of the view (on PostgreSQL at scale 1 the
most expensive statement of the page after a new visit, 9-10 ms). A new visit can only add a person to the groups it
belongs to, so crm/dashboard/snapshots.py now writes here, in the same transaction, for each person whose row the
commit bumped with new visits only, the row's count after the bump and those visits' ids; crm/dashboard/shards.py
reads the rows a kept view has not seen and adds those visits' groups to the person's part instead of recomputing
it. A count with no row here (an edit, a deletion, a companion added to a stored visit) is recomputed as before.
Writers drop a person's rows older than their last hundred. Writes to this table never move the write version
(IGNORED_TABLES).

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
