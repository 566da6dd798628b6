"""erased beneficiaries: an event about a woman heard after her erasure tells nobody

Revision ID: erasure_0001
Revises: duesend_0001
Create Date: 2026-12-01 18:00:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

from tansiq.db import UTCDateTime

revision: str = 'erasure_0001'
down_revision: Union[str, Sequence[str], None] = 'duesend_0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('erased_beneficiaries',
    sa.Column('beneficiary_id', sa.String(length=64), nullable=False),
    sa.Column('erased_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('beneficiary_id')
    )


def downgrade() -> None:
    op.drop_table('erased_beneficiaries')
