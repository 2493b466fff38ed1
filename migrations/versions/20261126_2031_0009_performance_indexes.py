"""indexes for the hot paths and trigram name search on PostgreSQL

* visit (bank_id, firm_id, visited_on) replaces (bank_id, firm_id): a bank's latest visit to a firm (refreshed on
  every visit save), the firm list's visit filters and the firm timeline read it without a sort;
* credit_application (campaign_id, decided_on) and (campaign_id, disbursed_on): the dashboard's "decided / disbursed
  in this campaign between these dates";
* PostgreSQL only: pg_trgm GIN indexes on firm.name and firm.credit_code for the firm search
  (``LIKE '%term%'``, terms of three characters or more). ``CREATE EXTENSION pg_trgm`` needs a role allowed to
  create it (the database owner on PostgreSQL 13+, where pg_trgm is a trusted extension; otherwise a superuser, once:
  docs/performance.md). The downgrade keeps the extension (other objects may use it).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 20:30:00
"""
from alembic import op
import sqlalchemy as sa

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TRGM_INDEXES = {"ix_firm_name_trgm": "name", "ix_firm_credit_code_trgm": "credit_code"}


def _is_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _ensure_pg_trgm() -> None:
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")).scalar():
        return
    if not bind.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")).scalar():
        raise RuntimeError(
            "PostgreSQL extension pg_trgm is not installed on the database server (Debian/Ubuntu: the "
            "postgresql-contrib files); install it, then rerun the migration. See docs/performance.md.")
    # needs the database owner (pg_trgm is trusted on PostgreSQL 13+) or a superuser; see docs/performance.md
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")


def upgrade():
    op.drop_index("ix_visit_bank_firm", table_name="visit")
    op.create_index("ix_visit_bank_firm_visited_on", "visit", ["bank_id", "firm_id", "visited_on"])
    op.create_index("ix_credit_application_campaign_decided_on", "credit_application", ["campaign_id", "decided_on"])
    op.create_index("ix_credit_application_campaign_disbursed_on", "credit_application",
                    ["campaign_id", "disbursed_on"])
    if _is_postgresql():
        _ensure_pg_trgm()
        for name, column in TRGM_INDEXES.items():
            op.create_index(name, "firm", [column], postgresql_using="gin", postgresql_ops={column: "gin_trgm_ops"})


def downgrade():
    if _is_postgresql():
        for name in TRGM_INDEXES:
            op.drop_index(name, table_name="firm")
    op.drop_index("ix_credit_application_campaign_disbursed_on", table_name="credit_application")
    op.drop_index("ix_credit_application_campaign_decided_on", table_name="credit_application")
    op.drop_index("ix_visit_bank_firm_visited_on", table_name="visit")
    op.create_index("ix_visit_bank_firm", "visit", ["bank_id", "firm_id"])
