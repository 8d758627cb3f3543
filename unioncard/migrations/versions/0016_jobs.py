"""Jobs: long work (exports, mailings) run by workers, with progress and a checkpoint

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-07 13:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'job',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('params', sa.Text(), nullable=False),
        sa.Column('actor', sa.Text(), nullable=False),
        sa.Column('org_path', sa.String(length=255), nullable=False),
        sa.Column('created_by', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('started_at', sa.DateTime(), nullable=True),
        sa.Column('worker', sa.String(length=120), nullable=True),
        sa.Column('heartbeat_at', sa.DateTime(), nullable=True),
        sa.Column('finished_at', sa.DateTime(), nullable=True),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('done', sa.BigInteger(), nullable=False),
        sa.Column('total', sa.BigInteger(), nullable=True),
        sa.Column('checkpoint', sa.Text(), nullable=True),
        sa.Column('result', sa.Text(), nullable=True),
        sa.Column('error', sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(['created_by'], ['user_account.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_job_status', 'job', ['status', 'heartbeat_at'])
    op.create_index('ix_job_created_by', 'job', ['created_by'])
    with op.batch_alter_table('mailing') as batch_op:
        batch_op.add_column(sa.Column('job_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_mailing_job_id', 'job', ['job_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('mailing') as batch_op:
        batch_op.drop_constraint('fk_mailing_job_id', type_='foreignkey')
        batch_op.drop_column('job_id')
    op.drop_index('ix_job_created_by', table_name='job')
    op.drop_index('ix_job_status', table_name='job')
    op.drop_table('job')
