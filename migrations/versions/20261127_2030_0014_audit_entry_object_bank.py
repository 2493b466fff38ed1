"""audit entries of a record found by (object_type, object_id, bank_id)

A firm's page lists the audit entries of the viewer's records of that firm (crm/firms/timeline.py::firm_history),
and a bank user's statements also carry the tenant condition ``audit_entry.bank_id = ?``. With the index on
(object_type, object_id) alone, SQLite without statistics for the table (none until an ANALYZE runs after it has
rows) preferred ``ix_audit_entry_bank_id`` and walked the bank's whole audit trail: the firm page grew by 10 ms
for every 10,000 audit entries of the bank (a 10,000-row import writes as many). With the bank in the index, every
condition of the look-up is a key of one index, whatever the statistics say.

The index replaces the old one (its first two columns), under the same name.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-27 20:30:00
"""
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade():
    op.drop_index("ix_audit_entry_object", table_name="audit_entry")
    op.create_index("ix_audit_entry_object", "audit_entry", ["object_type", "object_id", "bank_id"])


def downgrade():
    op.drop_index("ix_audit_entry_object", table_name="audit_entry")
    op.create_index("ix_audit_entry_object", "audit_entry", ["object_type", "object_id"])
