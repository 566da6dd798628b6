"""Referral rules as plain Python: the state machine, who may act, deadlines and what each change tells.

Every change writes its history row and its outbox messages in the caller's session, so
they commit (or not) together. Functions take `now` (aware UTC) and never read the clock.
"""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import or_, select
from sqlalchemy.orm import object_session, selectinload

from services.referrals.models import (
    AssociationKey,
    ErasedBeneficiary,
    FiredDeadline,
    HolidayOverride,
    Referral,
    ReferralHistory,
    RevokedConsent,
)
from services.referrals.workcal import WorkCalendar
from tansiq import commands, contracts, paging, sealing
from tansiq.contracts.actor import Actor
from tansiq.contracts.referrals import CLOSURE_REASONS, SHAREABLE_FIELDS
from tansiq.db import hold, insert_if_absent
from tansiq.errors import Conflict, DomainError, Forbidden, NotFound
from tansiq.messaging import outbox
from tansiq.messaging.topology import PARTNERS_OUTBOUND

SERVICE_SOURCE = "referrals"  # the envelope source of what the deadline clock says
TYPE = "ma.tansiq.referral.{}.v1".format
QUEUE = "queue"  # directory `integration` of a partner that uses its own software

SENT, RECEIVED, ACCEPTED, DECLINED, IN_PROGRESS = "sent", "received", "accepted", "declined", "in_progress"
COMPLETED, CLOSED, WITHDRAWN, EXPIRED, REROUTED = "completed", "closed", "withdrawn", "expired", "rerouted"
OPEN_STATES = (SENT, RECEIVED, ACCEPTED, IN_PROGRESS)
AWAITING_RESPONSE = (SENT, RECEIVED)
FINAL_STATES = (COMPLETED, CLOSED, WITHDRAWN, REROUTED)
# Lifecycle order, to tell "not yet" from "already past" in error messages.
ORDER = {SENT: 0, RECEIVED: 1, ACCEPTED: 2, DECLINED: 2, IN_PROGRESS: 3, EXPIRED: 2}

RECIPIENT, SENDER = "recipient", "sender"


@dataclass(frozen=True)
class Step:
    sources: tuple
    target: str
    side: str
    event: str  # verb of the message type
    hint: str  # what must happen first, for the error message


STEPS = {
    "acknowledge": Step((SENT,), RECEIVED, RECIPIENT, "acknowledged", ""),
    "accept": Step((RECEIVED,), ACCEPTED, RECIPIENT, "accepted", "acknowledge it first"),
    # Declining needs no acknowledgement first: a partner who cannot help says so in one step.
    "decline": Step((SENT, RECEIVED), DECLINED, RECIPIENT, "declined", "it was already answered"),
    "start": Step((ACCEPTED,), IN_PROGRESS, RECIPIENT, "started", "accept it first"),
    "complete": Step((IN_PROGRESS,), COMPLETED, RECIPIENT, "completed", "accept it and start it first"),
    "close": Step((ACCEPTED, IN_PROGRESS), CLOSED, RECIPIENT, "closed", "accept it first"),
    "withdraw": Step(OPEN_STATES, WITHDRAWN, SENDER, "withdrawn", ""),
    "reroute": Step((DECLINED, EXPIRED), REROUTED, SENDER, "rerouted", "it must be declined or expired first"),
    # The sender ends a declined or expired referral without re-routing it (she found help elsewhere, or no
    # longer wants it): closed for good, and whatever the recipient still held of it ends.
    "dismiss": Step((DECLINED, EXPIRED), CLOSED, SENDER, "dismissed", "it must be declined or expired first"),
}
ACTIONS = tuple(STEPS)
# Steps of the sender's side alone: partners are not sent them and cannot send them (docs/partners.md).
LOCAL_STEPS = ("reroute", "dismiss")
EVENT_TO_ACTION = {step.event: action for action, step in STEPS.items() if action not in LOCAL_STEPS}
DISMISSED = "closed by the sender without re-routing"

# Working time per urgency: (acknowledgement window, response window).
WINDOWS = {"urgent": (("hours", 4), ("days", 1)), "high": (("days", 1), ("days", 2)),
           "normal": (("days", 2), ("days", 5)), "low": (("days", 5), ("days", 10))}
REMINDER_AT = 0.75  # of each window
EXPIRY_AFTER_DAYS = 5  # working days after the response deadline
COPY_RETENTION_DAYS = 90  # default: how long a recipient keeps her data after a referral closed or completed
# Free text: a person's words, sealed to both parties. The shared values go to the recipient alone.
TEXT_FIELDS = ("reason", "decline_reason", "outcome")
BENEFICIARY_ERASED = "beneficiary erased"

# (kind, time column, states it applies to, message verb, deadline, column of the deadline it precedes)
DEADLINE_STEPS = (
    ("ack_reminder", "ack_remind_at", (SENT,), "reminder_due", "acknowledgement", "ack_due"),
    ("ack_escalation", "ack_due", (SENT,), "escalated", "acknowledgement", None),
    ("response_reminder", "response_remind_at", AWAITING_RESPONSE, "reminder_due", "response", "response_due"),
    ("response_escalation", "response_due", AWAITING_RESPONSE, "escalated", "response", None),
    ("expiry", "expires_at", AWAITING_RESPONSE, "expired", "response", None),
)


