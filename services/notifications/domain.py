"""Notification rules in plain Python: who is told, when, on which channel; delivery with retries.

Functions take a Session and `now` (aware UTC). `directory` is anything with the
directory's read methods (the service's read model, tansiq.readmodel.DirectoryView; in tests,
LocalDirectory of tests/fixtures/notifications.py).
"""

from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from services.notifications import rules
from services.notifications.models import (
    FAILED,
    QUEUED,
    READ,
    SENT,
    STILL_TO_SEND,
    Delivery,
    ErasedBeneficiary,
    InboxItem,
    Preference,
    UnreadCount,
    WebhookSubscription,
)
from tansiq import paging
from tansiq.contracts.fields import LANGUAGES
from tansiq.db import insert_if_absent, insert_many
from tansiq.errors import DomainError, NotFound

LOCAL_TZ = ZoneInfo("Africa/Casablanca")
OUTSIDE_CHANNELS = ("email", "sms")  # per-staff channels besides the inbox; webhooks are per association
DEFAULT_PREFERENCES = {
    "channels": ["inbox", "email"],
    "language": None,
    "quiet_start": "21:00",
    "quiet_end": "08:00",
    "digest": True,
    "digest_time": "08:00",
}
# Backoff before retry n (1-based): 1 min, 2, 4, … capped at 6 h; then the delivery stays failed.
RETRY_BASE = timedelta(minutes=1)
RETRY_CAP = timedelta(hours=6)
MAX_ATTEMPTS = 10
BATCH = 100
INBOX_ITEMS, DELIVERIES = InboxItem.__table__, Delivery.__table__  # written with Core (record_many)


# --- preferences -----------------------------------------------------------------------------------------------

def preferences(session, staff_id, directory_language=None):
    """Effective preferences of a staff member (stored row over the defaults; language from the directory)."""
    return _effective(staff_id, session.get(Preference, staff_id), directory_language)


def _effective(staff_id, row, directory_language):
    prefs = dict(DEFAULT_PREFERENCES)
    if row is not None:
        prefs.update(channels=list(row.channels), language=row.language, quiet_start=row.quiet_start,
                     quiet_end=row.quiet_end, digest=row.digest, digest_time=row.digest_time)
    prefs["language"] = prefs["language"] or _language(directory_language)
    # The inbox is the record of every notification: it cannot be switched off.
    if "inbox" not in prefs["channels"]:
        prefs["channels"] = ["inbox", *prefs["channels"]]
    return {"staff_id": staff_id, **prefs}


def set_preferences(session, staff_id, changes, now):
    """Store preferences (already validated by schemas.PreferencesSchema); returns the stored values."""
    row = session.get(Preference, staff_id)
    if row is None:
        row = Preference(staff_id=staff_id, **DEFAULT_PREFERENCES)
        session.add(row)
    for key, value in changes.items():
        setattr(row, key, list(value) if key == "channels" else value)
    if (row.quiet_start is None) != (row.quiet_end is None):
        raise DomainError("quiet hours need both a start and an end", code="invalid_request")
    row.updated_at = now
    session.flush()
    return preferences(session, staff_id)


def _language(value):
    return value if value in LANGUAGES else "fr"


def _clock(hhmm):
    hours, minutes = hhmm.split(":")
    return time(int(hours), int(minutes))


def in_quiet_hours(now, prefs):
    """True if `now` falls in the staff member's quiet hours (local time, may span midnight)."""
    if not prefs.get("quiet_start") or not prefs.get("quiet_end"):
        return False
    local = now.astimezone(LOCAL_TZ).time()
    start, end = _clock(prefs["quiet_start"]), _clock(prefs["quiet_end"])
    if start <= end:
        return start <= local < end
    return local >= start or local < end


def next_local(now, hhmm):
    """The next instant (UTC) after `now` when the Casablanca clock shows `hhmm`."""
    local = now.astimezone(LOCAL_TZ)
    candidate = datetime.combine(local.date(), _clock(hhmm), tzinfo=LOCAL_TZ)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), _clock(hhmm), tzinfo=LOCAL_TZ)
    return candidate.astimezone(now.tzinfo)


