"""Events service: thin nameko entrypoints over services.events.domain (calendar and feeds)."""

import logging
from datetime import timedelta

import eventlet
from nameko.dependency_providers import Config
from nameko.rpc import rpc
from nameko.timer import timer

from services.events import domain, feeds, ical, imports, listing, occurrences, search
from services.events.schemas import (
    CancelOccurrence,
    CreateEvent,
    EventSchema,
    FeedWindow,
    ImportJobSchema,
    ImportRequest,
    MoveOccurrence,
    OccurrenceSchema,
    PagedWindow,
    RegistrationSchema,
    SearchQuery,
    SearchResultSchema,
    UpdateEvent,
    VenueSchema,
    load_window,
)
from tansiq import contracts
from tansiq.commands import Command
from tansiq.db import Database
from tansiq.envelope import utcnow
from tansiq.errors import DomainError, NotFound
from tansiq.identity import ActorIdentity
from tansiq.messaging import inbox, outbox
from tansiq.messaging.consumer import handles, handles_partner
from tansiq.messaging.topology import PARTNERS_OUTBOUND
from tansiq.readmodel import DirectoryView

REMINDER_INTERVAL_SECONDS = 300
HORIZON_INTERVAL_SECONDS = 3600  # stored occurrences: how often the rolling horizon is moved on
REMINDER_HORIZON_HOURS_KEY = "REMINDER_HORIZON_HOURS"
STALE_IMPORTS_INTERVAL_SECONDS = 60  # how often interrupted imports are looked for (and once at start)
IMPORT_STALE_AFTER_KEY = "IMPORT_STALE_AFTER_S"
log = logging.getLogger(__name__)
AUDIENCES = {"public": ("public",), "network": ("public", "network")}

event_out = EventSchema(exclude=("registrations",))
event_with_registrations_out = EventSchema()
occurrences_out = OccurrenceSchema(many=True)
registration_io = RegistrationSchema()
venue_io = VenueSchema()
import_job_out = ImportJobSchema()
search_results_out = SearchResultSchema(many=True)
# Made once: a schema's construction cost about 0.1 ms a request, and loading keeps no state in it.
create_event_in, update_event_in = CreateEvent(), UpdateEvent()
move_occurrence_in, cancel_occurrence_in = MoveOccurrence(), CancelOccurrence()
import_request_in, search_query_in = ImportRequest(), SearchQuery()


def _visibilities(audience):
    try:
        return AUDIENCES[audience]
    except KeyError:
        raise DomainError("audience must be public or network", code="invalid_request") from None


CALENDAR_CHANGES = ("ma.tansiq.event.published.v1", "ma.tansiq.event.updated.v1", "ma.tansiq.event.cancelled.v1")


