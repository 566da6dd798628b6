"""The audit trail as a hash chain: each entry carries the hash of the one before it.

An entry's hash covers the previous hash and every column, with the detail by its own digest, so
erasure can blank a detail (her words may be in it) and the chain still verifies. A single head
row, locked on each append, holds the last hash and the count: appends are serialised, and
removing the last entries is detected too. verify() finds an entry changed, removed or reordered.
"""

import hashlib
import json
from datetime import timezone
from types import SimpleNamespace

from sqlalchemy import bindparam, insert, select, update

from services.intake.models import AuditEntry, AuditHead
from tansiq.db import insert_if_absent

GENESIS = "0" * 64
HEAD_ID = 1
ENTRIES, HEADS = AuditEntry.__table__, AuditHead.__table__  # Core: no ORM flush per entry
_LOCK_HEAD = select(HEADS.c.hash, HEADS.c.entries).where(HEADS.c.id == HEAD_ID).with_for_update()
# Built once, run with each entry's values (building them per entry was 5% of intake's CPU). An INSERT run
# with values ignores a name that is no column: append() refuses one itself (_COLUMNS).
_ADD_ENTRY = insert(ENTRIES)
_COLUMNS = frozenset(ENTRIES.c.keys())
_MOVE_HEAD = update(HEADS).where(HEADS.c.id == HEAD_ID).values(hash=bindparam("new_hash"),
                                                              entries=bindparam("new_count"))
# PostgreSQL runs both in one round trip (a data-modifying WITH runs whether or not the INSERT reads it);
# SQLite has no such WITH, so two statements there.
_ADD_ENTRY_MOVING_HEAD = insert(ENTRIES).add_cte(_MOVE_HEAD.cte("moved_head"))


def append(session, **columns):
    """Add an entry (AuditEntry's columns but the hashes) at the end of the chain; returns its hash.

    Core statements, not ORM objects: lock the head, then insert and move the head (one round trip on
    PostgreSQL, two on SQLite), and no flush, on every intake command."""
    head = session.execute(_LOCK_HEAD).first()
    if head is None:
        # The first entry ever: writers starting together on an empty chain each find no head. One
        # makes it; the others' INSERTs do nothing (no unique-key failure ending their command), and
        # all of them then wait on the head's lock like any later append.
        insert_if_absent(session, HEADS, {"id": HEAD_ID, "hash": GENESIS, "entries": 0})
        head = session.execute(_LOCK_HEAD).first()
    unknown = columns.keys() - _COLUMNS
    if unknown:  # an entry that says less than its caller meant would still verify
        raise TypeError(f"not columns of the audit trail: {sorted(unknown)}")
    entry = SimpleNamespace(**{"fields": [], "detail": "", **columns})
    entry.detail_hash = digest(entry.detail or "")
    entry.prev_hash = head[0]
    entry.hash = entry_hash(entry)
    moved = {"new_hash": entry.hash, "new_count": head[1] + 1}
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_ADD_ENTRY_MOVING_HEAD, {**vars(entry), **moved})
    else:
        session.execute(_ADD_ENTRY, vars(entry))
        session.execute(_MOVE_HEAD, moved)
    return entry.hash


def digest(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def entry_hash(entry):
    at = entry.at if entry.at.tzinfo else entry.at.replace(tzinfo=timezone.utc)
    body = [entry.prev_hash, entry.beneficiary_id, entry.staff_id, entry.association, entry.action,
            list(entry.fields or ()), entry.detail_hash, at.astimezone(timezone.utc).isoformat()]
    return digest(json.dumps(body, ensure_ascii=False, separators=(",", ":")))


def verify(session):
    """[problems] with the chain, in order; [] when every entry is where and what it was."""
    problems, previous, count, erased = [], GENESIS, 0, set()
    entries = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
    for entry in entries:
        count += 1
        if entry.prev_hash != previous:
            problems.append(f"entry {entry.id}: does not follow the entry before it (removed or reordered)")
        if entry_hash(entry) != entry.hash:
            problems.append(f"entry {entry.id}: changed after it was written")
        if entry.detail and digest(entry.detail) != entry.detail_hash:
            problems.append(f"entry {entry.id}: detail changed after it was written")
        if entry.action == "erase":
            erased.add(entry.beneficiary_id)
        previous = entry.hash
    for entry in entries:
        # Only erasure may blank a detail, and an erasure is itself in the chain.
        if not entry.detail and entry.detail_hash != digest("") and entry.beneficiary_id not in erased:
            problems.append(f"entry {entry.id}: detail removed without an erasure")
    head = session.get(AuditHead, HEAD_ID)
    if head is not None and (head.hash != previous or head.entries != count):
        problems.append(f"the chain ends at entry {count}, its head says {head.entries}: entries removed at the end")
    return problems


def anchor(session):
    """What to keep outside the data folder: the head hash and how many entries it closes."""
    head = session.get(AuditHead, HEAD_ID)
    return {"head": head.hash if head else GENESIS, "entries": head.entries if head else 0}


def check_anchor(session, kept):
    """[problems] if the chain no longer starts with the one `kept` anchored: whoever rewrote the whole
    chain (every hash recomputed) or cut it shorter cannot make its entry number `entries` hash to `head`."""
    entries, head = int(kept["entries"]), kept["head"]
    if entries == 0:
        return []
    entry = session.scalars(select(AuditEntry).order_by(AuditEntry.id).offset(entries - 1).limit(1)).first()
    if entry is None:
        return [f"the chain has fewer entries than the {entries} anchored: it was cut"]
    if entry.hash != head:
        return [f"entry {entries} of the chain is not the one anchored (hash {head[:12]}…): the chain was rewritten"]
    return []


def erase_details(session, beneficiary_id):
    """Her entries keep who, what and when; the free-form details go (their digests stay in the chain)."""
    for entry in session.scalars(select(AuditEntry).where(AuditEntry.beneficiary_id == beneficiary_id)):
        entry.detail = ""