def schedule(now, prefs, urgency):
    """(when to send on an outside channel, grouped in the digest?) for one notification.

    Urgent kinds go now, whatever the preferences; low-urgency kinds wait for the
    daily digest if the staff member wants one; the rest waits out quiet hours.
    """
    if urgency == rules.URGENT:
        return now, False
    if urgency == rules.LOW and prefs["digest"]:
        return next_local(now, prefs["digest_time"]), True
    if in_quiet_hours(now, prefs):
        return next_local(now, prefs["quiet_end"]), False
    return now, False


# --- deciding who is told ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    """Who an event tells and what they are told, resolved against the directory."""

    event_id: str
    rule: rules.Rule
    urgency: str
    params: dict
    link: str
    staff: tuple
    data: dict


def plan(directory, event):
    """Ask the directory who must know (no database here: call it before opening a transaction,
    so no write lock is held while waiting on another service). None if nobody is told of this type."""
    rule = rules.rule_for(event.type)
    if rule is None:
        return None
    params = _whitelisted(rule.params(event.data))
    params["names"] = association_names(directory, params)
    return Plan(event.id, rule, rule.urgency(event.data), params, rule.link(event.data),
                tuple(rules.audience_of(rule, event.data, directory)), event.data)


def record(session, planned, now, enabled_channels=OUTSIDE_CHANNELS):
    """Write the inbox items and queued deliveries of a plan; returns the new inbox items."""
    return record_many(session, [planned], now, enabled_channels)


def record_many(session, plans, now, enabled_channels=OUTSIDE_CHANNELS):
    """Write the inbox items and queued deliveries of many plans (a batch of events) in a few queries
    whatever their number; returns the new inbox items (their columns as attributes, not ORM objects).

    Safe to call twice for the same event: items and deliveries are unique per
    (source message, person, channel), so a duplicate adds nothing.
    """
    plans = [planned for planned in plans if planned is not None]
    if not plans:
        return []
    event_ids = {planned.event_id for planned in plans}
    rows = _by_key(session, Preference, Preference.staff_id,
                   {staff["id"] for planned in plans for staff in planned.staff})
    told = set(_chunked_rows(session, (InboxItem.source_message_id, InboxItem.staff_id, InboxItem.kind),
                             InboxItem.source_message_id, event_ids))
    created, outside = [], []
    for planned in plans:
        for staff in planned.staff:
            key = (planned.event_id, staff["id"], planned.rule.kind)
            if key in told:
                continue  # already told about this event
            told.add(key)
            created.append(SimpleNamespace(
                staff_id=staff["id"], association=staff.get("association", ""), kind=planned.rule.kind,
                urgency=planned.urgency, subject_key=planned.rule.kind, subject_params=planned.params,
                link=planned.link, source_message_id=planned.event_id, created_at=now))
            prefs = _effective(staff["id"], rows.get(staff["id"]), staff.get("language"))
            outside.append((planned, staff, created[-1], prefs))
    # Core statements, not ORM objects: one INSERT of the items (their ids back, which their deliveries
    # name) and one of the deliveries, whatever the batch.
    if created:
        ids = session.execute(insert(INBOX_ITEMS).returning(INBOX_ITEMS.c.id, sort_by_parameter_order=True),
                              [vars(item) for item in created]).scalars().all()
        for item, item_id in zip(created, ids, strict=True):
            item.id, item.read_at = item_id, None
    queued = set(_chunked_rows(session, (Delivery.source_message_id, Delivery.recipient, Delivery.channel),
                               Delivery.source_message_id, event_ids))
    deliveries = []

    def queue(planned, recipient, channel, address, language, params, item_id, when, digest):
        if (planned.event_id, recipient, channel) in queued:
            return
        queued.add((planned.event_id, recipient, channel))
        deliveries.append({"source_message_id": planned.event_id, "recipient": recipient, "channel": channel,
                           "address": address, "language": language, "kind": planned.rule.kind,
                           "urgency": planned.urgency, "params": params, "inbox_item_id": item_id, "digest": digest,
                           "state": QUEUED, "attempts": 0, "next_attempt_at": when, "created_at": now})

    for planned, staff, item, prefs in outside:
        when, digest = schedule(now, prefs, planned.urgency)
        for channel in prefs["channels"]:
            address = {"email": staff.get("email"), "sms": staff.get("phone")}.get(channel)
            if channel in enabled_channels and address:
                queue(planned, staff["id"], channel, address, prefs["language"], planned.params, item.id, when,
                      digest)
    subscriptions = _active_webhooks(session, {slug for planned in plans for slug in planned.rule.associations(
        planned.data)})
    for planned in plans:
        slugs = set(planned.rule.associations(planned.data))
        for subscription in subscriptions:
            if subscription.association in slugs and (not subscription.kinds or planned.rule.kind in
                                                      subscription.kinds):
                queue(planned, f"webhook:{subscription.id}", "webhook", subscription.url, "en",
                      {**planned.params, "link": planned.link}, None, now, False)
    insert_many(session, DELIVERIES, deliveries)
    _add_unread(session, Counter(item.staff_id for item in created))  # last: her counter's row is locked till commit
    return created


