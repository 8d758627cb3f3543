"""Events, rosters, desks (stations), event bundles and the check-in journal

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 20:54:45.691508
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('trust_bundle', schema=None) as batch_op:
        batch_op.add_column(sa.Column('root_public_key', sa.LargeBinary(), nullable=True))
    op.create_table('event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('organisation_id', sa.Integer(), nullable=False),
    sa.Column('org_path', sa.String(length=255).with_variant(sa.String(length=255, collation='C'), 'postgresql'), nullable=False),
    sa.Column('starts_on', sa.Date(), nullable=False),
    sa.Column('ends_on', sa.Date(), nullable=False),
    sa.Column('venue', sa.String(length=300), nullable=False),
    sa.Column('admission', sa.String(length=16), nullable=False),
    sa.Column('roster_changed_at', sa.DateTime(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['created_by'], ['user_account.id'], name=op.f('fk_event_created_by_user_account')),
    sa.ForeignKeyConstraint(['organisation_id'], ['organisation.id'], name=op.f('fk_event_organisation_id_organisation')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event')),
    sa.UniqueConstraint('code', name=op.f('uq_event_code'))
    )
    op.create_table('event_bundle',
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('issued_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('feed_version', sa.Integer(), nullable=False),
    sa.Column('roster_count', sa.Integer(), nullable=False),
    sa.Column('revoked_count', sa.Integer(), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['event.id'], name=op.f('fk_event_bundle_event_id_event')),
    sa.PrimaryKeyConstraint('event_id', 'version', name=op.f('pk_event_bundle'))
    )
    op.create_table('event_roster',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('person_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['event.id'], name=op.f('fk_event_roster_event_id_event')),
    sa.ForeignKeyConstraint(['person_id'], ['person.id'], name=op.f('fk_event_roster_person_id_person')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event_roster')),
    sa.UniqueConstraint('event_id', 'person_id', name='uq_event_roster_person')
    )
    op.create_table('event_station',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('desk', sa.String(length=64), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.Column('last_seen_at', sa.DateTime(), nullable=True),
    sa.Column('last_bundle_version', sa.Integer(), nullable=True),
    sa.Column('clock_offset_seconds', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['created_by'], ['user_account.id'], name=op.f('fk_event_station_created_by_user_account')),
    sa.ForeignKeyConstraint(['event_id'], ['event.id'], name=op.f('fk_event_station_event_id_event')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event_station')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_event_station_token_hash'))
    )
    with op.batch_alter_table('event_station', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_event_station_event_id'), ['event_id'], unique=False)

    op.create_table('event_checkin',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('station_id', sa.Integer(), nullable=False),
    sa.Column('nonce', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('ref_nonce', sa.String(length=32), nullable=True),
    sa.Column('number', sa.String(length=16), nullable=True),
    sa.Column('role', sa.String(length=16), nullable=True),
    sa.Column('region_code', sa.String(length=2), nullable=True),
    sa.Column('verdict', sa.String(length=32), nullable=True),
    sa.Column('source', sa.String(length=8), nullable=True),
    sa.Column('station_clock', sa.DateTime(), nullable=False),
    sa.Column('effective_at', sa.DateTime(), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.Column('undone', sa.Boolean(), nullable=False),
    sa.Column('duplicate', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['event.id'], name=op.f('fk_event_checkin_event_id_event')),
    sa.ForeignKeyConstraint(['station_id'], ['event_station.id'], name=op.f('fk_event_checkin_station_id_event_station')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event_checkin')),
    sa.UniqueConstraint('nonce', name=op.f('uq_event_checkin_nonce'))
    )
    with op.batch_alter_table('event_checkin', schema=None) as batch_op:
        batch_op.create_index('ix_event_checkin_event_id', ['event_id', 'id'], unique=False)
        batch_op.create_index('ix_event_checkin_event_number', ['event_id', 'number'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('event_checkin', schema=None) as batch_op:
        batch_op.drop_index('ix_event_checkin_event_number')
        batch_op.drop_index('ix_event_checkin_event_id')

    op.drop_table('event_checkin')
    with op.batch_alter_table('event_station', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_event_station_event_id'))

    op.drop_table('event_station')
    op.drop_table('event_roster')
    op.drop_table('event_bundle')
    op.drop_table('event')
    with op.batch_alter_table('trust_bundle', schema=None) as batch_op:
        batch_op.drop_column('root_public_key')
