"""Loads from the union's earlier registry (АИС): one row per region, and each moved-in row's load

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 18:10:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

MARKED = ('organisation', 'membership', 'consent', 'card', 'activist_position')


def upgrade() -> None:
    op.create_table(
        'migration_load',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('region_org_code', sa.String(length=64), nullable=False),
        sa.Column('region_code', sa.String(length=2), nullable=True),
        sa.Column('organisation_id', sa.Integer(), nullable=False),
        sa.Column('source_name', sa.String(length=255), nullable=False),
        sa.Column('source_sha256', sa.String(length=64), nullable=False),
        sa.Column('source_counts', sa.JSON(), nullable=False),
        sa.Column('loaded_at', sa.DateTime(), nullable=False),
        sa.Column('seconds', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('region_org_code'),
    )
    for table in MARKED:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column('migration_load_id', sa.Integer(), nullable=True))
        # The reconciliation counts a load's rows by this column.
        op.create_index(f'ix_{table}_migration_load_id', table, ['migration_load_id'])


def downgrade() -> None:
    for table in MARKED:
        op.drop_index(f'ix_{table}_migration_load_id', table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column('migration_load_id')
    op.drop_table('migration_load')
