"""event_occurrences: partial indexes of the occurrences longer than a day, by start, (city, start), (venue, start)

Revision ID: calperf_0003
Revises: calperf_0002
Create Date: 2026-12-01 00:40:00

An overlap check or a month page looked back from its window as far as the longest stored occurrence: one
16-day exhibition made every create read 16 days of its city's rows. Ranges now look back at most a day
(services.events.occurrences.LONG) and the longer occurrences are read from these small indexes.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


revision: str = 'calperf_0003'
down_revision: Union[str, Sequence[str], None] = 'calperf_0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

LONG_ONLY = "minutes > 1441"  # as services.events.models says it (a migration keeps its own copy)
INDEXES = {"start": [], "city": ["city_key"], "venue": ["venue_id"]}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(f'ix_occurrences_long_{name}', 'event_occurrences', [*columns, 'starts_at'], unique=False,
                        postgresql_where=sa.text(LONG_ONLY), sqlite_where=sa.text(LONG_ONLY))


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(f'ix_occurrences_long_{name}', table_name='event_occurrences')