# ---- calendar and deadlines -------------------------------------------------------------------

def load_calendar(session):
    overrides = {row.day: row.is_holiday for row in session.scalars(select(HolidayOverride))}
    return WorkCalendar(overrides)


def set_holiday(session, now, actor, day, is_holiday, name=""):
    """Add or correct one day of the holiday calendar (admins only); running clocks follow."""
    actor.require("deadlines.manage")
    row = session.get(HolidayOverride, day) or HolidayOverride(day=day)
    row.is_holiday, row.name, row.set_by, row.set_at = is_holiday, name, actor.id, now
    session.add(row)
    session.flush()
    calendar = load_calendar(session)
    # Steps that already fired stay fired (FiredDeadline); the others move with the calendar.
    for referral in session.scalars(select(Referral).where(Referral.state.in_(AWAITING_RESPONSE))).all():
        for column, value in compute_deadlines(calendar, referral.urgency, referral.created_at).items():
            setattr(referral, column, value)
    return row


def _window(calendar, spec):
    unit, amount = spec
    return calendar.days(amount) if unit == "days" else timedelta(hours=amount)


def compute_deadlines(calendar, urgency, sent_at):
    ack_window, response_window = (_window(calendar, spec) for spec in WINDOWS[urgency])
    response_due = calendar.add(sent_at, response_window)
    return {
        "ack_remind_at": calendar.add(sent_at, ack_window * REMINDER_AT),
        "ack_due": calendar.add(sent_at, ack_window),
        "response_remind_at": calendar.add(sent_at, response_window * REMINDER_AT),
        "response_due": response_due,
        "expires_at": calendar.add(response_due, calendar.days(EXPIRY_AFTER_DAYS)),
    }


def is_overdue(referral, now):
    if referral.state == SENT and referral.ack_due and referral.ack_due <= now:
        return True
    return referral.state in AWAITING_RESPONSE and referral.response_due is not None and referral.response_due <= now


def scan_deadlines(session, now):
    """Fire every reminder, escalation and expiry that is due, each exactly once; returns [(id, kind)].

    Two scanners racing (several replicas) collide on FiredDeadline's unique key: one commit
    fails and rolls back its messages with it, the other's stand.
    """
    fired = []
    candidates = session.scalars(
        select(Referral).where(Referral.state.in_(AWAITING_RESPONSE),
                               or_(Referral.ack_remind_at <= now, Referral.response_remind_at <= now))
        .order_by(Referral.created_at)
    ).all()
    for referral in candidates:
        done = set(session.scalars(select(FiredDeadline.kind).where(FiredDeadline.referral_id == referral.id)))
        for kind, column, states, verb, deadline, precedes in DEADLINE_STEPS:
            due_at = getattr(referral, column)
            if kind in done or due_at is None or due_at > now or referral.state not in states:
                continue
            # A reminder the scanner reaches after its deadline passed helps nobody: record it as skipped.
            skipped = precedes is not None and getattr(referral, precedes) <= now
            session.add(FiredDeadline(referral_id=referral.id, kind=kind, due_at=due_at, fired_at=now, skipped=skipped))
            if skipped:
                continue
            if kind == "expiry":
                _move(session, referral, EXPIRED, "expire", None, now,
                      note=f"no response {EXPIRY_AFTER_DAYS} working days after the response deadline")
            deadline_due = referral.ack_due if deadline == "acknowledgement" else referral.response_due
            _publish(session, referral, verb, SERVICE_SOURCE, None,
                     {"deadline": deadline, "due_at": deadline_due.isoformat()})
            fired.append((referral.id, kind))
    session.flush()
    return fired


# ---- creating and re-routing ------------------------------------------------------------------

def create_referral(session, now, actor, keyring, *, beneficiary_id, to_association, service_category, reason,
                    urgency, share, from_integration="tansiq", to_integration="tansiq", recipient_offers=True,
                    service_id=None, rerouted_from=None, calendar=None, note="", to_encryption_key=None,
                    referral_id=None):
    """Record a referral and tell the recipient. `share` is intake's answer to prepare_referral_share.

    Everything personal is sealed before it leaves the sender: the shared values to the recipient's
    public key (`to_encryption_key` for a partner recipient, published in the directory) — by intake
    already when `share` holds "sealed_shared" for `referral_id` — the reason and the note to both sides.
    """
    check_can_create(actor, to_association, service_category, recipient_offers)
    presealed = share.get("sealed_shared")
    shared = dict(share.get("shared") or {})
    names = list(share.get("fields") or ()) if presealed else list(shared)
    unknown = sorted(set(names) - set(SHAREABLE_FIELDS))
    if unknown:
        raise DomainError(f"these fields cannot be shared: {', '.join(unknown)}", code="invalid_fields")
    if not share.get("consent_id") and not share.get("override"):
        raise Forbidden("no consent covers this recipient and purpose", code="no_consent")
    calendar = calendar or load_calendar(session)
    referral = Referral(
        id=referral_id or str(uuid.uuid4()), beneficiary_id=beneficiary_id, from_association=actor.association,
        to_association=to_association, from_integration=from_integration, to_integration=to_integration,
        origin="local", service_category=service_category, service_id=service_id, reason="", urgency=urgency,
        shared_fields=sorted(names),
        consent_id=share.get("consent_id"), consent_override=bool(share.get("override")), state=SENT,
        created_by=actor.id, created_at=now, updated_at=now, rerouted_from=rerouted_from,
        **compute_deadlines(calendar, urgency, now),
    )
    read_association_keys(session, (actor.association, to_association))  # one SELECT for both
    referral.sealing_keys = {
        actor.association: hosted_public_key(session, keyring, actor.association, now),
        to_association: recipient_public_key(session, keyring, to_association, to_integration, to_encryption_key,
                                             now),
    }
    if presealed and sealing.readers_of(presealed) != {to_association}:
        raise DomainError("the shared values must be sealed to the recipient alone", code="invalid_fields")
    wire = {"shared": presealed or _seal(referral, "shared", shared, readers=(to_association,)),
            "reason": _seal(referral, "reason", reason)}
    # A partner recipient keeps its copy in its own system: ours holds only the sender's reason.
    referral.sealed = wire if to_integration != QUEUE else {"reason": wire["reason"]}
    session.add(referral)
    override = "consent override recorded by intake" if referral.consent_override else ""
    _history(session, referral, "send", None, SENT, actor, now, override, written=note)
    _publish_sent(session, referral, wire, actor)
    session.flush()
    return referral


