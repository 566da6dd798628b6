"""erased beneficiaries: what referrals heard of intake's erasures, for referrals committing after one

Revision ID: erasure_0004
Revises: consents_0003
Create Date: 2026-12-01 18:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from tansiq.db import UTCDateTime

revision: str = 'erasure_0004'
down_revision: Union[str, Sequence[str], None] = 'consents_0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('referral_erased_beneficiaries',
    sa.Column('beneficiary_id', sa.String(length=64), nullable=False),
    sa.Column('erased_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('beneficiary_id')
    )


def downgrade() -> None:
    op.drop_table('referral_erased_beneficiaries')
