"""The shared calendar over HTTP: JSON API, iCalendar feeds and the calendar page.

Bodies are validated here with the events schemas (422 before any RPC), then sent
over RPC in their JSON form; the events service validates again and decides who
may change what (the signed-in staff member travels with each call).
Reading is open to the public (public events only); a signed-in staff member also
sees network-only events.
"""

import re
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

from werkzeug.http import http_date
from werkzeug.wrappers import Response

from services.events.schemas import (
    CancelOccurrence,
    CreateEvent,
    EventSchema,
    ImportJobSchema,
    ImportRequest,
    MoveOccurrence,
    OccurrencePageSchema,
    OccurrenceSchema,
    RegistrationSchema,
    UpdateEvent,
    VenueSchema,
)
from services.events.validation import STATUSES as EVENT_STATUSES
from services.gateway.access import can
from services.gateway.calls import idempotency_key
from services.gateway.routes import CALENDAR, OPTIONAL, PUBLIC, SIGNED_IN, route
from services.gateway.schemas import (
    EventResultSchema,
    EventWindowQuery,
    FeedPathSchema,
    FeedQuery,
    ForceQuery,
    OccurrencePageQuery,
    VenuesQuery,
)
from services.gateway.web import json_response, render, request_language
from tansiq import i18n
from tansiq.calls import TimedRpcProxy
from tansiq.contracts.events import EVENT_KINDS
from tansiq.readmodel import DirectoryView

DEFAULT_WINDOW = (timedelta(days=-7), timedelta(days=62))


def _force(query):
    return query["force"] is not None


def _audience(actor):
    return "network" if actor else "public"


def _ics(text, filename, answer=None):
    filename = re.sub(r"[^A-Za-z0-9._-]", "-", filename)  # a header is latin-1 and one line: never a city's letters
    headers = {"Content-Disposition": f'inline; filename="{filename}"', "Cache-Control": "public, max-age=300"}
    if answer is not None:
        headers["ETag"] = answer["etag"]
        if answer["last_modified"]:
            headers["Last-Modified"] = http_date(datetime.fromisoformat(answer["last_modified"]))
        if answer["text"] is None:
            return Response(status=304, headers={k: v for k, v in headers.items() if k != "Content-Disposition"})
    return Response(text, mimetype="text/calendar", headers=headers)


def _feed(events_rpc, request, query, scope, value, filename):
    """A feed with its ETag; 304 when the client's copy is current. ?from=&to= widen the window."""
    since = request.if_modified_since
    answer = events_rpc.ical_feed_answer(
        scope, value, start=query["since"] or None, end=query["until"] or None,
        if_none_match=request.headers.get("If-None-Match") or None,
        if_modified_since=since.isoformat() if since else None)
    return _ics(answer["text"], filename, answer)


