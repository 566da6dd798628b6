"""a counter of each staff member's unread inbox items, kept with the items (the badge reads one row)

Revision ID: flows_0001
Revises: batchbench_0001
Create Date: 2026-11-30 09:20:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = 'flows_0001'
down_revision: Union[str, Sequence[str], None] = 'batchbench_0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('unread_counts',
                    sa.Column('staff_id', sa.String(length=64), nullable=False),
                    sa.Column('unread', sa.Integer(), nullable=False),
                    sa.PrimaryKeyConstraint('staff_id'))
    op.execute("INSERT INTO unread_counts (staff_id, unread) "
               "SELECT staff_id, count(*) FROM inbox_items WHERE read_at IS NULL GROUP BY staff_id")


def downgrade() -> None:
    op.drop_table('unread_counts')
