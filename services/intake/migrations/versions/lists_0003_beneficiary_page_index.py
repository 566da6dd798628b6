"""index for paging an association's beneficiaries newest first: (association, registered_at, id)

Revision ID: lists_0003
Revises: sealing_0002
Create Date: 2026-11-30 04:50:00
"""
from typing import Sequence, Union

from alembic import op

revision: str = 'lists_0003'
down_revision: Union[str, Sequence[str], None] = 'sealing_0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('beneficiary', schema=None) as batch_op:
        batch_op.create_index('ix_beneficiary_page', ['association', 'registered_at', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('beneficiary', schema=None) as batch_op:
        batch_op.drop_index('ix_beneficiary_page')