def check_can_create(actor, to_association, service_category, recipient_offers):
    """Refuse early (before asking intake for data: it records a disclosure) a referral that could not be made."""
    _require_role(actor)
    if to_association == actor.association:
        raise DomainError("a referral goes to another association", code="self_referral")
    if not recipient_offers:
        raise DomainError(f"{to_association} does not offer an active '{service_category}' service",
                          code="service_not_offered")


def check_can_reroute(session, referral_id, actor, to_association=None):
    """Refuse early (before asking intake for data) a re-route that could not happen. Locked as a step's is:
    reroute() changes the old referral from what it read here."""
    referral = get_referral(session, referral_id, for_update=True)
    _check(referral, "reroute", actor)
    if to_association == referral.to_association:
        raise DomainError("re-route to a different association than the one that declined",
                          code="same_recipient")
    return referral


def reroute(session, now, actor, keyring, referral_id, *, to_association, share, to_integration="tansiq",
            recipient_offers=True, service_category=None, reason=None, urgency=None, service_id=None,
            calendar=None, note="", to_encryption_key=None, new_referral_id=None):
    """One step: close a declined/expired referral as re-routed and send a new one linked to it.

    The new recipient is hosted here or its key is in `to_encryption_key` (a partner's, from the directory).
    """
    old = check_can_reroute(session, referral_id, actor, to_association)
    new = create_referral(
        session, now, actor, keyring, beneficiary_id=old.beneficiary_id, to_association=to_association,
        service_category=service_category or old.service_category,
        reason=reason or open_field(keyring, old, "reason", actor.association) or "",
        urgency=urgency or old.urgency, share=share, from_integration=old.from_integration,
        to_integration=to_integration, recipient_offers=recipient_offers, service_id=service_id,
        rerouted_from=old.id, calendar=calendar, note=note, to_encryption_key=to_encryption_key,
        referral_id=new_referral_id,
    )
    old.rerouted_to = new.id
    _move(session, old, REROUTED, "reroute", actor, now, note=f"re-routed to {to_association} as {new.id}")
    end_unanswered_copy(session, old, now, "re-routed by the sender")
    # Only the sender's side needs this; the association that declined is not told where she went.
    _publish(session, old, "rerouted", actor.association, actor,
             {"new_referral_id": new.id, "new_to_association": to_association}, partners=(old.from_association,))
    session.flush()
    return new


# ---- transitions ------------------------------------------------------------------------------

