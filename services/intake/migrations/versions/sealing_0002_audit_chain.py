"""hash-chained audit: each entry carries the previous entry's hash; existing entries are chained in id order

Revision ID: sealing_0002
Revises: eb0797f94a56
Create Date: 2026-11-30 03:10:00
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.orm import Session

revision: str = 'sealing_0002'
down_revision: Union[str, Sequence[str], None] = 'eb0797f94a56'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('audit_head',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('entries', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('detail_hash', sa.String(length=64), nullable=True))
    _chain_existing_entries()


def _chain_existing_entries():
    from services.intake import audit
    from services.intake.models import AuditEntry, AuditHead

    session = Session(bind=op.get_bind())
    head = AuditHead(id=audit.HEAD_ID, hash=audit.GENESIS, entries=0)
    session.add(head)
    for entry in session.query(AuditEntry).order_by(AuditEntry.id):
        entry.detail_hash = audit.digest(entry.detail or "")
        entry.prev_hash = head.hash
        entry.hash = audit.entry_hash(entry)
        head.hash, head.entries = entry.hash, head.entries + 1
    session.flush()


def downgrade() -> None:
    with op.batch_alter_table('audit_entry', schema=None) as batch_op:
        batch_op.drop_column('detail_hash')
        batch_op.drop_column('hash')
        batch_op.drop_column('prev_hash')
    op.drop_table('audit_head')
