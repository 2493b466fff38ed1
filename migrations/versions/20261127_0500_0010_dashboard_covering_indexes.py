"""covering indexes for the dashboard's visit and check-in statements

* visit (campaign_id, visited_on, is_deleted, bank_id, branch_id, firm_id, rm_id, need_amount_fen) replaces
  (campaign_id, visited_on): a campaign's visits in a date range with every column the dashboard counts, so its
  visit, firms-reached and staff statements read the index and never the table (crm/dashboard/fastsql.py);
* registration (event_id, firm_id, checked_in_at) replaces (event_id, firm_id): checked-in firms per event.

Both new indexes start with the old ones' columns, so every statement that used an old one can use its successor.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27 05:00:00
"""
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

VISIT_COLUMNS = ["campaign_id", "visited_on", "is_deleted", "bank_id", "branch_id", "firm_id", "rm_id",
                 "need_amount_fen"]


def upgrade():
    op.drop_index("ix_visit_campaign_visited_on", table_name="visit")
    op.create_index("ix_visit_dashboard", "visit", VISIT_COLUMNS)
    op.drop_index("ix_registration_event_firm", table_name="registration")
    op.create_index("ix_registration_event_firm_checked_in", "registration", ["event_id", "firm_id", "checked_in_at"])


def downgrade():
    op.drop_index("ix_registration_event_firm_checked_in", table_name="registration")
    op.create_index("ix_registration_event_firm", "registration", ["event_id", "firm_id"])
    op.drop_index("ix_visit_dashboard", table_name="visit")
    op.create_index("ix_visit_campaign_visited_on", "visit", ["campaign_id", "visited_on"])
