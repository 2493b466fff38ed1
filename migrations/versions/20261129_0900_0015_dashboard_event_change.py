"""dashboard event changes: one row per commit that moved a held event, with its state before and after

An event's date, status, campaign or organisers changed used to bump the check-in shards of every firm checked in
at it, so every kept dashboard view recomputed the check-ins and firms reached of those shards, even a view the
change could not move (a date moved within the same month and the campaign's window). crm/dashboard/snapshots.py
now bumps the one ``event`` version row and writes here, in the same transaction, the row's count after the bump,
each changed event's state before and after and the check-in shards of its firms; crm/dashboard/shards.py reads the
rows a kept view has not seen and recomputes those shards only in the views the change moves. Rows older than the
last thousand are dropped by the writers. Writes to this table never move the write version (IGNORED_TABLES).

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-29 09:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "dashboard_event_change",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_dashboard_event_change")),
    )


def downgrade():
    op.drop_table("dashboard_event_change")
