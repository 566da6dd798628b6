"""events.span_starts_at / span_ends_at: where an event's occurrences begin and end

Revision ID: calscale_0003
Revises: calscale_0002
Create Date: 2026-11-30 06:30:00

Feeds find the events of their window in the events table alone (no scan of a year of stored
occurrences). NULL for existing events: a feed counts them from their first start, without end,
until their next change writes the span. And an index on lower(city): a city's feed and its
ETag read the city's events only.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


revision: str = 'calscale_0003'
down_revision: Union[str, Sequence[str], None] = 'calscale_0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('events') as batch:
        batch.add_column(sa.Column('span_starts_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('span_ends_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_events_city_lower', 'events', [sa.text('lower(city)')])


def downgrade() -> None:
    op.drop_index('ix_events_city_lower', table_name='events')
    with op.batch_alter_table('events') as batch:
        batch.drop_column('span_ends_at')
        batch.drop_column('span_starts_at')
