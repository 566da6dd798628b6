"""deliveries: a partial index of what may still go out (ix_deliveries_due), which sending reads alone,
instead of the index of every delivery's next_attempt_at

Sent deliveries are kept. Without it, the query of what is due (ordered by next_attempt_at) read every
delivery ever sent once PostgreSQL's statistics dated from a backlog: a sequential scan, or that column's
index over all of them, on every pass.

Revision ID: duesend_0001
Revises: flows_0001
Create Date: 2026-12-01 00:30:00
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = 'duesend_0001'
down_revision: Union[str, Sequence[str], None] = 'flows_0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

STILL_TO_SEND = "state IN ('queued', 'failed')"  # as services.notifications.models says it (a migration keeps its own)


def upgrade() -> None:
    op.create_index('ix_deliveries_due', 'deliveries', ['next_attempt_at', 'id'], unique=False,
                    postgresql_where=sa.text(STILL_TO_SEND), sqlite_where=sa.text(STILL_TO_SEND))
    # Nothing else reads it, and SQLite preferred it (a range over every delivery ever sent) to the one above.
    op.drop_index('ix_deliveries_next_attempt_at', table_name='deliveries')


def downgrade() -> None:
    op.create_index('ix_deliveries_next_attempt_at', 'deliveries', ['next_attempt_at'], unique=False)
    op.drop_index('ix_deliveries_due', table_name='deliveries')
