"""follow-ups by bank, status and due day: the bank manager's overdue list and its per-branch counts

The overdue page counts a bank's open follow-ups due before today per branch (by the assignee's branch) and lists
the longest overdue. The only index with the status and the due day began with the assignee, so SQLite walked every
person's overdue follow-ups and read each row to see its bank: 13–16 ms at scale 1 (2,943 overdue of the bank's
25,198). This index holds a bank's follow-ups by status and due day with the assignee, so the counts read the index
alone and the list walks it in due order.

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-30 00:00:00
"""
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("ix_follow_up_bank_status_due", "follow_up", ["bank_id", "status", "due_on", "assignee_id"],
                    postgresql_include=["id"])


def downgrade():
    op.drop_index("ix_follow_up_bank_status_due", table_name="follow_up")
