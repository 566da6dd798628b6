"""The sealing migration seals the referrals made before it: nothing stays in clear, the parties still read."""

import json
from datetime import datetime, timezone

from fixtures.referrals import staff
from sqlalchemy import text
from sqlalchemy.orm import Session

from services.referrals import domain
from tansiq import migrations
from tansiq.crypto import FieldCipher, KeyRing
from tansiq.db import make_engine

NOW = datetime(2026, 11, 29, 9, 0, tzinfo=timezone.utc)
PII = {"first_name": "Khadija", "phone": "+212600000042"}
WORDS = ("Needs a lawyer", "Pas de place", "Elle a appelé deux fois")


def test_existing_referrals_are_sealed_in_place(tmp_path, monkeypatch):
    monkeypatch.setenv("TANSIQ_VAR", str(tmp_path))
    monkeypatch.delenv("TANSIQ_REFERRALS_DATA_KEY_FILE", raising=False)
    monkeypatch.delenv("TANSIQ_KEYS_DIR", raising=False)
    url = f"sqlite:///{tmp_path / 'referrals.sqlite3'}"
    migrations.upgrade("referrals", url, revision="54844f15b6bb")
    keyring = KeyRing.from_file(tmp_path / "keys" / "referrals-master.key")
    # A referral as the code before this revision stored it: values under its own data key, words in clear.
    data_key, wrapped = keyring.new_data_key("referral:r-1")
    ciphertext = FieldCipher(data_key, "referral:r-1").encrypt("shared", json.dumps(PII))
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO referrals (id, beneficiary_id, from_association, to_association, from_integration, "
            "to_integration, origin, service_category, reason, urgency, shared_fields, consent_override, state, tz, "
            "created_at, updated_at, decline_reason, shared_ciphertext, shared_key) VALUES ('r-1', 'b-1', "
            "'amal-safi', 'wafae-marrakech', 'tansiq', 'tansiq', 'local', 'legal_orientation', :reason, 'normal', "
            "'[\"first_name\", \"phone\"]', 0, 'received', 'Africa/Casablanca', :now, :now, :decline, :ct, :key)"),
            {"reason": WORDS[0], "decline": WORDS[1], "now": NOW, "ct": ciphertext, "key": wrapped})
        connection.execute(text(
            "INSERT INTO referral_history (referral_id, action, from_state, to_state, by, by_association, at, note) "
            "VALUES ('r-1', 'send', NULL, 'sent', 's-1', 'amal-safi', :now, :note)"), {"now": NOW, "note": WORDS[2]})

    migrations.upgrade("referrals", url)

    with engine.connect() as connection:
        raw = repr([connection.execute(text(f"SELECT * FROM {table}")).fetchall()
                    for table in ("referrals", "referral_history")])
    assert not [value for value in (*PII.values(), *WORDS) if value in raw]
    with Session(engine) as session:
        referral = domain.get_referral(session, "r-1")
        seen_by_recipient = domain.view(referral, staff("wafae-marrakech"), NOW, keyring)
        seen_by_sender = domain.view(referral, staff("amal-safi"), NOW, keyring)
    assert (seen_by_recipient["shared"], seen_by_recipient["reason"]) == (PII, WORDS[0])
    assert (seen_by_sender["decline_reason"], seen_by_sender["history"][0]["note"]) == (WORDS[1], WORDS[2])
    engine.dispose()