def transition(session, now, actor, referral_id, action, *, reason=None, outcome=None, note="",
               retention_days=COPY_RETENTION_DAYS, presealed=None):
    """Apply `action` (acknowledge, accept, decline, start, complete, close, withdraw, dismiss) by `actor`.

    `presealed` holds what a partner system sealed itself ({"decline_reason" | "outcome" | "note": sealed}).
    Withdraw and decline end the recipient's copy at once; close and complete keep it
    `retention_days`, then expire_copies() ends it. Dismiss ends what an expired referral's recipient still
    held (a declined one's ended with the decline) and tells it as any other end of its copy (data_erased).
    """
    if action == "reroute":
        raise DomainError("use reroute() with a new recipient", code="invalid_request")
    referral = get_referral(session, referral_id, for_update=True)
    step = _check(referral, action, actor)
    extra, presealed = {}, dict(presealed or {})
    erased = beneficiary_erased(session, referral)
    if erased:  # her record was erased: the step is taken, but no new words about her are kept or passed on
        outcome, note, presealed = None, "", {}
        if action != "close":  # a closure's reason is one of CLOSURE_REASONS, not words
            reason = None
    own_text = {"decline": "decline_reason", "complete": "outcome"}.get(action)
    sealed = {own_text: presealed[own_text]} if own_text and presealed.get(own_text) else {}
    if action == "decline" and not sealed.get("decline_reason") and not erased:
        if not (reason or "").strip():
            raise DomainError("a reason is required to decline a referral", code="reason_required")
        sealed["decline_reason"] = _seal(referral, "decline_reason", reason.strip())
    elif action == "close":
        if reason not in CLOSURE_REASONS:
            raise DomainError(f"closure reason must be one of: {', '.join(CLOSURE_REASONS)}",
                              code="reason_required")
        referral.closure_reason = extra["reason"] = reason
    elif action == "complete" and not sealed.get("outcome") and not erased:
        if not (outcome or "").strip():
            raise DomainError("an outcome is required to complete a referral", code="outcome_required")
        sealed["outcome"] = _seal(referral, "outcome", outcome.strip())
    referral.sealed = {**referral.sealed, **sealed}
    history_note = extra.get("reason", "") if action == "close" else ""
    entry = _move(session, referral, step.target, action, actor, now, note=history_note, written=note)
    if presealed.get("note") and not entry.sealed_note:
        entry.sealed_note = presealed["note"]
    if step.side == SENDER and (referral.shared_erased_at is not None or action == "withdraw"):
        # The recipient's copy has ended (a revoked consent, a decline…) or ends with this step: what the sender
        # writes now is for the sender alone. Its slot for the recipient goes before anything is published, so
        # neither a hosted recipient nor a partner gets a copy.
        entry.sealed_note = sealing.without(entry.sealed_note, referral.to_association)
    if entry.sealed_note:
        sealed["note"] = entry.sealed_note
    # The recipient is not told of a dismissal: its copy ended already, or ends below with data_erased.
    _publish(session, referral, step.event, actor.association, actor, extra, sealed=sealed,
             partners=() if action in LOCAL_STEPS else None)
    if action in ("withdraw", "decline"):
        destroy_recipient_copy(referral, now)
    elif action == "dismiss":
        end_unanswered_copy(session, referral, now, DISMISSED)
    elif action in ("close", "complete") and not erased:  # an erased one holds nothing left to expire
        referral.copy_expires_at = now + timedelta(days=retention_days)
    session.flush()
    return referral


def _check(referral, action, actor):
    step = STEPS.get(action)
    if step is None:
        raise DomainError(f"unknown action '{action}'; one of: {', '.join(ACTIONS)}", code="invalid_request")
    party = referral.to_association if step.side == RECIPIENT else referral.from_association
    if actor.association != party:
        raise Forbidden(f"only the {step.side} association ({party}) may {action} this referral")
    if not actor.via_partner:
        _require_role(actor)
    if referral.state not in step.sources:
        raise DomainError(_refusal(referral.state, action, step), code="invalid_transition",
                          details={"state": referral.state, "action": action})
    return step


def _refusal(state, action, step):
    message = f"cannot {action} a referral that is '{state}'"
    if state in FINAL_STATES:
        return f"{message}; '{state}' is final"
    if step.hint and ORDER.get(state, 99) < min(ORDER.get(s, 99) for s in step.sources):
        return f"{message}; {step.hint}"
    return f"{message}; that step is already past"


def _require_role(actor):
    actor.require("referrals.act")


# ---- partner messages and consent revocation --------------------------------------------------

def receive_partner_referral(session, now, keyring, source, data, to_integration="tansiq", calendar=None,
                             from_encryption_key=None):
    """A partner system sent a referral to one of our associations. None if it is a re-send of one we have.

    A referral id already used — by another association, or by this one for another referral —
    is refused (`duplicate_id`): the sender hears of it instead of its referral vanishing.
    A partner may seal `shared` and `reason` itself (to our association's key); values it sent in clear
    are sealed on arrival, so our database holds ciphertext only either way.
    """
    existing = session.get(Referral, data["referral_id"])
    if existing is not None:
        if _same_referral(existing, source, data):
            return None  # a re-send under a new message id
        raise Conflict(f"referral id {data['referral_id']!r} is already used; choose a new one",
                       code="duplicate_id")
    if source != data["from_association"]:
        raise Forbidden(f"{source} cannot send a referral on behalf of {data['from_association']}")
    if to_integration == QUEUE:
        raise DomainError("partner-to-partner referrals do not pass through Tansiq", code="not_allowed")
    calendar = calendar or load_calendar(session)
    presealed = dict(data.get("sealed") or {})
    referral = Referral(
        id=data["referral_id"], beneficiary_id=f"partner:{source}:{data['referral_id']}",
        from_association=source, to_association=data["to_association"], from_integration=QUEUE,
        to_integration=to_integration, origin="partner", service_category=data["service_category"],
        reason="", urgency=data["urgency"],
        shared_fields=sorted(data.get("shared") or data.get("shared_fields") or {}),
        consent_id=data.get("consent_id"), state=SENT,
        created_by=data.get("by"), created_at=now, updated_at=now, rerouted_from=None,
        **compute_deadlines(calendar, data["urgency"], now),
    )
    referral.sealing_keys = {source: from_encryption_key,
                             referral.to_association: hosted_public_key(session, keyring, referral.to_association, now)}
    referral.sealed = {
        "shared": presealed.get("shared") or _seal(referral, "shared", dict(data.get("shared") or {}),
                                                   readers=(referral.to_association,)),
        "reason": presealed.get("reason") or _seal(referral, "reason", data.get("reason") or ""),
    }
    session.add(referral)
    for field in ("shared", "reason"):
        if field in presealed and not _opens_for_recipient(keyring, referral, field):
            # Refused now, with an answer: stored, it would break every list the recipient reads.
            raise DomainError(f"the sealed {field} does not open with {referral.to_association}'s key",
                              code="sealed_unreadable")
    _history(session, referral, "send", None, SENT, Actor.partner(source, data.get("by")), now,
             "received from a partner system")
    # Our recipient learns of it from the internal event; the partner already knows what it sent.
    _publish(session, referral, "sent", source, None, _sent_data(referral), partners=())
    session.flush()
    return referral


