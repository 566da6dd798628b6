"""associations and staff carry a version: the change feed's order (tansiq.readmodel)

Revision ID: readmodels_0001
Revises: websec_0001
Create Date: 2026-11-30 06:10:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = 'readmodels_0001'
down_revision: Union[str, Sequence[str], None] = 'websec_0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    for table in ('associations', 'staff'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('version', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    for table in ('associations', 'staff'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('version')
