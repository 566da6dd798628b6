"""The command_keys table of tansiq.messaging.store: idempotency keys of commands and their first results.

Revision ID: idempotent_0001
Revises: habits_0001
Create Date: 2026-11-30 04:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "idempotent_0001"
down_revision = "habits_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "command_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("scope", sa.String(length=200), nullable=False),
        sa.Column("command", sa.String(length=120), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("scope", "command", "key", name="uq_command_keys_scope_command_key"),
    )
    op.create_index(op.f("ix_command_keys_created_at"), "command_keys", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_command_keys_created_at"), table_name="command_keys")
    op.drop_table("command_keys")
