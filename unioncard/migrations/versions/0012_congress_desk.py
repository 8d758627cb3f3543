"""The congress desk: event days (a check-in per card per day), who was at the desk, the quorum
rule, badge printing per role, and delegates' absences for the credentials committee

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 04:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('event') as batch:
        batch.add_column(sa.Column('quorum_rule', sa.String(length=40), nullable=True))
        batch.add_column(sa.Column('badge_modes', sa.String(length=120), nullable=True))
    with op.batch_alter_table('event_checkin') as batch:
        batch.add_column(sa.Column('operator', sa.String(length=100), nullable=True))
        batch.add_column(sa.Column('event_day', sa.Date(), nullable=True))
    # Check-ins made before days counted: their day in Moscow time (the server's old single count).
    if op.get_bind().dialect.name == "sqlite":
        op.execute("UPDATE event_checkin SET event_day = date(effective_at, '+3 hours')")
    else:
        op.execute("UPDATE event_checkin SET event_day = CAST(effective_at + interval '3 hours' AS DATE)")
    op.create_index('ix_event_checkin_event_day', 'event_checkin', ['event_id', 'event_day'])
    op.create_table(
        'event_absence',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('event_id', sa.Integer(), nullable=False),
        sa.Column('person_id', sa.Integer(), nullable=False),
        sa.Column('reason', sa.String(length=300), nullable=False),
        sa.Column('recorded_by', sa.Integer(), nullable=True),
        sa.Column('recorded_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['event_id'], ['event.id']),
        sa.ForeignKeyConstraint(['person_id'], ['person.id']),
        sa.ForeignKeyConstraint(['recorded_by'], ['user_account.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('event_id', 'person_id', name='uq_event_absence_person'),
    )


def downgrade() -> None:
    op.drop_table('event_absence')
    op.drop_index('ix_event_checkin_event_day', 'event_checkin')
    with op.batch_alter_table('event_checkin') as batch:
        batch.drop_column('event_day')
        batch.drop_column('operator')
    with op.batch_alter_table('event') as batch:
        batch.drop_column('badge_modes')
        batch.drop_column('quorum_rule')
