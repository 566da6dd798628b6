"""event_imports.heartbeat_at: a running import writes it after every batch; a job whose heartbeat
is older than IMPORT_STALE_AFTER_S was interrupted (its process died) and is marked failed.

Revision ID: calendar_0002
Revises: calscale_0003
Create Date: 2026-11-30 09:30:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


revision: str = 'calendar_0002'
down_revision: Union[str, Sequence[str], None] = 'calscale_0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.add_column('event_imports', sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_event_imports_status', 'event_imports', ['status'])


def downgrade() -> None:
    op.drop_index('ix_event_imports_status', table_name='event_imports')
    with op.batch_alter_table('event_imports') as batch:
        batch.drop_column('heartbeat_at')
