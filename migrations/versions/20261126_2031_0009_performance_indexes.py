"""indexes and search support for scale (reserved; no-op until that work needs one)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 20:30:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