class EventsService:
    name = "events"
    db = Database()
    directory = DirectoryView()  # the directory as its change feed told this process (tansiq.readmodel)
    config = Config()
    identity = ActorIdentity()  # changes take the gateway's signed actor assertion; reading may be anonymous

    def _known_associations(self):
        # From the read model of the directory (tansiq.readmodel), before the unit of work opens.
        return self.directory.slugs()

    def _result(self, event, warnings):
        return {"event": event_out.dump(event), "warnings": warnings}

    @rpc
    def health(self):
        return "ok"

    @rpc
    def create_venue(self, payload):
        values = venue_io.load(payload)
        with self.db.session() as session:
            return venue_io.dump(domain.create_venue(session, **values))

    @rpc
    def list_venues(self, city=None):
        with self.db.session() as session:
            return venue_io.dump(domain.list_venues(session, city), many=True)

    @rpc
    def create_event(self, payload, actor=None, force=False, idempotency_key=None):
        actor = self.identity.actor(actor)  # refused before anything is read
        spec = create_event_in.load(payload)
        domain.check_editor(actor, spec["organiser"], spec["co_organisers"])
        command = Command("events.create_event", actor, idempotency_key, payload, force)
        known = self._known_associations()
        with self.db.session() as session:
            return command.run(session, lambda: self._result(*domain.create_event(session, utcnow(), spec, known,
                                                                                   force=force)))

    @rpc
    def update_event(self, event_id, changes, actor=None, force=False, idempotency_key=None):
        actor = self.identity.actor(actor)  # refused before anything is read
        command = Command("events.update_event", actor, idempotency_key, event_id, changes, force)
        changes = update_event_in.load(changes)
        known = self._known_associations()
        with self.db.session() as session:
            current = domain.get_event(session, event_id)
            domain.check_editor(actor, current.organiser, current.co_organisers)
            return command.run(session, lambda: self._result(*domain.update_event(session, utcnow(), event_id, changes,
                                                                                   known, force=force)))

    @rpc
    def cancel_event(self, event_id, actor=None, idempotency_key=None):
        actor = self.identity.actor(actor)  # refused before anything is read
        command = Command("events.cancel_event", actor, idempotency_key, event_id)
        with self.db.session() as session:
            current = domain.get_event(session, event_id)
            domain.check_editor(actor, current.organiser, current.co_organisers)
            return command.run(session, lambda: event_out.dump(domain.cancel_event(session, utcnow(), event_id)))

    @rpc
    def move_occurrence(self, event_id, payload, actor=None, force=False, idempotency_key=None):
        actor = self.identity.actor(actor)  # refused before anything is read
        command = Command("events.move_occurrence", actor, idempotency_key, event_id, payload, force)
        values = move_occurrence_in.load(payload)
        with self.db.session() as session:
            current = domain.get_event(session, event_id)
            domain.check_editor(actor, current.organiser, current.co_organisers)
            return command.run(session, lambda: self._result(*domain.move_occurrence(
                session, utcnow(), event_id, values["recurrence_id"], values["start"], values["end"], force=force)))

    @rpc
    def cancel_occurrence(self, event_id, payload, actor=None, idempotency_key=None):
        actor = self.identity.actor(actor)  # refused before anything is read
        command = Command("events.cancel_occurrence", actor, idempotency_key, event_id, payload)
        values = cancel_occurrence_in.load(payload)
        with self.db.session() as session:
            current = domain.get_event(session, event_id)
            domain.check_editor(actor, current.organiser, current.co_organisers)
            return command.run(session, lambda: event_out.dump(
                domain.cancel_occurrence(session, utcnow(), event_id, values["recurrence_id"])))

    @rpc
    def get_event(self, event_id, audience="public", actor=None):
        """An event; drafts and registrations only for staff of the organising associations."""
        actor = self.identity.optional_actor(actor)
        with self.db.session() as session:
            event = domain.get_event(session, event_id)
            organisers = {event.organiser, *event.co_organisers}
            own = actor is not None and actor.association in organisers
            if not own and (event.status == "draft" or event.visibility not in _visibilities(audience)):
                raise NotFound(f"no event {event_id!r}", code="unknown_event")
            return (event_with_registrations_out if own else event_out).dump(event)

    @rpc
    def list_occurrences(self, start, end, city=None, kind=None, association=None, audience="public"):
        window = load_window({"start": start, "end": end, "city": city, "kind": kind, "association": association})
        with self.db.session() as session:
            return occurrences_out.dump(domain.list_occurrences(
                session, window["start"], window["end"], city=window["city"], kind=window["kind"],
                association=window["association"], visibilities=_visibilities(audience)))

    @rpc
    def list_occurrences_page(self, start, end, city=None, kind=None, association=None, audience="public",
                              cursor=None, limit=None):
        """One page of occurrences: {"items", "next" (cursor or null), "truncated": false}."""
        query = {"start": start, "end": end, "city": city, "kind": kind, "association": association, "cursor": cursor}
        window = load_window({**query, **({"limit": limit} if limit is not None else {})}, PagedWindow)
        with self.db.session() as session:
            page = occurrences.page(
                session, window["start"], window["end"], city=window["city"], kind=window["kind"],
                association=window["association"], visibilities=_visibilities(audience),
                cursor=window["cursor"], limit=window["limit"])
            # The page's items written directly (listing.as_json), not through marshmallow: the hot path.
            return {"items": [listing.as_json(item) for item in page.items], "next": page.next, "truncated": False}

    @rpc
    def start_import(self, payload, actor=None):
        """Import an association's existing calendar (ImportRequest) as a job; answers the queued
        job at once (GET it with import_status). Coordinators and events managers of that association."""
        actor = self.identity.actor(actor)  # refused before anything is read
        values = import_request_in.load(payload)
        domain.check_editor(actor, values["association"])
        if values["url"]:
            imports.check_url(values["url"])  # refused now rather than in the job
        directory = {a["slug"]: a for a in self.directory.list_associations()}
        if values["association"] not in directory:
            raise NotFound(f"unknown association {values['association']!r}", code="unknown_association")
        with self.db.session() as session:
            job = imports.as_dict(imports.start(session, utcnow(), values["association"],
                                                values["url"] or values["name"], actor.id))
        # A green thread of its own: the job outlives this call, a batch per unit of work.
        eventlet.spawn_n(imports.run, self.db.session, utcnow, job["id"], values["url"] or values["ics"],
                         set(directory), directory[values["association"]].get("city") or "")
        return job

    @rpc
    def import_status(self, job_id, actor=None):
        """An import's progress and report, for the staff of its association who may edit the calendar."""
        actor = self.identity.actor(actor)
        actor.require("calendar.edit")
        with self.db.session() as session:
            return import_job_out.dump(imports.as_dict(imports.get(session, job_id, association=actor.association)))

    @rpc
    def event_occurrences(self, event_id, start, end, audience="public", actor=None, limit=100):
        """The occurrences of one event in a window (its page lists them), readable as get_event is."""
        self.get_event(event_id, audience, actor)  # NotFound to whoever may not read it
        window = load_window({"start": start, "end": end})
        with self.db.session() as session:
            found = domain.occurrences_of(domain.get_event(session, event_id), window["start"], window["end"])
            return occurrences_out.dump(found[:max(1, min(int(limit), 500))])

    @rpc
    def search_events(self, query, audience="public", actor=None):
        """Events by title words, city and date range (SearchQuery), each at its first occurrence there."""
        actor = self.identity.optional_actor(actor)
        values = search_query_in.load(query)
        with self.db.session() as session:
            return search_results_out.dump(search.search(
                session, utcnow(), values["words"], values["city"], values["start"], values["end"],
                visibilities=_visibilities(audience), association=actor.association if actor else None,
                limit=values["limit"]))

    @rpc
    def register(self, event_id, payload, actor=None, idempotency_key=None):
        actor = self.identity.actor(actor)  # refused before anything is read
        command = Command("events.register", actor, idempotency_key, event_id, payload)
        values = registration_io.load(payload)
        values["staff_id"] = domain.check_registrant(actor, values["association"])
        known = self._known_associations()
        with self.db.session() as session:
            return command.run(session, lambda: registration_io.dump(
                domain.register(session, utcnow(), event_id, known_associations=known, **values)))

    @rpc
    def ical_feed(self, scope, value=None, audience="public"):
        with self.db.session() as session:
            return ical.feed(session, utcnow(), scope, value, visibilities=_visibilities(audience))

    @rpc
    def ical_feed_answer(self, scope, value=None, audience="public", start=None, end=None, if_none_match=None,
                         if_modified_since=None):
        """A feed for HTTP: {"etag", "last_modified", "text"}; text null when the client's copy is
        current (If-None-Match / If-Modified-Since). Cached; built after the unit of work closes."""
        window = load_window({"start": start, "end": end, "if_modified_since": if_modified_since}, FeedWindow)
        answer = feeds.CACHE.answer(self.db.session, utcnow(), scope, value, _visibilities(audience),
                                    window["start"], window["end"], if_none_match, window["if_modified_since"])
        return {"etag": answer.etag, "text": answer.text,
                "last_modified": answer.last_modified.isoformat() if answer.last_modified else None}

    @handles(*CALENDAR_CHANGES)
    def forward_to_partners(self, event):
        """The network's calendar changes reach partner systems, each on its own queue."""
        # The partners integrating by queue, from the read model of the directory (tansiq.readmodel).
        partners = sorted(self.directory.slugs(integration="queue") - {event.source, event.data["organiser"]})
        if not partners:
            return  # nothing to forward, so nothing to do twice: no unit of work
        with self.db.session() as session:
            if not inbox.first_time(session, self.name, event):
                return
            for slug in partners:
                copy = contracts.make(event.type, event.source, event.raw["data"], correlationid=event.id)
                outbox.add(session, copy, exchange=PARTNERS_OUTBOUND, routing_key=f"{slug}.{event.type}")

    @handles_partner(*CALENDAR_CHANGES)
    def on_partner_event(self, event):
        """A partner system's own event; the kernel already checked its sender (broker user, signature).
        A refusal (not its event, older SEQUENCE…) goes back to the partner as a rejection."""
        known = self._known_associations()
        with self.db.session() as session:
            if not inbox.first_time(session, self.name, event):
                return
            domain.apply_partner_event(session, utcnow(), event, known)

    @timer(interval=HORIZON_INTERVAL_SECONDS, eager=True)
    def extend_occurrences(self):
        """Keep every series stored HORIZON ahead (and store events older than the table), a batch
        per unit of work so no transaction holds the database for long."""
        while True:
            with self.db.session() as session:
                done = occurrences.extend(session, utcnow())
            if done < occurrences.EXTEND_BATCH:
                return

    @timer(interval=STALE_IMPORTS_INTERVAL_SECONDS, eager=True)
    def fail_interrupted_imports(self):
        """An import whose process died (its heartbeat stopped) is marked failed with the reason,
        instead of staying "running" forever; importing the same calendar again finishes it."""
        stale_after = timedelta(seconds=float(self.config.get(IMPORT_STALE_AFTER_KEY,
                                                              imports.STALE_AFTER.total_seconds())))
        with self.db.session() as session:
            failed = imports.fail_stale(session, utcnow(), stale_after)
        if failed:
            log.warning("imports interrupted, marked failed: %s", ", ".join(failed))

    @timer(interval=REMINDER_INTERVAL_SECONDS)
    def send_reminders(self):
        horizon = timedelta(hours=float(self.config.get(REMINDER_HORIZON_HOURS_KEY, 24)))
        with self.db.session() as session:
            domain.due_reminders(session, utcnow(), horizon)