def _opens_for_recipient(keyring, referral, field):
    try:
        return open_field(keyring, referral, field, referral.to_association) is not None
    except Exception:  # noqa: BLE001 - whatever a partner put there (tampered, malformed): it does not open
        return False


def _same_referral(referral, source, data):
    # The reason is sealed here (and may be sealed by the partner): compare what stays in clear.
    return (referral.origin == "partner" and referral.from_association == source == data["from_association"]
            and (referral.to_association, referral.service_category, referral.urgency)
            == (data["to_association"], data["service_category"], data["urgency"]))


def apply_partner_update(session, now, source, event_type, data, retention_days=COPY_RETENTION_DAYS):
    """A partner system reports a step on a referral it is party to. None when it is our own echo."""
    verb = event_type.split(".")[3]
    action = EVENT_TO_ACTION.get(verb)
    if action is None:
        raise DomainError(f"partners cannot send {event_type}", code="not_allowed")
    referral = get_referral(session, data["referral_id"], for_update=True)  # transition() takes it from here
    step = STEPS[action]
    party = referral.to_association if step.side == RECIPIENT else referral.from_association
    if source != party:
        # Refused, not ignored: the sender hears why. The message does not name the parties.
        raise Forbidden(f"{source} may not {action} this referral")
    party_integration = referral.to_integration if step.side == RECIPIENT else referral.from_integration
    if party_integration != QUEUE:
        return None  # the acting side uses Tansiq: this is our own event coming back
    # Each action happens at most once in a referral's life: a second one is a re-send or our echo.
    if any(entry.action == action for entry in referral.history):
        return None
    actor = Actor.partner(source, data.get("by"))
    return transition(session, now, actor, referral.id, action,
                      reason=data.get("reason"), outcome=data.get("outcome"), note=data.get("note") or "",
                      retention_days=retention_days, presealed=data.get("sealed"))


def _her(beneficiary_id):
    return f"referrals, about {beneficiary_id}"


def note_erased_beneficiary(session, beneficiary_id, now):
    """Remember that intake erased her, in a unit of work of its own committed before her referrals are erased.
    It holds her as a referral being made about her does (check_still_shareable): either that referral sees the
    note and is never made, or it commits first and the erasure that follows finds it."""
    hold(session, _her(beneficiary_id))
    insert_if_absent(session, ErasedBeneficiary, {"beneficiary_id": beneficiary_id, "erased_at": now})


def note_revoked_consent(session, consent_id, beneficiary_id, now):
    """As note_erased_beneficiary, for a consent of hers that intake revoked: no referral is made under it once
    noted, and one made before is found by the ending of the copies under it."""
    hold(session, _her(beneficiary_id))
    insert_if_absent(session, RevokedConsent, {"consent_id": consent_id, "revoked_at": now})


def check_still_shareable(session, beneficiary_id, consent_id):
    """In the unit of work making a referral from intake's share, before anything is written: refused if her
    erasure, or the revocation of the share's consent, was heard since intake shared, so that nothing is kept,
    and nothing sent to a partner. Holds her until the unit of work ends: a note being taken waits for it."""
    hold(session, _her(beneficiary_id))
    if session.get(ErasedBeneficiary, beneficiary_id) is not None:
        raise Forbidden("this beneficiary's personal data was erased", details={"reason": "erased"})
    if consent_id and session.get(RevokedConsent, consent_id) is not None:
        raise Forbidden("her consent to this sharing was revoked", code="no_consent")


def beneficiary_erased(session, referral):
    """Whether the woman this referral is about was erased (noted, or erased before notes were kept)."""
    return session.get(ErasedBeneficiary, referral.beneficiary_id) is not None or _erasure_told(referral)


def _erasure_told(referral):
    return any(entry.note == BENEFICIARY_ERASED for entry in referral.history)


def erase_shared_for_consent(session, now, consent_id, note="consent revoked"):
    """The consent behind these referrals was revoked: end the recipients' copies, tell them."""
    erased = []
    for referral in session.scalars(select(Referral).where(Referral.consent_id == consent_id)
                                    .order_by(Referral.id).with_for_update()):  # a step at once waits: get_referral
        if referral.shared_erased_at is not None:
            continue
        destroy_recipient_copy(referral, now)
        _announce_erasure(session, referral, now, note)
        erased.append(referral)
    session.flush()
    return erased


