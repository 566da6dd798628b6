"""The shared calendar over HTTP: JSON API, iCalendar feeds and the calendar page.

Bodies are validated here with the events schemas (422 before any RPC), then sent
over RPC in their JSON form; the events service validates again and decides who
may change what (the signed-in staff member travels with each call).
Reading is open to the public (public events only); a signed-in staff member also
sees network-only events.
"""

from datetime import datetime, timedelta, timezone
from urllib.parse import quote

from werkzeug.http import http_date
from werkzeug.wrappers import Response

from services.events.schemas import CancelOccurrence, CreateEvent, MoveOccurrence, RegistrationSchema, UpdateEvent
from services.gateway.access import can, requires, signed_in_or_none
from services.gateway.calls import TimedRpcProxy, idempotency_key
from services.gateway.web import api, json_response, load_json, render, request_language
from tansiq.contracts.events import EVENT_KINDS

DEFAULT_WINDOW = (timedelta(days=-7), timedelta(days=62))


def _json_body(request, schema):
    """The validated body, dumped back to JSON types for the RPC."""
    return schema.dump(load_json(request, schema))


def _force(request):
    return request.args.get("force", "").lower() in ("1", "true", "yes")


def _audience(actor):
    return "network" if actor else "public"


def _ics(text, filename, answer=None):
    headers = {"Content-Disposition": f'inline; filename="{filename}"', "Cache-Control": "public, max-age=300"}
    if answer is not None:
        headers["ETag"] = answer["etag"]
        if answer["last_modified"]:
            headers["Last-Modified"] = http_date(datetime.fromisoformat(answer["last_modified"]))
        if answer["text"] is None:
            return Response(status=304, headers={k: v for k, v in headers.items() if k != "Content-Disposition"})
    return Response(text, mimetype="text/calendar", headers=headers)


def _feed(events_rpc, request, scope, value, filename):
    """A feed with its ETag; 304 when the client's copy is current. ?from=&to= widen the window."""
    since = request.if_modified_since
    answer = events_rpc.ical_feed_answer(
        scope, value, start=request.args.get("from") or None, end=request.args.get("to") or None,
        if_none_match=request.headers.get("If-None-Match") or None,
        if_modified_since=since.isoformat() if since else None)
    return _ics(answer["text"], filename, answer)


class EventsApi:
    events_rpc = TimedRpcProxy("events")
    directory_rpc = TimedRpcProxy("directory")  # as GatewayService declares it; listed so the mixin stands alone

    # --- JSON API ---------------------------------------------------------------------------

    @api("GET", "/api/events")
    @requires(None, "events", optional=True)
    def events_list(self, request, actor):
        now = datetime.now(timezone.utc)
        start = request.args.get("start") or (now + DEFAULT_WINDOW[0]).isoformat()
        end = request.args.get("end") or (now + DEFAULT_WINDOW[1]).isoformat()
        return json_response(self.events_rpc.list_occurrences(
            start, end, city=request.args.get("city") or None, kind=request.args.get("kind") or None,
            association=request.args.get("association") or None, audience=_audience(actor)))

    @api("GET", "/api/occurrences")
    @requires(None, "events", optional=True)
    def occurrences_page(self, request, actor):
        """The listing page by page: follow `next` until it is null (`truncated` is always false)."""
        now = datetime.now(timezone.utc)
        start = request.args.get("start") or (now + DEFAULT_WINDOW[0]).isoformat()
        end = request.args.get("end") or (now + DEFAULT_WINDOW[1]).isoformat()
        return json_response(self.events_rpc.list_occurrences_page(
            start, end, city=request.args.get("city") or None, kind=request.args.get("kind") or None,
            association=request.args.get("association") or None, audience=_audience(actor),
            cursor=request.args.get("cursor") or None, limit=request.args.get("limit") or None))

    @api("GET", "/api/events/<string:event_id>")
    @requires(None, "events", optional=True)
    def events_get(self, request, actor, event_id):
        return json_response(self.events_rpc.get_event(event_id, audience=_audience(actor), actor=actor))

    @api("POST", "/api/events")
    @requires("calendar.edit", "events")
    def events_create(self, request, actor):
        body = _json_body(request, CreateEvent())
        return json_response(self.events_rpc.create_event(body, actor=actor, force=_force(request),
                                                          idempotency_key=idempotency_key(request)), status=201)

    @api("PATCH", "/api/events/<string:event_id>")
    @requires("calendar.edit", "events")
    def events_update(self, request, actor, event_id):
        body = _json_body(request, UpdateEvent())
        return json_response(self.events_rpc.update_event(event_id, body, actor=actor, force=_force(request),
                                                          idempotency_key=idempotency_key(request)))

    @api("POST", "/api/events/<string:event_id>/cancel")
    @requires("calendar.edit", "events")
    def events_cancel(self, request, actor, event_id):
        return json_response(self.events_rpc.cancel_event(event_id, actor=actor,
                                                          idempotency_key=idempotency_key(request)))

    @api("POST", "/api/events/<string:event_id>/occurrences/move")
    @requires("calendar.edit", "events")
    def events_move_occurrence(self, request, actor, event_id):
        body = _json_body(request, MoveOccurrence())
        return json_response(self.events_rpc.move_occurrence(event_id, body, actor=actor, force=_force(request),
                                                             idempotency_key=idempotency_key(request)))

    @api("POST", "/api/events/<string:event_id>/occurrences/cancel")
    @requires("calendar.edit", "events")
    def events_cancel_occurrence(self, request, actor, event_id):
        body = _json_body(request, CancelOccurrence())
        return json_response(self.events_rpc.cancel_occurrence(event_id, body, actor=actor,
                                                               idempotency_key=idempotency_key(request)))

    @api("POST", "/api/events/<string:event_id>/registrations")
    @requires(None, "events")  # her own association registers (the events service checks)
    def events_register(self, request, actor, event_id):
        body = _json_body(request, RegistrationSchema())
        return json_response(self.events_rpc.register(event_id, body, actor=actor,
                                                      idempotency_key=idempotency_key(request)), status=201)

    @api("GET", "/api/venues")
    def events_venues(self, request):
        return json_response(self.events_rpc.list_venues(request.args.get("city") or None))

    # --- iCalendar feeds (public events only: calendar apps subscribe without signing in) ---
    # Bounded (3 months back, 18 ahead; ?from=&to=), cached by the events service, 304 when current.

    @api("GET", "/ical/network.ics")
    def ical_network(self, request):
        return _feed(self.events_rpc, request, "network", None, "tansiq.ics")

    @api("GET", "/ical/city/<string:city>.ics")
    def ical_city(self, request, city):
        return _feed(self.events_rpc, request, "city", city, f"tansiq-{city.lower()}.ics")

    @api("GET", "/ical/association/<string:slug>.ics")
    def ical_association(self, request, slug):
        return _feed(self.events_rpc, request, "association", slug, f"tansiq-{slug}.ics")

    @api("GET", "/ical/event/<string:event_id>.ics")
    def ical_event(self, request, event_id):
        return _feed(self.events_rpc, request, "event", event_id, f"tansiq-event-{event_id}.ics")

    # --- the page ---------------------------------------------------------------------------

    @api("GET", "/calendar")
    def calendar_page(self, request):
        return calendar_page(request, self.directory_rpc.list_associations(), signed_in_or_none(request))


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
                  initial_date=request.args.get("date", "")[:10], selected=selected)
