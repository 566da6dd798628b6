"""revoked consents: what referrals heard of intake's revocations, for referrals committing after one

Revision ID: consents_0003
Revises: lists_0002
Create Date: 2026-12-01 15:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from tansiq.db import UTCDateTime

revision: str = 'consents_0003'
down_revision: Union[str, Sequence[str], None] = 'lists_0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('referral_revoked_consents',
    sa.Column('consent_id', sa.String(length=64), nullable=False),
    sa.Column('revoked_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('consent_id')
    )


def downgrade() -> None:
    op.drop_table('referral_revoked_consents')
