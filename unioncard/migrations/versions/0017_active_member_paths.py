"""Current members by path: a partial index, so counting a region's members (every list page
shows the total) reads the index alone instead of every membership row

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 14:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_membership_active_path', 'membership', ['org_path'],
                    postgresql_where=sa.text('is_active'), sqlite_where=sa.text('is_active'))


def downgrade() -> None:
    op.drop_index('ix_membership_active_path', table_name='membership')