class EventsApi:
    events_rpc = TimedRpcProxy("events")
    directory = DirectoryView(sessions=True)  # as GatewayService declares it; listed so the mixin stands alone

    # --- JSON API ---------------------------------------------------------------------------

    @route("GET", "/api/events", auth=OPTIONAL, audience=("events",), tag="events", query=EventWindowQuery,
           answer=(200, [OccurrenceSchema]),
           summary="Occurrences in a window (public ones, plus network ones when signed in); "
                   "422 too_many_occurrences past 2000 (never cut): use /api/occurrences")
    def events_list(self, request, actor, query):
        start, end = _window(query)
        return json_response(self.events_rpc.list_occurrences(
            start, end, city=query["city"] or None, kind=query["kind"] or None,
            association=query["association"] or None, audience=_audience(actor)))

    @route("GET", "/api/occurrences", auth=OPTIONAL, audience=("events",), tag="events", query=OccurrencePageQuery,
           answer=(200, OccurrencePageSchema),
           summary="Occurrences in a window, page by page: follow `next` until it is null; `truncated` is "
                   "always false (nothing is cut without a `next`)")
    def occurrences_page(self, request, actor, query):
        """The listing page by page: follow `next` until it is null (`truncated` is always false)."""
        start, end = _window(query)
        return json_response(self.events_rpc.list_occurrences_page(
            start, end, city=query["city"] or None, kind=query["kind"] or None,
            association=query["association"] or None, audience=_audience(actor),
            cursor=query["cursor"] or None, limit=query["limit"]))

    @route("GET", "/api/events/<string:event_id>", auth=OPTIONAL, audience=("events",), tag="events",
           answer=(200, EventSchema), summary="One event")
    def events_get(self, request, event_id, actor):
        return json_response(self.events_rpc.get_event(event_id, audience=_audience(actor), actor=actor))

    @route("POST", "/api/events", auth="calendar.edit", audience=("events",), tag="events", command=True,
           body=CreateEvent, query=ForceQuery, answer=(201, EventResultSchema), summary="Create an event")
    def events_create(self, request, actor, body, query):
        return json_response(self.events_rpc.create_event(body, actor=actor, force=_force(query),
                                                          idempotency_key=idempotency_key(request)), status=201)

    @route("PATCH", "/api/events/<string:event_id>", auth="calendar.edit", audience=("events",), tag="events",
           command=True, body=UpdateEvent, query=ForceQuery, answer=(200, EventResultSchema),
           summary="Change an event")
    def events_update(self, request, event_id, actor, body, query):
        return json_response(self.events_rpc.update_event(event_id, body, actor=actor, force=_force(query),
                                                          idempotency_key=idempotency_key(request)))

    @route("POST", "/api/events/<string:event_id>/cancel", auth="calendar.edit", audience=("events",), tag="events",
           command=True, answer=(200, EventSchema), summary="Cancel an event")
    def events_cancel(self, request, event_id, actor):
        return json_response(self.events_rpc.cancel_event(event_id, actor=actor,
                                                          idempotency_key=idempotency_key(request)))

    @route("POST", "/api/events/<string:event_id>/occurrences/move", auth="calendar.edit", audience=("events",),
           tag="events", command=True, body=MoveOccurrence, query=ForceQuery, answer=(200, EventResultSchema),
           summary="Move one occurrence of a recurring event")
    def events_move_occurrence(self, request, event_id, actor, body, query):
        return json_response(self.events_rpc.move_occurrence(event_id, body, actor=actor, force=_force(query),
                                                             idempotency_key=idempotency_key(request)))

    @route("POST", "/api/events/<string:event_id>/occurrences/cancel", auth="calendar.edit", audience=("events",),
           tag="events", command=True, body=CancelOccurrence, answer=(200, EventSchema),
           summary="Cancel one occurrence")
    def events_cancel_occurrence(self, request, event_id, actor, body):
        return json_response(self.events_rpc.cancel_occurrence(event_id, body, actor=actor,
                                                               idempotency_key=idempotency_key(request)))

    # Any signed-in staff member: her own association registers (the events service checks).
    @route("POST", "/api/events/<string:event_id>/registrations", auth=SIGNED_IN, audience=("events",),
           tag="events", command=True, body=RegistrationSchema, answer=(201, RegistrationSchema),
           summary="Register a participant or stand")
    def events_register(self, request, event_id, actor, body):
        return json_response(self.events_rpc.register(event_id, body, actor=actor,
                                                      idempotency_key=idempotency_key(request)), status=201)

    @route("POST", "/api/calendar-imports", auth="calendar.edit", audience=("events",), tag="events",
           body=ImportRequest, answer=(202, ImportJobSchema),
           summary="Import an association's existing calendar (an https URL kept in Google or Outlook, or an .ics "
                   "file's text, 10 MB at most) as a job, idempotent on UID: importing again updates, never "
                   "duplicates. Coordinators and events managers of that association; URLs must reach public "
                   "addresses")
    def calendar_import_start(self, request, actor, body):
        return json_response(self.events_rpc.start_import(body, actor=actor), status=202)

    @route("GET", "/api/calendar-imports/<string:import_id>", auth="calendar.edit", audience=("events",),
           tag="events", answer=(200, ImportJobSchema),
           summary="An import's progress and report (malformed VEVENTs with their line)")
    def calendar_import_status(self, request, actor, import_id):
        return json_response(self.events_rpc.import_status(import_id, actor=actor))

    @route("GET", "/api/venues", auth=PUBLIC, tag="events", query=VenuesQuery, answer=(200, [VenueSchema]),
           summary="Registered venues")
    def events_venues(self, request, query):
        return json_response(self.events_rpc.list_venues(query["city"] or None))

    # --- iCalendar feeds (public events only: calendar apps subscribe without signing in) ---
    # Bounded (3 months back, 18 ahead; ?from=&to=), cached by the events service, 304 when current.

    @route("GET", "/ical/network.ics", auth=PUBLIC, tag="ical", query=FeedQuery, answer=(200, CALENDAR),
           summary="Every public event of the network")
    def ical_network(self, request, query):
        return _feed(self.events_rpc, request, query, "network", None, "tansiq.ics")

    @route("GET", "/ical/city/<string:city>.ics", auth=PUBLIC, tag="ical", query=FeedQuery, path=FeedPathSchema,
           answer=(200, CALENDAR),
           summary="Public events in one city")
    def ical_city(self, request, city, query):
        return _feed(self.events_rpc, request, query, "city", city, f"tansiq-{city.lower()}.ics")

    @route("GET", "/ical/association/<string:slug>.ics", auth=PUBLIC, tag="ical", query=FeedQuery,
           path=FeedPathSchema, answer=(200, CALENDAR), summary="Public events an association organises")
    def ical_association(self, request, slug, query):
        return _feed(self.events_rpc, request, query, "association", slug, f"tansiq-{slug}.ics")

    @route("GET", "/ical/event/<string:event_id>.ics", auth=PUBLIC, tag="ical", query=FeedQuery,
           path=FeedPathSchema, answer=(200, CALENDAR), summary="One public event")
    def ical_event(self, request, event_id, query):
        return _feed(self.events_rpc, request, query, "event", event_id, f"tansiq-event-{event_id}.ics")

    # --- the page ---------------------------------------------------------------------------

    @route("GET", "/calendar", auth=OPTIONAL, page=True, summary="The shared calendar")
    def calendar_page(self, request, staff):
        return calendar_page(request, self.directory.list_associations(), staff)


