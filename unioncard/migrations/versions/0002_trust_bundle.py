"""Keys: the trust bundles issued (public data only).

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('trust_bundle',
    sa.Column('version', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('issued_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('root_key_id', sa.String(length=32), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('content', sa.LargeBinary(), nullable=False),
    sa.Column('issued_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['issued_by'], ['user_account.id'], name=op.f('fk_trust_bundle_issued_by_user_account')),
    sa.PrimaryKeyConstraint('version', name=op.f('pk_trust_bundle'))
    )


def downgrade() -> None:
    op.drop_table('trust_bundle')
