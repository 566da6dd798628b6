"""partial index of a staff member's unread inbox items: (staff_id, created_at, id) WHERE read_at IS NULL

Revision ID: batchbench_0001
Revises: lists_0001
Create Date: 2026-11-30 06:30:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = 'batchbench_0001'
down_revision: Union[str, Sequence[str], None] = 'lists_0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('inbox_items', schema=None) as batch_op:
        batch_op.create_index('ix_inbox_items_staff_unread', ['staff_id', 'created_at', 'id'], unique=False,
                              sqlite_where=sa.text('read_at IS NULL'), postgresql_where=sa.text('read_at IS NULL'))


def downgrade() -> None:
    with op.batch_alter_table('inbox_items', schema=None) as batch_op:
        batch_op.drop_index('ix_inbox_items_staff_unread')
