"""Accountability: the hash-chained audit, her right of access (export) and master-key rotation.

Real databases: SQLite files, and PostgreSQL for the chain (its head row is locked on append).
"""

import json
import stat
from datetime import datetime, timedelta, timezone

import pytest
from actors import actor  # tests/actors.py
from fixtures.databases import BACKENDS, throwaway_engine
from fixtures.referrals import staff
from sqlalchemy import select, text

from services.intake import audit
from services.intake import domain as intake
from services.intake.models import AuditEntry, create_all
from services.intake.schemas import BeneficiarySchema, ConsentSchema
from services.referrals import domain as referrals
from services.referrals.models import Base as ReferralsBase
from tansiq import accountability
from tansiq.crypto import DecryptionFailed, KeyRing, load_master_key
from tansiq.db import make_engine, session_scope
from tansiq.messaging.store import OutboxMessage, messaging_metadata

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)
WORKER = actor({"id": "s-1", "association": "amal-safi", "roles": ["case_worker"]})
ADMIN = actor({"id": "s-3", "association": "amal-safi", "roles": ["admin"]})
KHADIJA = {"first_name": "Khadija", "last_name": "Benali", "phone": "0612345678", "birth_date": "1990-04-12",
           "kind": "survivor", "needs": ["legal_orientation"], "urgency": "urgent", "notes": "Violences depuis 2019"}


@pytest.fixture(params=BACKENDS)
def engine(request, tmp_path):
    with throwaway_engine(request.param, tmp_path, create_all, "audit") as engine:
        yield engine


def in_unit(engine, function, *args, **kwargs):
    with session_scope(engine) as session:
        return function(session, *args, **kwargs)


def a_trail(engine, keyring):
    """A beneficiary with a few audited steps: register, read, consent, share."""
    registered = in_unit(engine, intake.register_beneficiary, keyring, BeneficiarySchema().load(KHADIJA), WORKER, NOW)
    beneficiary_id = registered["id"]
    in_unit(engine, intake.get_beneficiary, keyring, beneficiary_id, WORKER, NOW)
    in_unit(engine, intake.record_consent, beneficiary_id,
            ConsentSchema().load({"purpose": "legal_orientation", "fields": ["first_name"],
                                  "recipient_association": "wafae-marrakech"}), WORKER, NOW)
    in_unit(engine, intake.prepare_referral_share, keyring, beneficiary_id, "wafae-marrakech", "legal_orientation",
            ["first_name"], WORKER, NOW)
    return beneficiary_id


def verify(engine):
    return in_unit(engine, audit.verify)


def ids(engine):
    with engine.connect() as connection:
        return [row.id for row in connection.execute(text("SELECT id FROM audit_entry ORDER BY id"))]


TAMPERINGS = {
    "a detail changed": "UPDATE audit_entry SET detail = 'to nobody' WHERE id = {second}",
    "an action changed": "UPDATE audit_entry SET action = 'read_disclosures' WHERE id = {second}",
    "who acted changed": "UPDATE audit_entry SET staff_id = 's-9' WHERE id = {first}",
    "an entry removed": "DELETE FROM audit_entry WHERE id = {second}",
    "the last entry removed": "DELETE FROM audit_entry WHERE id = {last}",
    "a detail blanked without an erasure": "UPDATE audit_entry SET detail = '' WHERE id = {last}",
}


@pytest.mark.parametrize("tampering", TAMPERINGS)
def test_any_tampering_with_one_entry_is_detected(engine, tampering):
    a_trail(engine, KeyRing(bytes(32)))
    assert verify(engine) == []
    entries = ids(engine)
    with engine.begin() as connection:
        connection.execute(text(TAMPERINGS[tampering].format(first=entries[0], second=entries[1], last=entries[-1])))
    assert verify(engine), f"{tampering} went unnoticed"


