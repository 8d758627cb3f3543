"""Members' own door: one-time sign-in codes, online applications; mailings, the outbox of messages and refused addresses

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-06 21:05:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'member_sign_in_code',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('contact', sa.String(length=200), nullable=False),
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('used_at', sa.DateTime(), nullable=True),
        sa.Column('signed_in_at', sa.DateTime(), nullable=True),
        sa.Column('signed_out_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_sign_in_code_contact', 'member_sign_in_code', ['contact', 'created_at'])
    op.create_table(
        'membership_application',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('organisation_id', sa.Integer(), nullable=False),
        sa.Column('org_path', sa.String(length=255), nullable=False),
        sa.Column('surname', sa.String(length=100), nullable=False),
        sa.Column('given_name', sa.String(length=100), nullable=False),
        sa.Column('patronymic', sa.String(length=100), nullable=True),
        sa.Column('birth_date', sa.Date(), nullable=False),
        sa.Column('sex', sa.String(length=8), nullable=True),
        sa.Column('category', sa.String(length=16), nullable=False),
        sa.Column('channel', sa.String(length=8), nullable=False),
        sa.Column('contact', sa.String(length=200), nullable=False),
        sa.Column('consent_version', sa.String(length=16), nullable=False),
        sa.Column('partner_transfer', sa.Boolean(), nullable=False),
        sa.Column('messaging', sa.Boolean(), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('code_hash', sa.String(length=64), nullable=True),
        sa.Column('code_expires_at', sa.DateTime(), nullable=True),
        sa.Column('code_attempts', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('confirmed_at', sa.DateTime(), nullable=True),
        sa.Column('existing_membership_id', sa.Integer(), nullable=True),
        sa.Column('decided_at', sa.DateTime(), nullable=True),
        sa.Column('decided_by', sa.Integer(), nullable=True),
        sa.Column('refusal_reason', sa.String(length=300), nullable=True),
        sa.Column('membership_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['organisation_id'], ['organisation.id']),
        sa.ForeignKeyConstraint(['existing_membership_id'], ['membership.id']),
        sa.ForeignKeyConstraint(['decided_by'], ['user_account.id']),
        sa.ForeignKeyConstraint(['membership_id'], ['membership.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_membership_application_organisation_id', 'membership_application', ['organisation_id'])
    op.create_table(
        'mailing',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('organisation_id', sa.Integer(), nullable=False),
        sa.Column('org_path', sa.String(length=255), nullable=False),
        sa.Column('category', sa.String(length=16), nullable=True),
        sa.Column('event_id', sa.Integer(), nullable=True),
        sa.Column('subject', sa.String(length=300), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('recipients', sa.Integer(), nullable=False),
        sa.Column('created_by', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['organisation_id'], ['organisation.id']),
        sa.ForeignKeyConstraint(['event_id'], ['event.id']),
        sa.ForeignKeyConstraint(['created_by'], ['user_account.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_table(
        'outbox_message',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('channel', sa.String(length=8), nullable=False),
        sa.Column('address', sa.String(length=200), nullable=False),
        sa.Column('kind', sa.String(length=24), nullable=False),
        sa.Column('subject', sa.String(length=300), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('person_id', sa.Integer(), nullable=True),
        sa.Column('mailing_id', sa.Integer(), nullable=True),
        sa.Column('consent_id', sa.Integer(), nullable=True),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(), nullable=True),
        sa.Column('last_error', sa.String(length=300), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('sent_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['person_id'], ['person.id']),
        sa.ForeignKeyConstraint(['mailing_id'], ['mailing.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_outbox_message_person_id', 'outbox_message', ['person_id'])
    op.create_index('ix_outbox_message_mailing_id', 'outbox_message', ['mailing_id'])
    op.create_index('ix_outbox_due', 'outbox_message', ['status', 'channel', 'next_attempt_at'])
    op.create_table(
        'undeliverable_address',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('channel', sa.String(length=8), nullable=False),
        sa.Column('address', sa.String(length=200), nullable=False),
        sa.Column('reason', sa.String(length=300), nullable=False),
        sa.Column('recorded_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ux_undeliverable', 'undeliverable_address', ['channel', 'address'], unique=True)


def downgrade() -> None:
    op.drop_index('ux_undeliverable', 'undeliverable_address')
    op.drop_table('undeliverable_address')
    op.drop_index('ix_outbox_due', 'outbox_message')
    op.drop_index('ix_outbox_message_mailing_id', 'outbox_message')
    op.drop_index('ix_outbox_message_person_id', 'outbox_message')
    op.drop_table('outbox_message')
    op.drop_table('mailing')
    op.drop_index('ix_membership_application_organisation_id', 'membership_application')
    op.drop_table('membership_application')
    op.drop_index('ix_sign_in_code_contact', 'member_sign_in_code')
    op.drop_table('member_sign_in_code')
