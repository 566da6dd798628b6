"""sealed payloads: referral values and free text sealed to the parties' keys; hosted association keys

Revision ID: sealing_0001
Revises: 54844f15b6bb
Create Date: 2026-11-30 03:10:00

Existing referrals are sealed in place: their shared values (until now under a per-referral data key)
to the recipient, their reason, decline reason, outcome and history notes to both parties, with the
keys of the parties hosted here (the master key file from the referrals config). A partner party, whose
key this database does not know, reads them no more from here; it received them when they were sent.
"""
import json
from datetime import datetime, timezone

from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

from tansiq.db import UTCDateTime

revision: str = 'sealing_0001'
down_revision: Union[str, Sequence[str], None] = '54844f15b6bb'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('referral_association_keys',
    sa.Column('association', sa.String(length=64), nullable=False),
    sa.Column('public_key', sa.Text(), nullable=False),
    sa.Column('wrapped_private_key', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('association')
    )
    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sealed', sa.JSON(), nullable=False, server_default='{}'))
        batch_op.add_column(sa.Column('sealing_keys', sa.JSON(), nullable=False, server_default='{}'))
        batch_op.add_column(sa.Column('copy_expires_at', UTCDateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_referrals_copy_expires_at'), ['copy_expires_at'], unique=False)
    with op.batch_alter_table('referral_history', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sealed_note', sa.JSON(), nullable=True))
    _seal_existing_rows()
    # shared_ciphertext and shared_key stay as (always empty) columns: dropping them rebuilds the table on
    # SQLite, which its history rows' foreign keys refuse.


def _seal_existing_rows():
    from sqlalchemy.orm import Session

    from services.referrals import domain
    from services.referrals.models import Referral
    from tansiq import config
    from tansiq.crypto import FieldCipher, KeyRing, master_key_path

    bind = op.get_bind()
    old = bind.execute(sa.text("SELECT id, shared_ciphertext, shared_key, reason, decline_reason, outcome "
                               "FROM referrals")).all()
    if not old:
        return
    keyring = KeyRing.from_file(master_key_path("referrals", config.load("referrals")))
    now = datetime.now(timezone.utc)
    session = Session(bind=bind)
    for row in old:
        referral = session.get(Referral, row.id)
        referral.sealing_keys = {
            party: domain.hosted_public_key(session, keyring, party, now)
            for party, integration in ((referral.from_association, referral.from_integration),
                                       (referral.to_association, referral.to_integration))
            if integration != domain.QUEUE}
        sealed = {}
        if row.shared_key is not None and row.shared_ciphertext is not None:
            record = f"referral:{row.id}"
            cipher = FieldCipher(keyring.unwrap(row.shared_key, record), record)
            sealed["shared"] = domain._seal(referral, "shared", json.loads(cipher.decrypt("shared", row.shared_ciphertext)),
                                            readers=(referral.to_association,))
        for field in domain.TEXT_FIELDS:
            if getattr(row, field):
                sealed[field] = domain._seal(referral, field, getattr(row, field))
        referral.sealed = {field: value for field, value in sealed.items() if value}
        session.execute(sa.text("UPDATE referrals SET shared_ciphertext = NULL, shared_key = NULL WHERE id = :id"),
                        {"id": row.id})
        referral.reason, referral.decline_reason, referral.outcome = "", None, None
        for entry in referral.history:
            if entry.note:
                entry.sealed_note, entry.note = domain._seal(referral, "note", entry.note), ""
    session.flush()


def downgrade() -> None:
    with op.batch_alter_table('referral_history', schema=None) as batch_op:
        batch_op.drop_column('sealed_note')
    with op.batch_alter_table('referrals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_referrals_copy_expires_at'))
        batch_op.drop_column('copy_expires_at')
        batch_op.drop_column('sealing_keys')
        batch_op.drop_column('sealed')
    op.drop_table('referral_association_keys')