def test_an_entry_naming_no_column_is_refused_not_written_short(engine):
    """The chain's INSERT is built once and run with the entry's values; one named wrongly (`feilds` for
    `fields`) would be dropped from the row and the hash alike, leaving an entry that verifies yet says
    less than its caller meant. It is refused, and nothing is written."""
    entry = {"beneficiary_id": "b-1", "staff_id": WORKER.id, "association": WORKER.association,
             "action": "read", "at": NOW}
    with pytest.raises(TypeError, match="feilds"):
        in_unit(engine, audit.append, feilds=["phone"], **entry)
    in_unit(engine, audit.append, fields=["phone"], **entry)
    with session_scope(engine) as session:
        assert [e.fields for e in session.scalars(select(AuditEntry))] == [["phone"]]
    assert verify(engine) == []


def test_reordered_entries_are_detected(engine):
    a_trail(engine, KeyRing(bytes(32)))
    first, second = ids(engine)[:2]
    columns = "beneficiary_id, staff_id, association, action, fields, detail, at, prev_hash, hash, detail_hash"
    with engine.begin() as connection:  # swap the contents of two rows: each row is intact, the order is not
        rows = {row.id: row for row in connection.execute(text(f"SELECT id, {columns} FROM audit_entry"))}
        for target, source in ((first, second), (second, first)):
            values = {name: getattr(rows[source], name) for name in columns.split(", ")}
            if isinstance(values["fields"], list):
                values["fields"] = json.dumps(values["fields"])
            connection.execute(text(f"UPDATE audit_entry SET {', '.join(f'{n} = :{n}' for n in values)} "
                                    f"WHERE id = :id"), {**values, "id": target})
    assert any("does not follow" in problem for problem in verify(engine))


def test_erasure_blanks_details_the_chain_still_verifies_and_everyone_is_told(engine):
    keyring = KeyRing(bytes(32))
    beneficiary_id = a_trail(engine, keyring)
    in_unit(engine, intake.erase_beneficiary, beneficiary_id, ADMIN, NOW)
    with session_scope(engine) as session:
        details = [e.detail for e in session.scalars(select(AuditEntry).where(
            AuditEntry.beneficiary_id == beneficiary_id))]
        erased = session.scalars(select(OutboxMessage).where(
            OutboxMessage.type == "ma.tansiq.beneficiary.erased.v1")).all()
    assert set(details) == {""}
    assert verify(engine) == []
    assert len(erased) == 1 and beneficiary_id in erased[0].body


def referrals_engine(path):
    engine = make_engine(f"sqlite:///{path}")
    ReferralsBase.metadata.create_all(engine)
    messaging_metadata.create_all(engine)
    return engine


def test_rotation_rewraps_every_key_and_everything_stays_readable(tmp_path):
    old, new = KeyRing(bytes(range(32))), KeyRing(bytes(range(1, 33)))
    engine = make_engine(f"sqlite:///{tmp_path / 'intake.sqlite3'}")
    create_all(engine)
    beneficiary_id = a_trail(engine, old)
    assert in_unit(engine, intake.rekey, old, new) == 1
    record = in_unit(engine, intake.get_beneficiary, new, beneficiary_id, WORKER, NOW)
    assert (record["first_name"], record["notes"] if "notes" in record else record["sessions"][0]["notes"]) == (
        "Khadija", "Violences depuis 2019")
    with pytest.raises(DecryptionFailed):  # the retired key opens nothing any more
        in_unit(engine, intake.get_beneficiary, old, beneficiary_id, WORKER, NOW)
    # Blind indexes follow the new key: the same woman registered again is still recognised.
    again = in_unit(engine, intake.register_beneficiary, new, BeneficiarySchema().load(KHADIJA), WORKER, NOW)
    assert [d["id"] for d in again["possible_duplicates"]] == [beneficiary_id]

    rengine = referrals_engine(tmp_path / "referrals.sqlite3")
    share = {"consent_id": "c-1", "shared": {"first_name": "Khadija"}, "override": False}
    with session_scope(rengine) as session:
        referral_id = referrals.create_referral(
            session, NOW, staff("amal-safi"), old, beneficiary_id=beneficiary_id, to_association="wafae-marrakech",
            service_category="legal_orientation", reason="Needs a lawyer", urgency="normal", share=share).id
    assert in_unit(rengine, referrals.rekey, old, new) == 2  # both parties are hosted here
    with session_scope(rengine) as session:
        seen = referrals.view(referrals.get_referral(session, referral_id), staff("wafae-marrakech"), NOW, new)
    assert (seen["shared"], seen["reason"]) == ({"first_name": "Khadija"}, "Needs a lawyer")


