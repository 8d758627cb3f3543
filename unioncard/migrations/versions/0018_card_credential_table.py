"""Card credentials in a table of their own: a bureau batch stores 100 000 by COPY instead of
updating as many card rows

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 16:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'card_credential',
        sa.Column('card_id', sa.Integer(), nullable=False),
        sa.Column('credential', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['card_id'], ['card.id'], name=op.f('fk_card_credential_card_id_card')),
        sa.PrimaryKeyConstraint('card_id', name=op.f('pk_card_credential')),
    )
    op.execute("INSERT INTO card_credential (card_id, credential) "
               "SELECT id, credential FROM card WHERE credential IS NOT NULL")
    # Both databases drop a column in place (SQLite since 3.35): rebuilding the card table in
    # batch mode would copy every card and recreate its indexes for nothing.
    op.execute("ALTER TABLE card DROP COLUMN credential")


def downgrade() -> None:
    op.add_column('card', sa.Column('credential', sa.Text(), nullable=True))
    op.execute("UPDATE card SET credential = (SELECT credential FROM card_credential "
               "WHERE card_credential.card_id = card.id)")
    op.drop_table('card_credential')