def erase_for_beneficiary(session, now, beneficiary_id):
    """She was erased: every copy of what was said about her ends, on both sides, with or without consent."""
    erased = []
    for referral in session.scalars(select(Referral).where(Referral.beneficiary_id == beneficiary_id)
                                    .order_by(Referral.id).with_for_update()):  # a step at once waits: get_referral
        # A partner is told even when its copy should already have ended (withdrawn, declined): it holds it.
        already = _erasure_told(referral)
        referral.sealed = {}
        for entry in referral.history:
            entry.sealed_note = None
        referral.shared_erased_at = referral.shared_erased_at or now
        referral.copy_expires_at = None
        if not already:
            _announce_erasure(session, referral, now, BENEFICIARY_ERASED)
        erased.append(referral)
    commands.forget_results(session, [referral.id for referral in erased])  # both sides' first answers
    session.flush()
    return erased


def expire_copies(session, now):
    """Closed and completed referrals whose retention ended: the recipient's copy ends now. Returns them."""
    due = session.scalars(select(Referral).where(Referral.copy_expires_at <= now).order_by(Referral.id)
                          .with_for_update()).all()
    for referral in due:
        destroy_recipient_copy(referral, now)
        _announce_erasure(session, referral, now, "retention period ended")
    session.flush()
    return due


SENDER_TEXT = ("reason",)  # what the sender wrote; decline_reason and outcome are the recipient's own words


def destroy_recipient_copy(referral, now):
    """The recipient can read nothing of what it was sent any more: the shared values, the reason and the
    sender's notes. What it wrote itself (its decline reason, outcome and notes) it still reads."""
    recipient = referral.to_association
    referral.sealed = {field: (sealing.without(value, recipient) if field in SENDER_TEXT else value)
                       for field, value in (referral.sealed or {}).items() if field != "shared"}
    referral.sealed = {field: value for field, value in referral.sealed.items() if value}
    for entry in referral.history:
        if entry.by_association != recipient:
            entry.sealed_note = sealing.without(entry.sealed_note, recipient)
    referral.shared_erased_at = referral.shared_erased_at or now
    referral.copy_expires_at = None
    # What the recipient's own idempotent commands first answered held the copy too.
    commands.forget_results(object_session(referral), [referral.id], association=recipient)


def end_unanswered_copy(session, referral, now, note):
    """The sender moved on from a declined or expired referral (re-routed or dismissed it): an expired one's
    recipient, who never answered, held it still; its copy ends now and it is told (data_erased). A declined
    one's copy ended with the decline: only the sender's note of this step is taken from it too."""
    copy_ended = referral.shared_erased_at is not None
    destroy_recipient_copy(referral, now)
    if not copy_ended:
        _announce_erasure(session, referral, now, note)


def _announce_erasure(session, referral, now, note):
    referral.updated_at = now
    _history(session, referral, "erase_shared", referral.state, referral.state, None, now, note)
    # The recipient must be told even when it holds the data in its own (partner) system.
    _publish(session, referral, "data_erased", referral.from_association, None, {"note": note},
             partners=(referral.to_association,))


# ---- keys -------------------------------------------------------------------------------------

_KEYS_READ = "referrals.association_keys"  # session.info: the key rows this unit of work has read


def read_association_keys(session, associations):
    """Read the key rows of `associations` in one SELECT and keep them for the unit of work (None where an
    association has none). SQLAlchemy's identity map holds rows weakly: a row read to seal a referral was
    gone when the answer to the sender opened it, and read again."""
    kept = session.info.setdefault(_KEYS_READ, {})
    missing = sorted(set(associations) - kept.keys())
    if missing:
        kept.update(dict.fromkeys(missing))
        kept.update({row.association: row for row in session.scalars(
            select(AssociationKey).where(AssociationKey.association.in_(missing)))})
    return kept


def _association_key(session, association):
    return read_association_keys(session, (association,))[association]


def check_id_unused(session, referral_id):
    """A new referral's id is derived from its idempotency key (Command.created_id): a key used again after it
    was forgotten (COMMAND_KEY_TTL_H) names a referral that exists. Refused as a reused key, before intake is
    asked for anything; else intake would share again and the referral fail on its id."""
    if referral_exists(session, referral_id):
        raise Conflict("this Idempotency-Key was already used for an earlier referral; send it with a new key",
                       code=commands.KEY_REUSED, details={"command": "referral"})


def referral_exists(session, referral_id):
    return session.scalar(select(Referral.id).where(Referral.id == referral_id)) is not None


def hosted_public_key(session, keyring, association, now):
    """The public encryption key of an association hosted here; its key pair is made on first use.

    Two units of work may make the first pair at the same moment (two referrals to an association new
    here): one pair stands, and both read it back, instead of one ending in a unique-key failure."""
    row = _association_key(session, association)
    if row is None:
        private = sealing.generate_private_key()
        insert_if_absent(session, AssociationKey, {
            "association": association, "public_key": sealing.public_key_b64(private), "created_at": now,
            "wrapped_private_key": keyring.wrap(sealing.private_key_bytes(private), _key_record(association))})
        row = session.scalars(select(AssociationKey).where(AssociationKey.association == association)).one()
        session.info[_KEYS_READ][association] = row
    return row.public_key


def recipient_public_key(session, keyring, association, integration, published, now):
    """The key a referral to `association` is sealed to: ours for a hosted one, its published one for a partner."""
    if integration != QUEUE:
        return hosted_public_key(session, keyring, association, now)
    if not published:
        raise DomainError(f"{association} has published no encryption key: nothing can be sealed for it",
                          code="no_encryption_key")
    try:
        sealing.load_public_key(published)
    except ValueError:
        raise DomainError(f"{association}'s published encryption key is not valid",
                          code="no_encryption_key") from None
    return published


