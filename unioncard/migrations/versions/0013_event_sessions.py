"""Sessions (sittings) of an event, and the session doors' scans in the merged journal

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 05:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'event_session',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('event_id', sa.Integer(), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('room', sa.String(length=100), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('removed_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['event_id'], ['event.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_event_session_event_id', 'event_session', ['event_id'])
    with op.batch_alter_table('event_checkin') as batch:
        batch.add_column(sa.Column('session_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('direction', sa.String(length=3), nullable=True))
        batch.create_foreign_key('fk_event_checkin_session', 'event_session', ['session_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('event_checkin') as batch:
        batch.drop_constraint('fk_event_checkin_session', type_='foreignkey')
        batch.drop_column('direction')
        batch.drop_column('session_id')
    op.drop_index('ix_event_session_event_id', 'event_session')
    op.drop_table('event_session')
