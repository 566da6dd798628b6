"""The outbox and inbox tables of tansiq.messaging.store, shared by every service's database.

One branch (label `messaging`) that every service's alembic environment includes
(tansiq.migrations adds this folder to its version_locations), instead of a copy in each
service's initial migration. Databases created before this branch existed already have
both tables (their initial migration made them): then this revision only records itself.

Revision ID: habits_0001
Revises:
Create Date: 2026-11-30 03:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "habits_0001"
down_revision = None
branch_labels = ("messaging",)
depends_on = None


def _existing_tables():
    return set(sa.inspect(op.get_bind()).get_table_names())


def upgrade() -> None:
    existing = _existing_tables()
    if "inbox" not in existing:
        op.create_table(
            "inbox",
            sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("consumer", sa.String(length=120), nullable=False),
            sa.Column("message_id", sa.String(length=64), nullable=False),
            sa.Column("type", sa.String(length=120), nullable=False),
            sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("consumer", "message_id", name="uq_inbox_consumer_message"),
        )
    if "outbox" not in existing:
        op.create_table(
            "outbox",
            sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("message_id", sa.String(length=64), nullable=False),
            sa.Column("type", sa.String(length=120), nullable=False),
            sa.Column("exchange", sa.String(length=120), nullable=False),
            sa.Column("routing_key", sa.String(length=255), nullable=False),
            sa.Column("body", sa.Text(), nullable=False),
            sa.Column("state", sa.String(length=16), nullable=False),
            sa.Column("attempts", sa.Integer(), nullable=False),
            sa.Column("last_error", sa.Text(), nullable=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
            sa.PrimaryKeyConstraint("seq"),
            sa.UniqueConstraint("message_id"),
        )
        op.create_index(op.f("ix_outbox_state"), "outbox", ["state"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_outbox_state"), table_name="outbox")
    op.drop_table("outbox")
    op.drop_table("inbox")
