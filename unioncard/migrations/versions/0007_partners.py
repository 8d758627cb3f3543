"""Partner keys and the partner query log

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 22:14:14.035901
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('partner_key',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('partner_name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('key_prefix', sa.String(length=16), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('per_minute', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.Column('revoked_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['created_by'], ['user_account.id'], name=op.f('fk_partner_key_created_by_user_account')),
    sa.ForeignKeyConstraint(['revoked_by'], ['user_account.id'], name=op.f('fk_partner_key_revoked_by_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_partner_key')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_partner_key_key_hash'))
    )
    op.create_table('partner_query',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('method', sa.String(length=12), nullable=False),
    sa.Column('outcome', sa.String(length=24), nullable=False),
    sa.Column('card_id', sa.Integer(), nullable=True),
    sa.Column('client_ip', sa.String(length=45), nullable=True),
    sa.Column('reference', sa.String(length=24), nullable=False),
    sa.ForeignKeyConstraint(['card_id'], ['card.id'], name=op.f('fk_partner_query_card_id_card')),
    sa.ForeignKeyConstraint(['key_id'], ['partner_key.id'], name=op.f('fk_partner_query_key_id_partner_key')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_partner_query')),
    sa.UniqueConstraint('reference', name=op.f('uq_partner_query_reference'))
    )
    with op.batch_alter_table('partner_query', schema=None) as batch_op:
        batch_op.create_index('ix_partner_query_key_at', ['key_id', 'at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('partner_query', schema=None) as batch_op:
        batch_op.drop_index('ix_partner_query_key_at')

    op.drop_table('partner_query')
    op.drop_table('partner_key')
