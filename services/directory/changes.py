"""The directory's change feed: what the read models of the other services are made of (tansiq.readmodel).

Every transaction that changes an association (its details, services or keys) or a staff member raises
that record's version once and puts its whole new state in the outbox, in the same transaction: the
feed cannot miss a change or announce one that was rolled back. It is done here, from the session's
flush and commit events, so no code path that changes the directory can forget to announce it.
Sessions of the web app are announced by signin.py (opened, revoked); a token never leaves this
service, only its SHA-256.
"""

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from services.directory.models import Association, OfferedService, Staff, StaffSession
from services.directory.schemas import AssociationSchema, StaffSchema
from tansiq import contracts
from tansiq.messaging import outbox

SOURCE = "directory"
ASSOCIATION_CHANGED = "ma.tansiq.directory.association_changed.v1"
STAFF_CHANGED = "ma.tansiq.directory.staff_changed.v1"
SESSION_OPENED = "ma.tansiq.directory.session_opened.v1"
SESSIONS_REVOKED = "ma.tansiq.directory.sessions_revoked.v1"

_CHANGED = "directory_changed"  # session.info: the records this transaction changed
_ANNOUNCING = "directory_announcing"  # set while the commit writes versions: those writes are not changes
_associations_out, _staff_out = AssociationSchema(), StaffSchema()


def association_state(association):
    return {**_associations_out.dump(association), "version": association.version}


def staff_state(staff):
    return {**_staff_out.dump(staff), "active": bool(staff.active), "version": staff.version}


def session_state(row):
    return {"token_hash": row.token_hash, "staff_id": row.staff_id, "created_at": row.created_at.isoformat()}


def snapshot(session, now, with_sessions=False, session_lifetime=None):
    """Everything a read model starts from: every association and staff member (with versions), and the
    sessions still open when asked (the gateway only)."""
    answer = {
        "taken_at": now.isoformat(),
        "associations": [association_state(a) for a in session.scalars(select(Association).order_by(Association.slug))],
        "staff": [staff_state(s) for s in session.scalars(select(Staff).order_by(Staff.id))],
    }
    if with_sessions:
        live = select(StaffSession).where(StaffSession.revoked_at.is_(None))
        if session_lifetime is not None:
            live = live.where(StaffSession.created_at > now - session_lifetime)
        answer["sessions"] = [session_state(row) for row in session.scalars(live)]
    return answer


def session_opened(session, row):
    outbox.add(session, contracts.make(SESSION_OPENED, SOURCE, session_state(row)))


def sessions_revoked(session, staff_id, token_hashes):
    if token_hashes:
        outbox.add(session, contracts.make(SESSIONS_REVOKED, SOURCE,
                                           {"staff_id": staff_id, "token_hashes": sorted(token_hashes)}))


def _changed_record(obj):
    if isinstance(obj, Association):
        return Association, obj.slug
    if isinstance(obj, OfferedService):
        slug = obj.association_slug or (obj.association.slug if obj.association is not None else None)
        return (Association, slug) if slug else None
    if isinstance(obj, Staff):
        return Staff, obj.id
    return None


@event.listens_for(Session, "before_flush")
def _note_changes(session, _flush_context, _instances):
    if session.info.get(_ANNOUNCING):
        return
    for obj in (*session.new, *session.dirty, *session.deleted):
        record = _changed_record(obj)
        if record and (obj in session.new or obj in session.deleted or session.is_modified(obj)):
            session.info.setdefault(_CHANGED, set()).add(record)


@event.listens_for(Session, "before_commit")
def _announce_changes(session):
    session.flush()  # what is still pending is noted too (the commit's own flush comes after this event)
    changed = session.info.pop(_CHANGED, None)
    if not changed:
        return
    session.info[_ANNOUNCING] = True
    for model, key in sorted(changed, key=lambda record: (record[0].__name__, record[1])):
        record = session.get(model, key)
        if record is None:
            continue
        record.version = (record.version or 0) + 1
        if model is Association:
            session.refresh(record, ["services"])  # services added through the other side of the relationship
            outbox.add(session, contracts.make(ASSOCIATION_CHANGED, SOURCE, association_state(record)))
        else:
            outbox.add(session, contracts.make(STAFF_CHANGED, SOURCE, staff_state(record)))


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget(session):
    session.info.pop(_ANNOUNCING, None)
    session.info.pop(_CHANGED, None)
