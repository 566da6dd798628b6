"""events: the index on lower(city) carries what a feed's ETag reads (PostgreSQL INCLUDE)

Revision ID: calperf_0001
Revises: calendar_0002
Create Date: 2026-11-30 13:05:00

A city feed's ETag (ical.version: latest updated_at, number of events, sum of sequences, drafts and
audiences left out) was read from every one of the city's event rows, wide ones (their VEVENT text):
at 100,000 events, thousands of heap pages for an answer of a few bytes, the floor of a 304. With
these columns in the index, PostgreSQL answers it from the index alone. SQLite has no INCLUDE: there
it stays an index on lower(city).
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


revision: str = 'calperf_0001'
down_revision: Union[str, Sequence[str], None] = 'calendar_0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# city too: PostgreSQL reads an expression index alone only if it holds the columns named in it.
VERSION_COLUMNS = ['city', 'status', 'visibility', 'updated_at', 'sequence']


def upgrade() -> None:
    op.drop_index('ix_events_city_lower', table_name='events')
    op.create_index('ix_events_city_version', 'events', [sa.text('lower(city)')],
                    postgresql_include=VERSION_COLUMNS)


def downgrade() -> None:
    op.drop_index('ix_events_city_version', table_name='events')
    op.create_index('ix_events_city_lower', 'events', [sa.text('lower(city)')])
