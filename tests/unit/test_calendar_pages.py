"""The calendar's pages without the broker (RPC proxies stubbed at the edge): who is offered edit actions,
who is refused the forms before any change reaches the events service, and what the public reads."""

import re

import pytest
from test_webapp_pages import HANANE, YOUSSEF, Stub, request, sessions  # noqa: F401 - fixture
from test_webapp_pages import Gateway as PagesGateway

from services.gateway.service import GatewayService
from tansiq import i18n
from tansiq.errors import NotFound

SALMA = {"id": "s-mrk-2", "association": "wafae-marrakech", "roles": ["coordinator", "admin"], "language": "fr",
         "name": "Salma"}
FATIMA = {"id": "s-safi-1", "association": "amal-safi", "roles": ["case_worker"], "language": "ar", "name": "Fatima"}
EVENT = {"id": "e-1", "title": "Formation couture", "description": "", "kind": "training", "organiser": "amal-safi",
         "co_organisers": [], "city": "Safi", "venue": None, "place": "", "starts_at": "2027-04-05T09:00:00+00:00",
         "ends_at": "2027-04-05T11:00:00+00:00", "start_local": "2027-04-05T10:00:00+01:00",
         "end_local": "2027-04-05T12:00:00+01:00", "tz": "Africa/Casablanca", "all_day": False,
         "rrule": "FREQ=WEEKLY;COUNT=4", "exdates": [], "moved": [], "capacity": None, "registered": 0,
         "visibility": "public", "status": "published"}
OCCURRENCE = {"recurrence_id": "2027-04-12T09:00:00+00:00", "start": "2027-04-12T09:00:00+00:00",
              "start_local": "2027-04-12T10:00:00+01:00", "all_day": False, "moved": False}
ASSOCIATIONS = [{"slug": "amal-safi", "name_fr": "Association Amal", "name_ar": "جمعية أمل", "city": "Safi"},
                {"slug": "wafae-marrakech", "name_fr": "Association Wafae", "name_ar": "جمعية وفاء",
                 "city": "Marrakech"}]


class Gateway(PagesGateway):
    """What the calendar's page routes use of the service."""

    _event_page, _editable_event, _event_form = (GatewayService._event_page, GatewayService._editable_event,
                                                 GatewayService._event_form)


def error_at(html, name):
    """The words shown at field `name` (templates/_fields.html), None when its error is hidden or absent."""
    found = re.search(rf'<p class="field-error" id="{name}-error" data-field="{name}" ?(hidden)?>([^<]*)</p>', html)
    return found.group(2) if found and not found.group(1) else None


def gateway(event=EVENT):
    return Gateway(events_rpc=Stub(get_event=event, event_occurrences=[OCCURRENCE], list_venues=[]),
                   directory=Stub(list_associations=ASSOCIATIONS))


def event_page(sessions, staff, event=EVENT, lang="fr"):
    token = sessions.signed_in(staff) if staff else None
    return GatewayService.event_details_page(gateway(event), request(f"/calendar/events/e-1?lang={lang}", token),
                                             event_id="e-1")


@pytest.mark.parametrize("staff, event, editable", [
    (HANANE, EVENT, True),                                          # coordinator of the organiser
    (YOUSSEF, EVENT, True),                                         # events manager of the organiser
    (FATIMA, EVENT, False),                                         # case worker: reads, no edit action
    (SALMA, EVENT, False),                                          # coordinator of another association
    (SALMA, {**EVENT, "co_organisers": ["wafae-marrakech"]}, True),  # ... that co-organises it
    (None, EVENT, False),                                           # the public
])
def test_edit_actions_only_for_coordinators_and_events_managers_of_its_organisers(sessions, staff, event, editable):
    html = event_page(sessions, staff, event).get_data(as_text=True)
    assert ('id="edit-actions"' in html) is editable
    assert ("cancel-occurrence" in html) is editable and ("move-occurrence" in html) is editable
    assert ('id="register-form"' in html) is (staff is not None)
    assert "Association Amal" in html and ">amal-safi<" not in html  # the organiser by name


def test_the_public_page_in_arabic_says_the_time_in_the_events_zone(sessions):
    response = event_page(sessions, None, lang="ar")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and 'dir="rtl"' in html and "جمعية أمل" in html
    assert "10:00" in html and "– <bdi>12:00</bdi>" in html and "(Africa/Casablanca)" in html
    assert "كل أسبوع · 4 مرات" in html


def test_an_event_the_reader_may_not_see_is_a_404_page(sessions):
    class Hidden(Stub):
        def get_event(self, *args, **kwargs):
            raise NotFound("no event 'e-1'", code="unknown_event")

    hidden = Gateway(events_rpc=Hidden(), directory=Stub(list_associations=ASSOCIATIONS))
    response = GatewayService.event_details_page(hidden, request("/calendar/events/e-1?lang=fr"), event_id="e-1")
    assert response.status_code == 404 and response.mimetype == "text/html"


@pytest.mark.parametrize("staff, status", [(FATIMA, 403), (SALMA, 403), (HANANE, 200)])
def test_the_edit_form_is_refused_before_any_change_is_sent(sessions, staff, status):
    events = Stub(get_event=EVENT, list_venues=[])
    pages = Gateway(events_rpc=events, directory=Stub(list_associations=ASSOCIATIONS))
    asked = request("/calendar/events/e-1/edit?lang=fr", sessions.signed_in(staff))
    page = GatewayService.event_edit_page(pages, asked, event_id="e-1")
    assert page.status_code == status
    assert not [call for call in events.calls if call[0] not in ("get_event", "list_venues")]
    if status == 200:
        html = page.get_data(as_text=True)
        assert 'name="csrf_token"' in html and 'name="idempotency_key"' in html
        assert 'value="WEEKLY" selected' in html and 'inputmode="numeric" value="4"' in html