@pytest.fixture
def deployment(tmp_path, monkeypatch):
    """The intake and referrals databases and key files as `tansiq` finds them through its config."""
    monkeypatch.setenv("TANSIQ_VAR", str(tmp_path))
    for service in ("INTAKE", "REFERRALS"):
        monkeypatch.delenv(f"TANSIQ_{service}_DB_URI", raising=False)
    monkeypatch.delenv("TANSIQ_DATA_KEY_FILE", raising=False)
    monkeypatch.delenv("TANSIQ_REFERRALS_DATA_KEY_FILE", raising=False)
    monkeypatch.delenv("TANSIQ_KEYS_DIR", raising=False)
    engine = make_engine(f"sqlite:///{tmp_path / 'intake.sqlite3'}")
    create_all(engine)
    rengine = referrals_engine(tmp_path / "referrals.sqlite3")
    yield tmp_path, engine, rengine
    engine.dispose()
    rengine.dispose()


def test_tansiq_keys_rotate_replaces_the_key_files_and_retires_the_old_ones(deployment):
    var, engine, _ = deployment
    beneficiary_id = a_trail(engine, accountability.keyring("intake"))
    keys = var / "keys"  # tansiq.crypto.keys_dir() under this TANSIQ_VAR
    old_key = (keys / "intake-master.key").read_bytes()
    done = accountability.rotate_master_keys()
    count, retired = done["intake"]
    assert count == 1 and retired.read_bytes() == old_key and stat.S_IMODE(retired.stat().st_mode) == 0o600
    assert (keys / "intake-master.key").read_bytes() != old_key and not list(keys.glob("*.new"))
    record = in_unit(engine, intake.get_beneficiary, accountability.keyring("intake"), beneficiary_id, WORKER, NOW)
    assert record["first_name"] == "Khadija"
    with pytest.raises(DecryptionFailed):
        in_unit(engine, intake.get_beneficiary, KeyRing(load_master_key(retired)), beneficiary_id, WORKER, NOW)


def test_export_holds_everything_about_her_and_is_audited(deployment):
    _, engine, rengine = deployment
    beneficiary_id = a_trail(engine, accountability.keyring("intake"))
    share = {"consent_id": "c-1", "shared": {"first_name": "Khadija"}, "override": False}
    with session_scope(rengine) as session:
        referrals.create_referral(
            session, NOW, staff("amal-safi"), accountability.keyring("referrals"), beneficiary_id=beneficiary_id,
            to_association="wafae-marrakech", service_category="legal_orientation", reason="Needs a lawyer",
            urgency="normal", share=share, note="She prefers mornings")
    exported = accountability.export_person(beneficiary_id, by="s-3", now=NOW + timedelta(hours=1))
    assert (exported["first_name"], exported["phone"]) == ("Khadija", "0612345678")
    assert exported["sessions"][0]["notes"] == "Violences depuis 2019"
    assert [c["recipient_association"] for c in exported["consents"]] == ["wafae-marrakech"]
    assert [d["recipient_association"] for d in exported["disclosures"]] == ["wafae-marrakech"]
    assert exported["audit_trail"][-1]["action"] == "export" and exported["audit_trail"][-1]["staff_id"] == "s-3"
    [referral] = exported["referrals"]
    assert referral["reason"] == "Needs a lawyer" and referral["history"][0]["note"] == "She prefers mornings"
    json.dumps(exported, default=str)
    assert verify(engine) == []


def test_the_migration_chains_the_entries_written_before_it(tmp_path):
    from tansiq import migrations

    url = f"sqlite:///{tmp_path / 'intake.sqlite3'}"
    migrations.upgrade("intake", url, revision="eb0797f94a56")
    engine = make_engine(url)
    with engine.begin() as connection:
        for action in ("register", "read", "share"):
            connection.execute(text("INSERT INTO audit_entry (beneficiary_id, staff_id, association, action, fields, "
                                    "detail, at) VALUES ('b-1', 's-1', 'amal-safi', :action, '[]', 'x', :at)"),
                               {"action": action, "at": NOW})
    migrations.upgrade("intake", url)
    assert verify(engine) == []
    in_unit(engine, intake._audit, "b-1", WORKER, "read", [], NOW)  # a new entry continues the chain
    assert verify(engine) == []
    with engine.begin() as connection:
        connection.execute(text("UPDATE audit_entry SET action = 'erase' WHERE id = 2"))
    assert verify(engine)
    engine.dispose()


