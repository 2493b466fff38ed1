"""the dashboard's per-shard statements: visits by firm and by relationship manager, check-ins by firm

After a visit is saved, the dashboard recomputes the numbers of one range of firms (``firm_id BETWEEN a AND b``)
and of the visit's people (``rm_id IN (...)``), not the campaign's (crm/dashboard/shards.py). These indexes hold
a campaign's visits in that order with every column those statements read, so a shard's visits (about 1,500 of a
campaign year's 300,000 at scale 1) are read from the index alone; a shard's check-ins likewise (registration by
firm, with its event and check-in time).

Each visit saved updates two more index entries, each registration one. The indexes are built inside the upgrade's transaction (not
CONCURRENTLY): writes to ``visit`` wait while they are built (docs/deploy.md, upgrades).

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-27 11:00:00
"""
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_visit_firm_shard": ["campaign_id", "firm_id", "visited_on", "is_deleted", "bank_id", "branch_id", "rm_id",
                            "need_amount_fen"],
    "ix_visit_rm_shard": ["campaign_id", "rm_id", "visited_on", "is_deleted", "bank_id", "branch_id", "firm_id"],
}


def upgrade():
    for name, columns in INDEXES.items():
        op.create_index(name, "visit", columns, postgresql_include=["id"])
    op.create_index("ix_registration_firm_event_checked_in", "registration", ["firm_id", "event_id", "checked_in_at"])


def downgrade():
    op.drop_index("ix_registration_firm_event_checked_in", table_name="registration")
    for name in INDEXES:
        op.drop_index(name, table_name="visit")
