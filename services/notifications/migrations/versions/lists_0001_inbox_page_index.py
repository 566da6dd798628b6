"""index for paging a staff member's inbox newest first: (staff_id, created_at, id)

Revision ID: lists_0001
Revises: a2d1eec2e576
Create Date: 2026-11-30 04:30:00
"""
from typing import Sequence, Union

from alembic import op

revision: str = 'lists_0001'
down_revision: Union[str, Sequence[str], None] = 'a2d1eec2e576'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('inbox_items', schema=None) as batch_op:
        batch_op.create_index('ix_inbox_items_staff_page', ['staff_id', 'created_at', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('inbox_items', schema=None) as batch_op:
        batch_op.drop_index('ix_inbox_items_staff_page')