def _private_key(keyring, referral, reader):
    row = _association_key(object_session(referral), reader)
    if row is None:
        return None  # not hosted here: a partner opens its copies in its own system
    return sealing.load_private_key(keyring.unwrap(row.wrapped_private_key, _key_record(reader)))


def _key_record(association):
    return f"association-key:{association}"


def rekey(session, keyring, new_keyring):
    """Master-key rotation: every hosted association's private key, rewrapped. Returns how many."""
    rows = session.scalars(select(AssociationKey)).all()
    for row in rows:
        row.wrapped_private_key = keyring.rewrap(row.wrapped_private_key, _key_record(row.association), new_keyring)
    session.flush()
    return len(rows)


def open_field(keyring, referral, field, reader):
    """What `reader` may read of a sealed field of this referral; None when there is nothing for her."""
    return _open(keyring, referral, referral.sealed.get(field) if referral.sealed else None, field, reader)


def _open(keyring, referral, sealed, field, reader):
    if not sealed or reader not in sealing.readers_of(sealed):
        return None
    private_key = _private_key(keyring, referral, reader)
    if private_key is None:
        return None
    return sealing.open_sealed(sealed, reader, private_key, _context(referral, field))


# ---- reading ----------------------------------------------------------------------------------


def get_referral(session, referral_id, for_update=False):
    """`for_update`: the row locked until the unit of work ends (PostgreSQL), for a unit of work that changes it
    from what it read: a step and an erasure at the same moment then take turns, and neither writes back
    what the other removed."""
    # Read again when locked: a row this session read before the lock may be older than what the lock waited for.
    referral = session.get(Referral, referral_id, with_for_update=for_update or None, populate_existing=for_update)
    if referral is None:
        raise NotFound(f"no referral {referral_id}")
    return referral


def get_for(session, referral_id, actor):
    """A referral as a party sees it; anyone else is told it does not exist."""
    if not actor.via_partner:
        actor.require("referrals.read")
    referral = get_referral(session, referral_id)
    if actor.association not in (referral.from_association, referral.to_association):
        raise NotFound(f"no referral {referral_id}")
    return referral


def list_referrals(session, now, association, direction="sent", status=None):
    """Referrals an association sent or received; overdue first, then by the next deadline."""
    if direction not in ("sent", "received"):
        raise DomainError("direction is 'sent' or 'received'", code="invalid_request")
    column = Referral.from_association if direction == "sent" else Referral.to_association
    query = select(Referral).where(column == association)
    if status:
        query = query.where(Referral.state == status)
    far = datetime.max.replace(tzinfo=timezone.utc)

    def order(referral):
        next_due = referral.ack_due if referral.state == SENT else referral.response_due
        active = referral.state in AWAITING_RESPONSE
        return (not is_overdue(referral, now), not active, (next_due if active else None) or far,
                -referral.created_at.timestamp())

    return sorted(session.scalars(query), key=order)


def referrals_about(session, association, beneficiary_id):
    """What `association` sent about one of its beneficiaries, newest first, each with its history.

    Only the sender's own referrals: the recipient never knows the sender's intake id (view hides it)."""
    query = (select(Referral).where(Referral.from_association == association, Referral.beneficiary_id == beneficiary_id)
             .options(selectinload(Referral.history)).order_by(Referral.created_at.desc(), Referral.id.desc()))
    return list(session.scalars(query))


def referrals_page(session, association, direction="sent", status=None, limit=None, cursor=None):
    """(referrals newest first, next cursor or None): one page of what an association sent or received.

    Keyset order by (created_at, id), which never moves: overdue-first would reorder pages as time
    passes. Each view says `overdue`; the pages show those first within what they list.
    """
    if direction not in ("sent", "received"):
        raise DomainError("direction is 'sent' or 'received'", code="invalid_request")
    column = Referral.from_association if direction == "sent" else Referral.to_association
    # Each view shows its history: one query for the page's histories, not one per referral.
    query = select(Referral).where(column == association).options(selectinload(Referral.history))
    if status:
        query = query.where(Referral.state == status)
    scope = ("referrals", association, direction, status)
    return paging.page_descending(session, query, (Referral.created_at, Referral.id), scope, limit, cursor)


def view(referral, actor, now, keyring):
    """What `actor` may see: the shared values only on the recipient's side; text only while her copy lasts."""
    data = {
        key: getattr(referral, key)
        for key in ("id", "beneficiary_id", "from_association", "to_association", "service_category",
                    "service_id", "urgency", "state", "consent_id", "consent_override", "created_by",
                    "created_at", "updated_at", "ack_due", "response_due", "expires_at",
                    "closure_reason", "rerouted_from", "rerouted_to", "shared_fields", "shared_erased_at",
                    "origin", "copy_expires_at")
    }
    reader = actor.association
    for field in TEXT_FIELDS:
        data[field] = open_field(keyring, referral, field, reader)
    data["reason"] = data["reason"] or ""
    data["overdue"] = is_overdue(referral, now)
    data["direction"] = "sent" if reader == referral.from_association else "received"
    if data["direction"] == "received":
        # The sender's intake id means nothing to the recipient; she is known by what was shared.
        data["beneficiary_id"] = None
        data["shared"] = shared_values(keyring, referral, reader)
    data["history"] = [
        {"action": h.action, "from_state": h.from_state, "to_state": h.to_state, "by": h.by,
         "by_association": h.by_association, "at": h.at,
         "note": " · ".join(filter(None, (_open(keyring, referral, h.sealed_note, "note", reader), h.note)))}
        for h in referral.history
    ]
    return data


