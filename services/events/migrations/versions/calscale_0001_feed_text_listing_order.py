"""event text kept for feeds, stored occurrences indexed in a listing's order

Revision ID: calscale_0001
Revises: calendar_0001
Create Date: 2026-11-30 06:10:00

events.ics_text: each event's VEVENTs, rewritten with the event (NULL for existing events:
feeds write those on the fly until their next change). event_occurrences: one index per
listing order, (start, title, event, occurrence) and the same per city, so a page is read in
order and stops after its rows; on PostgreSQL the three text keys sort by code point
(COLLATE "C"), as the page's cursor does in Python.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


revision: str = 'calscale_0001'
down_revision: Union[str, Sequence[str], None] = 'calendar_0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

ORDERED = (('title', 200), ('event_id', 64), ('recurrence_key', 40))


def upgrade() -> None:
    with op.batch_alter_table('events') as batch:
        batch.add_column(sa.Column('ics_text', sa.Text(), nullable=True))
    if op.get_bind().dialect.name == 'postgresql':
        for column, length in ORDERED:
            op.alter_column('event_occurrences', column, type_=sa.String(length, collation='C'),
                            existing_nullable=False)
    op.drop_index('ix_occurrences_start', table_name='event_occurrences')
    op.drop_index('ix_occurrences_city_start', table_name='event_occurrences')
    op.create_index('ix_occurrences_order', 'event_occurrences', ['starts_at', 'title', 'event_id', 'recurrence_key'])
    op.create_index('ix_occurrences_city_order', 'event_occurrences',
                    ['city_key', 'starts_at', 'title', 'event_id', 'recurrence_key'])


def downgrade() -> None:
    op.drop_index('ix_occurrences_city_order', table_name='event_occurrences')
    op.drop_index('ix_occurrences_order', table_name='event_occurrences')
    op.create_index('ix_occurrences_city_start', 'event_occurrences', ['city_key', 'starts_at'])
    op.create_index('ix_occurrences_start', 'event_occurrences', ['starts_at'])
    if op.get_bind().dialect.name == 'postgresql':
        for column, length in ORDERED:
            op.alter_column('event_occurrences', column, type_=sa.String(length), existing_nullable=False)
    with op.batch_alter_table('events') as batch:
        batch.drop_column('ics_text')
