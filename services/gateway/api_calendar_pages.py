"""The calendar's pages around the month view: a page per event (its own URL, to share), creating
and editing events (recurrence, skipped dates), cancelling an event or one occurrence (after a
confirmation page), moving an occurrence, registering one's own staff or a stand, and search.

Every form posts without JavaScript (`@route(..., form=True)`: urlencoded body, the session's CSRF
token in a hidden field, the same Origin check as the JSON API; docs/web.md) and carries an idempotency key, so a double
click changes the calendar once. The events service checks again who may change what; the page
shows edit actions only to coordinators and events managers of an organising association.
"""

import uuid
from datetime import date, datetime, timedelta, timezone
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from babel.dates import format_date
from werkzeug.utils import redirect

from services.gateway import event_forms as forms
from services.gateway.access import can
from services.gateway.pages import page
from services.gateway.routes import OPTIONAL, SIGNED_IN, route
from services.gateway.schemas import CalendarSearchQuery
from services.gateway.web import field_code, request_language
from tansiq import i18n
from tansiq.calls import TimedRpcProxy
from tansiq.commands import check_key
from tansiq.contracts.events import EVENT_KINDS
from tansiq.errors import DomainError, Forbidden

# Stands at exhibitions, fairs and festivals; people at the others (services/events/domain.py says the same).
STAND_KINDS = ("exhibition", "fair", "festival")
UPCOMING_SHOWN = 60
def domain_errors(exc):
    """A refusal of the events service as the route's {form field: code}: its own words at its field when
    the catalogue has them, else `invalid`."""
    return {forms.field_of(exc.code): field_code(f"event.error.{exc.code}")}


def when_local(value, lang, zone_name, all_day=False):
    """An ISO instant (or a date for all-day events) as `lang` writes it, in the event's own zone."""
    if not value:
        return ""
    if all_day or len(value) == 10:
        return format_date(date.fromisoformat(value[:10]), "EEE d MMM y", locale=i18n.BABEL_LOCALES[lang])
    return i18n.format_moment(datetime.fromisoformat(value), lang, tzinfo=ZoneInfo(zone_name))


def end_text(event, lang):
    """The end as the page says it: its time alone when it ends on the day it starts."""
    if event["all_day"]:
        last = date.fromisoformat(event["end_local"][:10]) - timedelta(days=1)  # stored exclusive
        return "" if last.isoformat() == event["start_local"][:10] else when_local(last.isoformat(), lang,
                                                                                  event["tz"], True)
    if event["end_local"][:10] == event["start_local"][:10]:
        return event["end_local"][11:16]
    return when_local(event["ends_at"], lang, event["tz"])


def rule_text(rrule, zone_name, lang):
    """"Every week · Mon, Wed · 4 times" in the page's language, from the stored rule."""
    if not rrule:
        return ""
    values = forms.form_from_rrule(rrule, zone_name)
    parts = [i18n.translate(lang, f"rule.{values['freq']}")]
    if values["interval"] not in ("", "1"):
        parts.append(i18n.translate(lang, "rule.interval", num=values["interval"]))
    if values["byday"]:
        parts.append(", ".join(i18n.translate(lang, f"weekday.{day}") for day in values["byday"]))
    if values["ends"] == "count":
        parts.append(i18n.translate_plural(lang, "rule.count", "rule.count.plural", int(values["count"])))
    elif values["ends"] == "until":
        parts.append(i18n.translate(lang, "rule.until", day=when_local(values["until"], lang, zone_name, True)))
    return " · ".join(parts)


def new_key():
    return uuid.uuid4().hex


def posted_key(request):
    return check_key(request.form.get("idempotency_key") or None)


def is_editor(staff, event):
    """May `staff` change `event`? Her roles, and her association among its organisers (as the service checks)."""
    return bool(staff) and can(staff)("calendar.edit") and staff["association"] in {
        event.get("organiser"), *(event.get("co_organisers") or [])}


def back_to_event(event_id, lang, **flags):
    return redirect(f"/calendar/events/{event_id}?{urlencode({'lang': lang, **flags})}", code=303)


