"""command_keys.subject: whose data a stored first result may hold, so erasure can blank it (tansiq.commands).

Revision ID: privacy_0001
Revises: idempotent_0001
Create Date: 2026-11-30 06:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "privacy_0001"
down_revision = "idempotent_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("command_keys") as batch:
        batch.add_column(sa.Column("subject", sa.String(length=64), nullable=True))
        batch.create_index(batch.f("ix_command_keys_subject"), ["subject"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("command_keys") as batch:
        batch.drop_index(batch.f("ix_command_keys_subject"))
        batch.drop_column("subject")
