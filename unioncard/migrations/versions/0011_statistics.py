"""Statistical reporting: organisation passports, activists' positions, campaigns and forms

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 01:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'organisation_passport',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('organisation_id', sa.Integer(), nullable=False),
        sa.Column('valid_from', sa.Date(), nullable=False),
        sa.Column('institution_type', sa.String(length=24), nullable=True),
        sa.Column('employees_total', sa.Integer(), nullable=True),
        sa.Column('employees_women', sa.Integer(), nullable=True),
        sa.Column('employees_youth', sa.Integer(), nullable=True),
        sa.Column('students_total', sa.Integer(), nullable=True),
        sa.Column('students_women', sa.Integer(), nullable=True),
        sa.Column('students_youth', sa.Integer(), nullable=True),
        sa.Column('founded_on', sa.Date(), nullable=True),
        sa.Column('legal_entity', sa.Boolean(), nullable=True),
        sa.Column('address', sa.String(length=300), nullable=True),
        sa.Column('phone', sa.String(length=16), nullable=True),
        sa.Column('email', sa.String(length=200), nullable=True),
        sa.Column('recorded_at', sa.DateTime(), nullable=False),
        sa.Column('recorded_by', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['organisation_id'], ['organisation.id'], ),
        sa.ForeignKeyConstraint(['recorded_by'], ['user_account.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('organisation_id', 'valid_from', name='uq_passport_org_date'),
    )
    op.create_index('ix_organisation_passport_organisation_id', 'organisation_passport', ['organisation_id'])
    op.create_table(
        'activist_position',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('organisation_id', sa.Integer(), nullable=False),
        sa.Column('person_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=24), nullable=False),
        sa.Column('starts_on', sa.Date(), nullable=False),
        sa.Column('ends_on', sa.Date(), nullable=True),
        sa.Column('elected_alternative', sa.Boolean(), nullable=False),
        sa.Column('elected_first_time', sa.Boolean(), nullable=False),
        sa.Column('is_paid', sa.Boolean(), nullable=False),
        sa.Column('recorded_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['organisation_id'], ['organisation.id'], ),
        sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_activist_position_organisation_id', 'activist_position', ['organisation_id'])
    op.create_index('ix_activist_position_person_id', 'activist_position', ['person_id'])
    op.create_table(
        'reporting_campaign',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('year', sa.Integer(), nullable=False),
        sa.Column('deadline', sa.Date(), nullable=False),
        sa.Column('opened_at', sa.DateTime(), nullable=False),
        sa.Column('opened_by', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['opened_by'], ['user_account.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('year'),
    )
    op.create_table(
        'stat_form',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('campaign_id', sa.Integer(), nullable=False),
        sa.Column('organisation_id', sa.Integer(), nullable=False),
        sa.Column('org_path', sa.String(length=255).with_variant(sa.String(length=255, collation='C'), 'postgresql'),
                  nullable=False),
        sa.Column('form', sa.String(length=8), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('institution_type', sa.String(length=24), nullable=True),
        sa.Column('students_organisation', sa.Boolean(), nullable=False),
        sa.Column('created_this_year', sa.Boolean(), nullable=False),
        sa.Column('members_under_half', sa.Boolean(), nullable=False),
        sa.Column('explanations', sa.JSON(), nullable=True),
        sa.Column('return_comment', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.Column('submitted_at', sa.DateTime(), nullable=True),
        sa.Column('decided_at', sa.DateTime(), nullable=True),
        sa.Column('reminded_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['campaign_id'], ['reporting_campaign.id'], ),
        sa.ForeignKeyConstraint(['organisation_id'], ['organisation.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('campaign_id', 'organisation_id', name='uq_stat_form_campaign_org'),
    )
    op.create_index('ix_stat_form_campaign_path', 'stat_form', ['campaign_id', 'org_path'])
    op.create_table(
        'stat_correction',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('form_id', sa.Integer(), nullable=False),
        sa.Column('row', sa.String(length=8), nullable=False),
        sa.Column('col', sa.String(length=12), nullable=False),
        sa.Column('registry_value', sa.Integer(), nullable=True),
        sa.Column('value', sa.Integer(), nullable=False),
        sa.Column('reason', sa.String(length=500), nullable=False),
        sa.Column('recorded_at', sa.DateTime(), nullable=False),
        sa.Column('recorded_by', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['form_id'], ['stat_form.id'], ),
        sa.ForeignKeyConstraint(['recorded_by'], ['user_account.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('form_id', 'row', 'col', name='uq_stat_correction_cell'),
    )
    op.create_table(
        'stat_form_value',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('form_id', sa.Integer(), nullable=False),
        sa.Column('row', sa.String(length=8), nullable=False),
        sa.Column('col', sa.String(length=12), nullable=False),
        sa.Column('value', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['form_id'], ['stat_form.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('form_id', 'row', 'col', name='uq_stat_value_cell'),
    )


def downgrade() -> None:
    op.drop_table('stat_form_value')
    op.drop_table('stat_correction')
    op.drop_index('ix_stat_form_campaign_path', table_name='stat_form')
    op.drop_table('stat_form')
    op.drop_table('reporting_campaign')
    op.drop_index('ix_activist_position_person_id', table_name='activist_position')
    op.drop_index('ix_activist_position_organisation_id', table_name='activist_position')
    op.drop_table('activist_position')
    op.drop_index('ix_organisation_passport_organisation_id', table_name='organisation_passport')
    op.drop_table('organisation_passport')
