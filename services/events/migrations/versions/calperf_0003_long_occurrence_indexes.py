"""event_occurrences: partial indexes of the occurrences longer than 6 hours and than a day, by start,
(city, start), (venue, start)

Revision ID: calperf_0003
Revises: calperf_0002
Create Date: 2026-12-01 00:40:00

An overlap check or a month page looked back from its window as far as the longest stored occurrence: one
16-day exhibition made every create read 16 days of its city's rows. Ranges now look back at most 6 hours
(services.events.occurrences.TIERS) and the longer occurrences are read from these smaller indexes.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


revision: str = 'calperf_0003'
down_revision: Union[str, Sequence[str], None] = 'calperf_0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TIER_MINUTES = (361, 1441)  # as services.events.models says it (a migration keeps its own copy)
PLACES = {"start": [], "city": ["city_key"], "venue": ["venue_id"]}


def upgrade() -> None:
    for minutes in TIER_MINUTES:
        for name, columns in PLACES.items():
            op.create_index(f'ix_occurrences_over{minutes // 60}h_{name}', 'event_occurrences', [*columns, 'starts_at'],
                            unique=False, postgresql_where=sa.text(f"minutes > {minutes}"),
                            sqlite_where=sa.text(f"minutes > {minutes}"))


def downgrade() -> None:
    for minutes in TIER_MINUTES:
        for name in PLACES:
            op.drop_index(f'ix_occurrences_over{minutes // 60}h_{name}', table_name='event_occurrences')