class CalendarPages:
    events_rpc = TimedRpcProxy("events")  # as EventsApi declares it; listed so the mixin stands alone

    # --- one event ------------------------------------------------------------------------

    @route("GET", "/calendar/events/<string:event_id>", auth=OPTIONAL, page=True, tag="events",
           summary="An event's own page (to share): the public reads public events, staff the network's too")
    def event_details_page(self, request, event_id, staff):
        return self._event_page(request, staff, event_id)

    def _event_page(self, request, staff, event_id, status=200, errors=None, registration=None):
        lang = request_language(request, staff)
        actor = self.identity.sign(staff, "events") if staff else None
        audience = "network" if staff else "public"
        event = self.events_rpc.get_event(event_id, audience=audience, actor=actor)
        now = datetime.now(timezone.utc)
        upcoming = self.events_rpc.event_occurrences(
            event_id, (now - timedelta(days=1)).isoformat(), (now + timedelta(days=399)).isoformat(),
            audience=audience, actor=actor, limit=UPCOMING_SHOWN)
        for occurrence in upcoming:
            occurrence["when"] = when_local(occurrence["start"] if not occurrence["all_day"]
                                            else occurrence["start_local"], lang, event["tz"], occurrence["all_day"])
        names = self._association_names(lang)
        share = f"{request.host_url.rstrip('/')}/calendar/events/{event_id}"
        return page("event.html", request, staff, status=status, lang=lang, event=event, upcoming=upcoming,
                    names=names, editable=is_editor(staff, event), errors=errors or {},
                    when_start=when_local(event["starts_at"] if not event["all_day"] else event["start_local"],
                                          lang, event["tz"], event["all_day"]),
                    when_end=end_text(event, lang),
                    rule=rule_text(event.get("rrule"), event["tz"], lang),
                    skipped=[when_local(day, lang, event["tz"], True) for day in forms.skipped_days(event)],
                    share=share, host=request.host, base_url=request.host_url.rstrip("/"),
                    stand=event["kind"] in STAND_KINDS,
                    registration=registration or {"name": (staff or {}).get("name", ""), "products": ""},
                    flags={key: request.args.get(key) for key in ("saved", "cancelled", "registered", "moved")},
                    idempotency_key=new_key())

    # --- create and edit ------------------------------------------------------------------

    @route("GET", "/calendar/new", auth="calendar.edit", page=True, tag="events", summary="The new-event form")
    def event_new_page(self, request, staff):
        day = (request.args.get("date") or "")[:10]
        values = {"start_date": day, "end_date": day, "start_time": "10:00", "end_time": "12:00",
                  "status": "published", "visibility": "network", "tz": forms.DEFAULT_ZONE, "interval": "1",
                  "ends": "never", "byday": []}
        return self._event_form(request, staff, values)

    @route("POST", "/calendar/new", auth="calendar.edit", page=True, form=True, body=forms.NewEventForm,
           tag="events", summary="The new-event form posted without JavaScript")
    def event_new_submit(self, request, staff, body=None, errors=None):
        lang = request_language(request, staff)
        if errors:
            return self._event_form(request, staff, form_values(request.form), errors)
        try:
            result = self.events_rpc.create_event({**body["api"], "organiser": staff["association"]},
                                                  actor=self.identity.sign(staff, "events"),
                                                  force=request.form.get("force") == "on",
                                                  idempotency_key=posted_key(request))
        except DomainError as exc:
            if exc.code not in forms.FIELD_OF_CODE:
                raise
            return self._event_form(request, staff, form_values(request.form), domain_errors(exc))
        return back_to_event(result["event"]["id"], lang, saved="1")

    @route("GET", "/calendar/events/<string:event_id>/edit", auth="calendar.edit", page=True, tag="events",
           summary="An event's edit form")
    def event_edit_page(self, request, staff, event_id):
        event = self._editable_event(staff, event_id)
        return self._event_form(request, staff, forms.event_form_values(event), event=event)

    @route("POST", "/calendar/events/<string:event_id>/edit", auth="calendar.edit", page=True, form=True,
           body=forms.EventForm, tag="events", summary="An event's edit form posted without JavaScript")
    def event_edit_submit(self, request, staff, event_id, body=None, errors=None):
        lang = request_language(request, staff)
        event = self._editable_event(staff, event_id)
        if errors:
            return self._event_form(request, staff, form_values(request.form), errors, event=event)
        try:
            self.events_rpc.update_event(event_id, body["api"], actor=self.identity.sign(staff, "events"),
                                         force=request.form.get("force") == "on", idempotency_key=posted_key(request))
        except DomainError as exc:
            if exc.code not in forms.FIELD_OF_CODE:
                raise
            return self._event_form(request, staff, form_values(request.form), domain_errors(exc), event=event)
        return back_to_event(event_id, lang, saved="1")

    def _editable_event(self, staff, event_id):
        event = self.events_rpc.get_event(event_id, audience="network", actor=self.identity.sign(staff, "events"))
        if not is_editor(staff, event):
            raise Forbidden("only the organising associations may change this event")
        return event

    def _event_form(self, request, staff, values, errors=None, event=None):
        lang = request_language(request, staff)
        associations = self.directory.list_associations()
        return page("event_form.html", request, staff, status=422 if errors else 200, lang=lang, values=values,
                    errors=errors or {}, event=event, kinds=EVENT_KINDS, zones=forms.ZONES,
                    frequencies=forms.FREQUENCIES, weekdays=forms.WEEKDAYS, venues=self.events_rpc.list_venues(None),
                    cities=sorted({a["city"] for a in associations if a.get("city")}),
                    venue_conflict="venue_id" in (errors or {}), idempotency_key=new_key())

    # --- cancel (after a confirmation page) -------------------------------------------------

    @route("GET", "/calendar/events/<string:event_id>/cancel", auth="calendar.edit", page=True, tag="events",
           summary="Confirm cancelling a whole event")
    def event_cancel_page(self, request, staff, event_id):
        event = self._editable_event(staff, event_id)
        return page("event_confirm.html", request, staff, event=event, action="cancel", occurrence=None,
                    idempotency_key=new_key())

    @route("POST", "/calendar/events/<string:event_id>/cancel", auth="calendar.edit", page=True, form=True,
           tag="events", summary="Cancel a whole event, after its confirmation page")
    def event_cancel_submit(self, request, staff, event_id):
        self.events_rpc.cancel_event(event_id, actor=self.identity.sign(staff, "events"),
                                     idempotency_key=posted_key(request))
        return back_to_event(event_id, request_language(request, staff), cancelled="1")

    @route("GET", "/calendar/events/<string:event_id>/occurrences/cancel", auth="calendar.edit", page=True,
           tag="events", summary="Confirm cancelling one occurrence")
    def occurrence_cancel_page(self, request, staff, event_id):
        lang = request_language(request, staff)
        event = self._editable_event(staff, event_id)
        key = request.args.get("recurrence_id", "")
        occurrence = {"recurrence_id": key, "when": when_local(key, lang, event["tz"], event["all_day"])}
        return page("event_confirm.html", request, staff, event=event, action="cancel_occurrence",
                    occurrence=occurrence, idempotency_key=new_key())

    @route("POST", "/calendar/events/<string:event_id>/occurrences/cancel", auth="calendar.edit", page=True,
           form=True, body=forms.OccurrenceForm, tag="events",
           summary="Cancel one occurrence, after its confirmation page")
    def occurrence_cancel_submit(self, request, staff, event_id, body):
        self.events_rpc.cancel_occurrence(event_id, body, actor=self.identity.sign(staff, "events"),
                                          idempotency_key=posted_key(request))
        return back_to_event(event_id, request_language(request, staff), cancelled="occurrence")

    # --- move one occurrence ------------------------------------------------------------------

    @route("GET", "/calendar/events/<string:event_id>/occurrences/move", auth="calendar.edit", page=True,
           tag="events", summary="The form moving one occurrence")
    def occurrence_move_page(self, request, staff, event_id):
        event = self._editable_event(staff, event_id)
        key = request.args.get("recurrence_id", "")
        zone = ZoneInfo(event["tz"])
        try:
            start = datetime.fromisoformat(key)
        except ValueError:
            start = None
        values = {"recurrence_id": key}
        if start is not None and not event["all_day"]:
            length = datetime.fromisoformat(event["ends_at"]) - datetime.fromisoformat(event["starts_at"])
            local, local_end = start.astimezone(zone), (start + length).astimezone(zone)
            values.update(start_date=local.date().isoformat(), start_time=local.strftime("%H:%M"),
                          end_date=local_end.date().isoformat(), end_time=local_end.strftime("%H:%M"))
        elif start is not None:
            values.update(start_date=key[:10], end_date=key[:10])
        return self._move_form(request, staff, event, values)

    @route("POST", "/calendar/events/<string:event_id>/occurrences/move", auth="calendar.edit", page=True,
           form=True, body=forms.MoveForm, tag="events", summary="Move one occurrence (form without JavaScript)")
    def occurrence_move_submit(self, request, staff, event_id, body=None, errors=None):
        event = self._editable_event(staff, event_id)
        if errors:
            return self._move_form(request, staff, event, form_values(request.form), errors)
        try:
            self.events_rpc.move_occurrence(event_id, body["api"], actor=self.identity.sign(staff, "events"),
                                            force=request.form.get("force") == "on",
                                            idempotency_key=posted_key(request))
        except DomainError as exc:
            if exc.code not in forms.FIELD_OF_CODE:
                raise
            return self._move_form(request, staff, event, form_values(request.form), domain_errors(exc))
        return back_to_event(event_id, request_language(request, staff), moved="1")

    def _move_form(self, request, staff, event, values, errors=None):
        lang = request_language(request, staff)
        original = when_local(values.get("recurrence_id"), lang, event["tz"], event["all_day"]) if values.get(
            "recurrence_id") else ""
        return page("event_move.html", request, staff, status=422 if errors else 200, event=event, values=values,
                    original=original, errors=errors or {}, idempotency_key=new_key())

    # --- registrations and stands ---------------------------------------------------------------

    @route("GET", "/calendar/events/<string:event_id>/register", auth=SIGNED_IN, page=True, tag="events",
           summary="The registration form, on the event's page")
    def event_register_page(self, request, staff, event_id):
        return redirect(f"/calendar/events/{event_id}?{urlencode({'lang': request_language(request, staff)})}"
                        "#register", code=303)

    @route("POST", "/calendar/events/<string:event_id>/register", auth=SIGNED_IN, page=True, form=True,
           body=forms.RegistrationForm, tag="events")
    def event_register_submit(self, request, staff, event_id, body=None, errors=None):
        """Any staff member registers her own association (a participant, or a stand and its products)."""
        lang = request_language(request, staff)
        if errors:
            return self._event_page(request, staff, event_id, status=422, errors=errors,
                                    registration=form_values(request.form))
        try:
            self.events_rpc.register(event_id, {**body["api"], "association": staff["association"]},
                                     actor=self.identity.sign(staff, "events"), idempotency_key=posted_key(request))
        except DomainError as exc:
            if exc.code not in forms.FIELD_OF_CODE:
                raise
            return self._event_page(request, staff, event_id, status=422,
                                    errors=domain_errors(exc), registration=form_values(request.form))
        return back_to_event(event_id, lang, registered="1")

    # --- search ----------------------------------------------------------------------------------

    @route("GET", "/calendar/search", auth=OPTIONAL, page=True, tag="events", query=CalendarSearchQuery,
           summary="Calendar search by title, city and dates: the public finds public events, staff the network's too")
    def calendar_search_page(self, request, staff, query=None, errors=None):
        lang = request_language(request, staff)
        asked = {key: (request.args.get(key) or "").strip() for key in ("q", "city", "from", "to")}  # as typed
        errors, results = dict(errors or {}), []
        if query and any(asked.values()):
            window = {"words": query["q"] or None, "city": query["city"] or None}
            if query["since"]:
                window["start"] = f"{query['since']}T00:00:00+00:00"
            if query["until"]:
                window["end"] = f"{query['until'] + timedelta(days=1)}T00:00:00+00:00"
            try:
                results = self.events_rpc.search_events(
                    window, audience="network" if staff else "public",
                    actor=self.identity.sign(staff, "events") if staff else None)
            except DomainError as exc:
                if exc.code not in ("invalid_window", "validation_error"):
                    raise  # an error page (pages.page_call)
                errors["to"] = "event.error.invalid_window"
        associations = self.directory.list_associations()
        for found in results:
            found["when"] = when_local(found["first"] if not found["all_day"] else found["first_local"], lang,
                                       found["tz"], found["all_day"])
        return page("calendar_search.html", request, staff, status=422 if errors else 200, lang=lang, asked=asked,
                    results=results, errors=errors, names=self._association_names(lang),
                    cities=sorted({a["city"] for a in associations if a.get("city")}), searched=any(asked.values()))


def form_values(form):
    """What was posted, to show the form again as it was sent (weekdays are a list)."""
    values = form.to_dict()
    values["byday"] = form.getlist("byday")
    values["all_day"] = form.get("all_day") in ("on", "1", "true")
    return values
