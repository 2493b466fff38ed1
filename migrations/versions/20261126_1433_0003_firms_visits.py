"""firms visits schema changes (reserved; no-op until that work needs one)

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 14:33:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