def post_form(path, fields, token):
    from test_forms_without_script import post  # tests/unit/test_forms_without_script.py: a form from our page

    return post(path, fields, token=token)


def test_the_new_event_form_needs_its_csrf_field_and_valid_fields_before_anything_is_created(sessions):
    from tansiq.readmodel import csrf_for

    events = Stub(create_event={"event": {"id": "e-2"}}, list_venues=[])
    pages = Gateway(events_rpc=events, directory=Stub(list_associations=ASSOCIATIONS))
    token = sessions.signed_in(HANANE)
    fields = {"title": "Formation couture", "kind": "training", "city": "Safi", "start_date": "2027-03-01",
              "start_time": "10:00", "end_time": "12:00", "idempotency_key": "k" * 32}
    forged = GatewayService.event_new_submit(pages, post_form("/calendar/new?lang=fr", fields, token))
    assert forged.status_code == 403 and forged.mimetype == "text/html"
    wrong = GatewayService.event_new_submit(pages, post_form("/calendar/new?lang=ar", {
        **fields, "end_time": "25:99", "kind": "picnic", "csrf_token": csrf_for(token)}, token))
    html = wrong.get_data(as_text=True)
    assert wrong.status_code == 422 and error_at(html, "end_time") == "ساعة مثل 10:00."
    assert error_at(html, "kind") == "اختاري قيمة من القائمة." and error_at(html, "title") is None
    assert 'aria-invalid="true" aria-describedby="kind-error"' in html
    assert 'dir="rtl"' in html and "Must be one of" not in html  # at the field, in her language
    assert [call for call in events.calls if call[0] == "create_event"] == []
    done = GatewayService.event_new_submit(pages, post_form("/calendar/new?lang=fr", {
        **fields, "csrf_token": csrf_for(token)}, token))
    assert done.status_code == 303 and done.headers["Location"].startswith("/calendar/events/e-2?")
    [(_, args, kwargs)] = [call for call in events.calls if call[0] == "create_event"]
    assert args[0]["organiser"] == HANANE["association"] and args[0]["start"] == "2027-03-01T10:00:00"


@pytest.mark.parametrize("lang, words", [("fr", "Une date comme 2027-03-15."), ("ar", None)])
def test_the_search_page_declares_its_query_and_shows_a_bad_date_at_its_field(sessions, lang, words):
    events = Stub(search_events=[])
    pages = Gateway(events_rpc=events, directory=Stub(list_associations=ASSOCIATIONS))
    bad = GatewayService.calendar_search_page(pages, request(f"/calendar/search?lang={lang}&q=couture&from=31/12/2026"
                                                             "&to=2027-02-30", None))
    html = bad.get_data(as_text=True)
    assert bad.status_code == 422 and events.calls == []  # nothing searched with a half-read query
    said = i18n.translations(lang).gettext("form.invalid_date")
    assert error_at(html, "from") == said == (words or said) and error_at(html, "to") == said
    assert 'value="31/12/2026"' in html and 'value="couture"' in html  # the form again, as she typed it
    fine = GatewayService.calendar_search_page(pages, request(f"/calendar/search?lang={lang}&q=couture&from=2027-01-01"
                                                              "&to=&city=", None))
    assert fine.status_code == 200 and error_at(fine.get_data(as_text=True), "from") is None
    [(_, args, kwargs)] = events.calls
    assert args[0] == {"words": "couture", "city": None, "start": "2027-01-01T00:00:00+00:00"}
    assert kwargs["audience"] == "public"


class Refusing:
    """The events service's proxy when the event is unknown (or not shared with this reader)."""

    def get_event(self, event_id, **kwargs):
        raise NotFound(f"no event {event_id!r}", code="unknown_event")


@pytest.mark.parametrize("staff", [HANANE, YOUSSEF, FATIMA, None], ids=["coordinator", "events_manager",
                                                                        "case_worker", "public"])
@pytest.mark.parametrize("lang", ["ar", "fr"])
def test_an_event_notifications_link_opens_its_page_or_says_it_is_unknown_or_cancelled(sessions, staff, lang):
    from services.gateway.routes import may_open
    from services.notifications.rules import event_link

    link = event_link({"event_id": "e-1"})
    assert link == "/calendar/events/e-1" and may_open(staff, link)
    shown = event_page(sessions, staff, lang=lang)
    assert shown.status_code == 200 and 'id="event-title"' in shown.get_data(as_text=True)
    say = i18n.translations(lang).gettext
    cancelled = event_page(sessions, staff, {**EVENT, "status": "cancelled"}, lang=lang).get_data(as_text=True)
    assert 'id="event-cancelled"' in cancelled and say("event.cancelled_notice") in cancelled
    assert 'id="edit-actions"' not in cancelled
    token = sessions.signed_in(staff) if staff else None
    unknown = GatewayService.event_details_page(Gateway(events_rpc=Refusing()),
                                                request(f"/calendar/events/e-404?lang={lang}", token), event_id="e-404")
    html = unknown.get_data(as_text=True)
    assert unknown.status_code == 404 and unknown.mimetype == "text/html"
    assert say("error.unknown_event") in html and f'lang="{lang}"' in html