CHUNK = 500  # values in one IN list (SQLite's parameter limit)


def _chunked_rows(session, columns, key, values):
    values = sorted(values)
    for start in range(0, len(values), CHUNK):
        yield from session.execute(select(*columns).where(key.in_(values[start:start + CHUNK]))).tuples()


def _by_key(session, model, key, values):
    values, found = sorted(values), {}
    for start in range(0, len(values), CHUNK):
        for row in session.scalars(select(model).where(key.in_(values[start:start + CHUNK]))):
            found[getattr(row, key.key)] = row
    return found


def _active_webhooks(session, slugs):
    if not slugs:
        return []
    return session.scalars(select(WebhookSubscription).where(
        WebhookSubscription.association.in_(sorted(slugs)), WebhookSubscription.active.is_(True))
        .order_by(WebhookSubscription.id)).all()


def notify(session, directory, event, now, enabled_channels=OUTSIDE_CHANNELS):
    """plan() then record(), for callers that hold no lock worth worrying about (tests, tools)."""
    return record(session, plan(directory, event), now, enabled_channels)


NAMED_PARAMS = ("association", "from_association", "to_association", "organisers")


def association_names(directory, params):
    """{slug: {"ar": …, "fr": …}} for the associations a message names (the slug if the directory lacks it)."""
    names = {}
    for key in NAMED_PARAMS:
        for slug in rules.as_list(params.get(key)):
            if slug in names:
                continue
            try:
                association = directory.get_association(slug) or {}
            except NotFound:  # a name is a nicety: the notification goes out with the slug. Anything else (the
                association = {}  # model not loaded, the handler's time budget) must reach the kernel.
            names[slug] = {"ar": association.get("name_ar") or slug, "fr": association.get("name_fr") or slug}
    return names


def _whitelisted(params):
    return {key: value for key, value in params.items() if key in rules.ALLOWED_PARAMS and value is not None}


# --- the in-app inbox -------------------------------------------------------------------------------------------

def list_inbox(session, staff_id, unread_only=False, limit=50):
    return inbox_page(session, staff_id, unread_only=unread_only, limit=limit)[0]


def inbox_page(session, staff_id, unread_only=False, limit=None, cursor=None):
    """(items newest first, next cursor or None): one page of her inbox, by (created_at, id)."""
    query = select(InboxItem).where(InboxItem.staff_id == staff_id)
    if unread_only:
        query = query.where(InboxItem.read_at.is_(None))
    scope = ("inbox", staff_id, bool(unread_only))
    return paging.page_descending(session, query, (InboxItem.created_at, InboxItem.id), scope, limit, cursor)


def unread_count(session, staff_id):
    """One row: her counter, kept by every change of her items' read state (_add_unread)."""
    return session.scalar(select(UnreadCount.unread).where(UnreadCount.staff_id == staff_id)) or 0


