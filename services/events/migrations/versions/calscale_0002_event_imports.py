"""event_imports: jobs importing an association's existing calendar (.ics file or URL)

Revision ID: calscale_0002
Revises: calscale_0001
Create Date: 2026-11-30 06:20:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


revision: str = 'calscale_0002'
down_revision: Union[str, Sequence[str], None] = 'calscale_0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        'event_imports',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('association', sa.String(length=64), nullable=False),
        sa.Column('source', sa.String(length=500), nullable=False),
        sa.Column('actor_id', sa.String(length=64), nullable=True),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('total', sa.Integer(), nullable=True),
        sa.Column('processed', sa.Integer(), nullable=False),
        sa.Column('created', sa.Integer(), nullable=False),
        sa.Column('updated', sa.Integer(), nullable=False),
        sa.Column('unchanged', sa.Integer(), nullable=False),
        sa.Column('skipped', sa.Integer(), nullable=False),
        sa.Column('error_count', sa.Integer(), nullable=False),
        sa.Column('errors', sa.JSON(), nullable=False),
        sa.Column('message', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_event_imports_association', 'event_imports', ['association'])


def downgrade() -> None:
    op.drop_table('event_imports')
