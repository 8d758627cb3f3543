"""How a check-in's holder is known: the roster or the card's own verified credential

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 21:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('event_checkin', schema=None) as batch_op:
        batch_op.add_column(sa.Column('identified_by', sa.String(length=12), nullable=True))
        batch_op.add_column(sa.Column('credential_name', sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('event_checkin', schema=None) as batch_op:
        batch_op.drop_column('credential_name')
        batch_op.drop_column('identified_by')
