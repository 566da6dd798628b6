"""event_occurrences: drop ix_event_occurrences_event_id, which uq_occurrence already is

Revision ID: calperf_0002
Revises: calperf_0001
Create Date: 2026-11-30 21:00:00

uq_occurrence (event_id, recurrence_key) starts with event_id, so it answers every lookup by event
(an event's rewrite, the cascade of its deletion). The separate index on event_id was the same
lookup twice, written on every stored occurrence at a random place (18 MB at 100,000 events).
"""
from typing import Sequence, Union

from alembic import op


revision: str = 'calperf_0002'
down_revision: Union[str, Sequence[str], None] = 'calperf_0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.drop_index('ix_event_occurrences_event_id', table_name='event_occurrences')


def downgrade() -> None:
    op.create_index('ix_event_occurrences_event_id', 'event_occurrences', ['event_id'])