def _window(query):
    now = datetime.now(timezone.utc)
    return (query["start"] or (now + DEFAULT_WINDOW[0]).isoformat(),
            query["end"] or (now + DEFAULT_WINDOW[1]).isoformat())


def calendar_page(request, associations, staff=None):
    """The calendar page (also served by the browser test's fixture server); navigation follows her roles."""
    lang = request_language(request, staff)
    cities = sorted({a["city"] for a in associations if a.get("city")})
    names = {a["slug"]: a.get("name_ar" if lang == "ar" else "name_fr") or a["slug"] for a in associations}
    selected = {key: request.args.get(key, "") for key in ("city", "kind", "association", "view")}
    feed_path = (f"/ical/association/{quote(selected['association'])}.ics" if selected["association"] else
                 f"/ical/city/{quote(selected['city'])}.ics" if selected["city"] else "/ical/network.ics")
    return render("calendar.html", lang, staff=staff, can=can(staff), cities=cities, kinds=EVENT_KINDS, names=names,
                  host=request.host, base_url=request.host_url.rstrip("/"), feed_path=feed_path,
                  associations=sorted(associations, key=lambda a: a["slug"]),
                  initial_date=request.args.get("date", "")[:10], selected=selected, words=calendar_words(lang))


def calendar_words(lang):
    """The names the calendar's script writes itself (an event's kind and status), in `lang`."""
    return {"kinds": {kind: i18n.translate(lang, f"event.kind.{kind}") for kind in EVENT_KINDS},
            "statuses": {status: i18n.translate(lang, f"event.status.{status}") for status in EVENT_STATUSES}}