def shared_values(keyring, referral, reader=None):
    """The values the recipient received, opened with her key; {} once her copy ended or when none were kept."""
    return open_field(keyring, referral, "shared", reader or referral.to_association) or {}


# ---- internals --------------------------------------------------------------------------------

def _context(referral, field):
    return sealing_context(referral.id, field)


def sealing_context(referral_id, field):
    """The associated data a referral's sealed `field` is bound to (the partner contract says the same)."""
    return f"referral:{referral_id}:{field}"


def _seal(referral, field, value, readers=None):
    """`value` sealed to `readers` (default: both parties) with their keys recorded on the referral."""
    keys = referral.sealing_keys or {}
    chosen = {name: keys[name] for name in (readers or keys) if keys.get(name)}
    return sealing.seal(value, chosen, _context(referral, field)) if chosen else None


def _move(session, referral, target, action, actor, now, note="", written=""):
    entry = _history(session, referral, action, referral.state, target, actor, now, note, written)
    referral.state = target
    referral.updated_at = now
    return entry


def _history(session, referral, action, from_state, to_state, actor, now, note="", written=""):
    """One history row; `note` is Tansiq's own words, `written` a person's (sealed to both parties)."""
    entry = ReferralHistory(
        referral=referral, action=action, from_state=from_state, to_state=to_state,
        by=actor.id if actor else None, by_association=actor.association if actor else None,
        at=now, note=note or "", sealed_note=_seal(referral, "note", written.strip()) if written.strip() else None,
    )
    session.add(entry)
    return entry


def _sent_data(referral, sealed=None):
    """referral.sent; values and words only sealed, and only in a party's own copy (`sealed`)."""
    return {
        "referral_id": referral.id, "from_association": referral.from_association,
        "to_association": referral.to_association, "service_category": referral.service_category,
        "urgency": referral.urgency, "reason": "", "shared": {}, "shared_fields": list(referral.shared_fields),
        "sealed": {field: value for field, value in (sealed or {}).items() if value},
        "consent_id": referral.consent_id,
        "ack_due": referral.ack_due.isoformat(), "response_due": referral.response_due.isoformat(),
        "rerouted_from": referral.rerouted_from,
    }


def _publish_sent(session, referral, sealed, actor):
    # The internal event (read by notifications and others) carries nothing sealed: our recipients
    # read the referral here. A queue partner gets the sealed values on its own queue.
    _publish(session, referral, "sent", actor.association, actor, _sent_data(referral), partners=())
    if referral.to_integration == QUEUE:
        sealed = {**sealed, **({"note": referral.history[0].sealed_note} if referral.history[0].sealed_note else {})}
        envelope = contracts.make(TYPE("sent"), actor.association, _sent_data(referral, sealed),
                                  correlationid=_correlation(referral))
        outbox.add(session, envelope, exchange=PARTNERS_OUTBOUND,
                   routing_key=f"{referral.to_association}.{envelope.type}")


def _publish(session, referral, verb, source, actor, extra, partners=None, sealed=None):
    """The internal event, plus a copy for each party that is a queue partner (not the one acting).

    Only the partner copies carry `sealed` (what a person wrote, sealed to the parties' keys).
    """
    base = {"referral_id": referral.id, "from_association": referral.from_association,
            "to_association": referral.to_association}
    if verb != "sent":
        base.update(by=actor.id if actor else None, urgency=referral.urgency)
    data = {**base, **extra}
    type_ = TYPE(verb)
    outbox.add(session, contracts.make(type_, source, data, correlationid=_correlation(referral)))
    if partners is None:
        partners = (referral.from_association, referral.to_association)
    integration = {referral.from_association: referral.from_integration,
                   referral.to_association: referral.to_integration}
    for slug in partners:
        if integration.get(slug) == QUEUE and not (actor and actor.association == slug):
            copy = {**data, "sealed": {k: v for k, v in sealed.items() if v}} if sealed else data
            envelope = contracts.make(type_, source, copy, correlationid=_correlation(referral))
            outbox.add(session, envelope, exchange=PARTNERS_OUTBOUND, routing_key=f"{slug}.{type_}")


def _correlation(referral):
    # Every message about one referral chain shares the id of the first referral of the chain.
    return referral.rerouted_from or referral.id


def about_beneficiary(session, now, keyring, beneficiary_id, association):
    """The referrals `association` made about one of its beneficiaries, as it sees them (her right of access)."""
    actor = Actor(association=association)
    referrals = session.scalars(select(Referral).where(Referral.beneficiary_id == beneficiary_id,
                                                       Referral.from_association == association)
                                .order_by(Referral.created_at)).all()
    return [view(referral, actor, now, keyring) for referral in referrals]