def recount_unread(session):
    """Every counter from the items themselves (after rows were loaded in bulk, not through record_many)."""
    session.execute(UnreadCount.__table__.delete())
    session.execute(UnreadCount.__table__.insert().from_select(
        ["staff_id", "unread"], select(InboxItem.staff_id, func.count()).where(InboxItem.read_at.is_(None))
        .group_by(InboxItem.staff_id)))


def _add_unread(session, deltas):
    """Move each staff member's unread counter by its delta, in the unit of work that changed her items.

    One statement for all of them (insert, or add to the row already there); rows in staff id order, so
    two batches touching the same people lock their rows in the same order and never deadlock."""
    rows = [{"staff_id": staff_id, "unread": delta} for staff_id, delta in sorted(deltas.items()) if delta]
    if not rows:
        return
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(UnreadCount).values(rows)
    session.execute(statement.on_conflict_do_update(
        index_elements=[UnreadCount.staff_id], set_={"unread": UnreadCount.unread + statement.excluded.unread}))


def mark_read(session, staff_id, item_id, now):
    """Mark an item read; anything still waiting to go out about it is no longer sent."""
    item = session.get(InboxItem, int(item_id))
    if item is None or item.staff_id != staff_id:
        raise NotFound("no such notification")  # same answer for someone else's: do not reveal it exists
    # Only the unit of work that turns it read counts it (two clicks at once: one of them, not both).
    turned = session.execute(update(InboxItem).where(InboxItem.id == item.id, InboxItem.read_at.is_(None))
                             .values(read_at=now)).rowcount
    if turned:
        _add_unread(session, {staff_id: -1})
        session.execute(update(Delivery).where(
            Delivery.inbox_item_id == item.id, Delivery.state.in_((QUEUED, FAILED))).values(state=READ))
    session.flush()
    return item


# --- webhooks ---------------------------------------------------------------------------------------------------

def add_webhook(session, association, url, secret, kinds, now):
    subscription = WebhookSubscription(association=association, url=url, secret=secret, kinds=list(kinds or []),
                                       created_at=now)
    session.add(subscription)
    session.flush()
    return subscription


def remove_webhook(session, association, subscription_id):
    subscription = session.get(WebhookSubscription, int(subscription_id))
    if subscription is None or subscription.association != association:
        raise NotFound("no such webhook")
    subscription.active = False
    session.flush()


# --- delivery ---------------------------------------------------------------------------------------------------

def backoff(attempts):
    """Delay before the next try after `attempts` failures."""
    return min(RETRY_BASE * (2 ** (attempts - 1)), RETRY_CAP)


def deliver_due(session, now, channels, render):
    """Send the deliveries due at `now`, at most BATCH; returns {"sent": n, "failed": n}.

    `channels` maps a channel name to an object with `send(address, message, delivery, secret)`;
    `render` is a render.Renderer (message(delivery), digest(language, deliveries)). Each delivery
    succeeds or fails on its own, so a failing channel never holds up another. Commits after each
    send: what went out is recorded before the next network call, and no write lock is held during one.
    """
    due = session.scalars(select(Delivery).where(  # by ix_deliveries_due, whose condition is STILL_TO_SEND
        text(STILL_TO_SEND), Delivery.next_attempt_at <= now,
        Delivery.attempts < MAX_ATTEMPTS).order_by(Delivery.next_attempt_at, Delivery.id).limit(BATCH)).all()
    counts = {"sent": 0, "failed": 0}
    with ExitStack() as connections:
        for channel in channels.values():  # e.g. one SMTP connection for the run, not one per email
            if hasattr(channel, "reused"):
                connections.enter_context(channel.reused())
        _send_groups(session, due, now, channels, render, counts)
    return counts


