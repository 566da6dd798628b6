"""stored occurrences: event_occurrences, events.occurrences_until

Revision ID: calendar_0001
Revises: 5f2475e5e49e
Create Date: 2026-11-30 04:00:00

Existing events get occurrences_until NULL: listings expand them live until the events
service's timer stores them (occurrences.extend), so nothing is missing meanwhile.
"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op


revision: str = 'calendar_0001'
down_revision: Union[str, Sequence[str], None] = '5f2475e5e49e'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('events') as batch:
        batch.add_column(sa.Column('occurrences_until', sa.DateTime(timezone=True), nullable=True))
        batch.create_index('ix_events_occurrences_until', ['occurrences_until'])
    op.create_table(
        'event_occurrences',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('event_id', sa.String(length=64), nullable=False),
        sa.Column('recurrence_key', sa.String(length=40), nullable=False),
        sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('minutes', sa.Integer(), nullable=False),
        sa.Column('moved', sa.Boolean(), nullable=False),
        sa.Column('title', sa.String(length=200), nullable=False),
        sa.Column('city_key', sa.String(length=100), nullable=False),
        sa.Column('venue_id', sa.String(length=64), nullable=True),
        sa.Column('organiser', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('visibility', sa.String(length=10), nullable=False),
        sa.ForeignKeyConstraint(['event_id'], ['events.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('event_id', 'recurrence_key', name='uq_occurrence'),
    )
    op.create_index('ix_event_occurrences_event_id', 'event_occurrences', ['event_id'])
    op.create_index('ix_event_occurrences_minutes', 'event_occurrences', ['minutes'])
    op.create_index('ix_occurrences_city_start', 'event_occurrences', ['city_key', 'starts_at'])
    op.create_index('ix_occurrences_venue_start', 'event_occurrences', ['venue_id', 'starts_at'])
    op.create_index('ix_occurrences_start', 'event_occurrences', ['starts_at'])
    op.create_index('ix_occurrences_organiser_start', 'event_occurrences', ['organiser', 'starts_at'])


def downgrade() -> None:
    op.drop_table('event_occurrences')
    with op.batch_alter_table('events') as batch:
        batch.drop_index('ix_events_occurrences_until')
        batch.drop_column('occurrences_until')
