"""associations publish an X25519 encryption key (partners: what referral data to them is sealed to)

Revision ID: sealing_0003
Revises: 4caf63185245
Create Date: 2026-11-30 03:10:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = 'sealing_0003'
down_revision: Union[str, Sequence[str], None] = '4caf63185245'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('associations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('encryption_key', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('associations', schema=None) as batch_op:
        batch_op.drop_column('encryption_key')
