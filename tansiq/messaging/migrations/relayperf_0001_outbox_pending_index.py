"""outbox: a partial index of the rows still to publish (ix_outbox_pending), which the relay reads alone.

Without it, each pass of the relay walked every row ever sent (they are kept, with their bodies blanked):
735 buffers a pass with 808 sent rows, growing with every message a service has sent.

Revision ID: relayperf_0001
Revises: privacy_0001
Create Date: 2026-12-01 00:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "relayperf_0001"
down_revision = "privacy_0001"
branch_labels = None
depends_on = None

PENDING_ONLY = "state = 'pending'"  # as tansiq.messaging.store says it (a migration keeps its own copy)


def upgrade() -> None:
    op.create_index("ix_outbox_pending", "outbox", ["seq"], unique=False,
                    postgresql_where=sa.text(PENDING_ONLY), sqlite_where=sa.text(PENDING_ONLY))


def downgrade() -> None:
    op.drop_index("ix_outbox_pending", table_name="outbox")