def _send_groups(session, due, now, channels, render, counts):
    for group in _groups(due):
        group = _claim(session, group, now)
        if not group:
            continue
        first = group[0]
        channel = channels.get(first.channel)
        try:
            if channel is None:
                raise RuntimeError(f"channel {first.channel} is not configured")
            message = render.digest(first.language, group) if first.digest else render.message(first)
            channel.send(first.address, message, first, secret=_secret(session, first))
        except Exception as exc:  # noqa: BLE001 - any failure of the outside world is retried
            for delivery in group:
                delivery.attempts += 1
                delivery.state = FAILED
                delivery.last_error = f"{type(exc).__name__}: {exc}"[:1000]
                delivery.next_attempt_at = now + backoff(delivery.attempts)
            counts["failed"] += len(group)
        else:
            for delivery in group:
                delivery.attempts += 1
                delivery.state = SENT
                delivery.sent_at = now
                delivery.last_error = None
            counts["sent"] += len(group)
        session.commit()
    return counts


def _claim(session, group, now):
    """The part of `group` this process may send: on PostgreSQL the rows are locked (SKIP LOCKED)
    and re-checked, so replicas of this service never send the same delivery twice."""
    ids = [delivery.id for delivery in group]
    claimed = set(session.scalars(select(Delivery.id).where(
        Delivery.id.in_(ids), Delivery.state.in_((QUEUED, FAILED)), Delivery.next_attempt_at <= now)
        .with_for_update(skip_locked=True)))
    return [delivery for delivery in group if delivery.id in claimed]


def _secret(session, delivery):
    if delivery.channel != "webhook":
        return None
    subscription = session.get(WebhookSubscription, int(delivery.recipient.split(":", 1)[1]))
    if subscription is None or not subscription.active:
        raise RuntimeError("webhook subscription removed")
    return subscription.secret


def _groups(due):
    """One group per delivery, except digest deliveries: one group per (recipient, channel)."""
    digests = {}
    for delivery in due:
        if delivery.digest:
            digests.setdefault((delivery.recipient, delivery.channel), []).append(delivery)
        else:
            yield [delivery]
    yield from digests.values()


def note_erased(session, beneficiary_id, now):
    """Remember that she was erased, in a unit of work of its own committed before what was told of her is
    forgotten: a batch telling of her meanwhile then sees it (not_about_erased, erased_among)."""
    insert_if_absent(session, ErasedBeneficiary, {"beneficiary_id": beneficiary_id, "erased_at": now})


def not_about_erased(session, plans):
    """The plans that are not about a woman erased already: an event about her heard after her erasure (a
    retry, or one held while the directory's read model loaded) tells nobody."""
    erased = {rules.beneficiary_link(beneficiary_id) for beneficiary_id in erased_among(session, women_in(plans))}
    return [planned for planned in plans if planned is not None and planned.link not in erased]


def women_in(plans):
    """The ids of the women `plans` tell of (a link to her record)."""
    return sorted({planned.link.removeprefix(rules.BENEFICIARY_LINK) for planned in plans
                   if planned is not None and planned.link.startswith(rules.BENEFICIARY_LINK)})


def erased_among(session, beneficiary_ids):
    """Those of `beneficiary_ids` noted as erased (note_erased). After a batch's commit, a woman whose erasure
    was noted after the batch looked (not_about_erased) and before it committed is forgotten then
    (forget_beneficiary): with note_erased first, whichever commits last sees the other."""
    if not beneficiary_ids:
        return []
    return sorted(session.scalars(select(ErasedBeneficiary.beneficiary_id).where(
        ErasedBeneficiary.beneficiary_id.in_(beneficiary_ids))))


def forget_beneficiary(session, beneficiary_id):
    """She was erased: the items and deliveries about her (linked to her record) go too. Returns how many."""
    link = rules.beneficiary_link(beneficiary_id)
    # Locked: an item read meanwhile (mark_read) is counted once, by whichever unit of work comes first.
    items = session.scalars(select(InboxItem).where(InboxItem.link == link).with_for_update()).all()
    item_ids = [item.id for item in items]
    deliveries = session.scalars(select(Delivery).where(Delivery.inbox_item_id.in_(item_ids))).all() if item_ids else []
    for row in (*deliveries, *items):
        session.delete(row)
    session.flush()
    _add_unread(session, {staff_id: -count for staff_id, count in Counter(
        item.staff_id for item in items if item.read_at is None).items()})
    return len(items) + len(deliveries)