# --- anchoring: a chain rewritten as a whole, or cut, is caught by what was kept outside ---

def rewrite_whole_chain(engine, keep=None):
    """What an attacker with the database does: change an entry (or keep only the first `keep`), then
    recompute every hash and the head, so the chain verifies on its own."""
    from services.intake.models import AuditHead

    with session_scope(engine) as session:
        entries = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        if keep is None:
            entries[0].staff_id = "s-someone-else"
        else:
            for entry in entries[keep:]:
                session.delete(entry)
            entries = entries[:keep]
        previous = audit.GENESIS
        for entry in entries:
            entry.prev_hash, entry.detail_hash = previous, audit.digest(entry.detail or "")
            entry.hash = previous = audit.entry_hash(entry)
        head = session.get(AuditHead, audit.HEAD_ID)
        head.hash, head.entries = previous, len(entries)


@pytest.mark.parametrize("attack", ["rewritten", "cut"])
def test_an_anchor_catches_a_chain_rewritten_or_cut_as_a_whole(engine, attack):
    beneficiary_id = a_trail(engine, KeyRing(bytes(32)))
    kept = in_unit(engine, audit.anchor)
    assert kept["entries"] == len(ids(engine)) and in_unit(engine, audit.check_anchor, kept) == []
    in_unit(engine, intake.get_beneficiary, KeyRing(bytes(32)), beneficiary_id, WORKER, NOW)  # the chain goes on
    in_unit(engine, intake.erase_beneficiary, beneficiary_id, ADMIN, NOW)  # erasure blanks details, not hashes
    assert in_unit(engine, audit.check_anchor, kept) == [] and verify(engine) == []
    rewrite_whole_chain(engine, keep=None if attack == "rewritten" else kept["entries"] - 1)
    assert verify(engine) == [], "the attack needs an anchor to be seen: the chain alone verifies"
    problems = in_unit(engine, audit.check_anchor, kept)
    assert problems and ("rewritten" if attack == "rewritten" else "cut") in problems[0]


def test_the_anchor_command_refuses_the_data_folder_and_verify_checks_every_anchor(tmp_path, monkeypatch, capsys):
    from tansiq import cli

    var = tmp_path / "var"
    monkeypatch.setenv("TANSIQ_VAR", str(var))
    monkeypatch.delenv("TANSIQ_INTAKE_DB_URI", raising=False)
    engine = make_engine(f"sqlite:///{var / 'intake.sqlite3'}")
    create_all(engine)
    a_trail(engine, KeyRing(bytes(32)))

    assert cli.main(["audit", "anchor", "--output", str(var / "anchors.jsonl")]) == 2  # beside the data: refused
    kept_file = tmp_path / "coordinator" / "anchors.jsonl"
    kept_file.parent.mkdir()
    assert cli.main(["audit", "anchor", "--output", str(kept_file)]) == 0
    in_unit(engine, intake.get_beneficiary, KeyRing(bytes(32)), a_trail(engine, KeyRing(bytes(32))), WORKER, NOW)
    assert cli.main(["audit", "anchor", "--output", str(kept_file)]) == 0  # appended: two anchors now
    assert len(kept_file.read_text().splitlines()) == 2
    assert cli.main(["audit", "verify", "--anchor", str(kept_file)]) == 0
    assert "2 anchor(s) hold" in capsys.readouterr().out
    rewrite_whole_chain(engine)
    assert cli.main(["audit", "verify"]) == 0  # without the anchors the rewrite passes ...
    assert cli.main(["audit", "verify", "--anchor", str(kept_file)]) == 1  # ... with them it does not
    assert "rewritten" in capsys.readouterr().err
    engine.dispose()
