"""indexes for paging sent and received referrals newest first: (association, created_at, id)

Revision ID: lists_0002
Revises: sealing_0001
Create Date: 2026-11-30 04:40:00
"""
from typing import Sequence, Union

from alembic import op

revision: str = 'lists_0002'
down_revision: Union[str, Sequence[str], None] = 'sealing_0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.create_index('ix_referrals_sent_page', ['from_association', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_referrals_received_page', ['to_association', 'created_at', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.drop_index('ix_referrals_received_page')
        batch_op.drop_index('ix_referrals_sent_page')
