"""sealed payloads: referral values and free text sealed to the parties' keys; hosted association keys

Revision ID: sealing_0001
Revises: 54844f15b6bb
Create Date: 2026-11-30 03:10:00

Referrals made before this revision keep their clear `reason`, `decline_reason` and `outcome` columns
(no longer shown) and lose their per-referral encrypted copy of the shared values.
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

from tansiq.db import UTCDateTime

revision: str = 'sealing_0001'
down_revision: Union[str, Sequence[str], None] = '54844f15b6bb'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('referral_association_keys',
    sa.Column('association', sa.String(length=64), nullable=False),
    sa.Column('public_key', sa.Text(), nullable=False),
    sa.Column('wrapped_private_key', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('association')
    )
    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sealed', sa.JSON(), nullable=False, server_default='{}'))
        batch_op.add_column(sa.Column('sealing_keys', sa.JSON(), nullable=False, server_default='{}'))
        batch_op.add_column(sa.Column('copy_expires_at', UTCDateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_referrals_copy_expires_at'), ['copy_expires_at'], unique=False)
        batch_op.drop_column('shared_ciphertext')
        batch_op.drop_column('shared_key')
    with op.batch_alter_table('referral_history', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sealed_note', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('referral_history', schema=None) as batch_op:
        batch_op.drop_column('sealed_note')
    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('shared_key', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('shared_ciphertext', sa.LargeBinary(), nullable=True))
        batch_op.drop_index(batch_op.f('ix_referrals_copy_expires_at'))
        batch_op.drop_column('copy_expires_at')
        batch_op.drop_column('sealing_keys')
        batch_op.drop_column('sealed')
    op.drop_table('referral_association_keys')
