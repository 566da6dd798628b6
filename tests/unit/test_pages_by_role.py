"""Pages by role: every page, rendered for each role, offers only links and actions her roles may use
(read from the routes' own declarations), and an events manager sees no case link and no case data."""

import json
import re
from urllib.parse import urlsplit

import pytest
from gateway_sessions import directory_sessions
from test_calendar_pages import EVENT, OCCURRENCE  # an event of her association (amal-safi)
from test_webapp_pages import (  # tests/unit/test_webapp_pages.py
    ASSOCIATIONS,
    AUDIT,
    BENEFICIARIES,
    DISCLOSURES,
    EVENTS,
    RECORD,
    SENDER,
    SENT,
    Gateway,
    Stub,
    request,
)
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule

from services.gateway.api_events import calendar_words
from services.gateway.routes import OPTIONAL, PUBLIC, declared_routes
from services.gateway.service import GatewayService
from tansiq.contracts.fields import ROLES

ROUTES = Map([Rule(d.url, methods=[d.method], endpoint=d) for d in declared_routes(GatewayService)])
# The page script's actions: the element that offers it -> the route it calls (static/webapp.js).
ACTIONS = {
    r'class="mark-read"': ("POST", "/api/inbox/7/read"),
    r'id="consent-form"': ("POST", "/api/beneficiaries/b-1/consents"),  # and its form posts to the page route
    r'id="refer-form"': ("POST", "/api/referrals"),
    r'id="intake-form"': ("POST", "/api/beneficiaries"),
}
REFERRAL = {"id": "r-1", "direction": "received", "state": "sent", "from_association": "wafae-marrakech",
            "to_association": "amal-safi", "service_category": "legal_orientation", "urgency": "normal",
            "reason": "canary-reason", "shared": {"first_name": "Khadija"}, "overdue": False,
            "ack_due": "2026-12-01T10:00:00+00:00", "response_due": None, "created_at": "2026-11-29T14:00:00+00:00"}
INBOX = {"items": [{"id": 7, "kind": "referral.sent", "urgency": "normal", "subject": "s", "body": "",
                    "link": "/referrals/r-1", "created_at": "2026-11-29T14:00:00+00:00", "read_at": None,
                    "read": False}], "next": None}
CASE_DATA = ("Khadija", "0661234567", "canary-reason", "b-1")


def staff(role):
    return {"id": f"s-{role}", "association": "amal-safi", "roles": [role], "language": "fr", "name": role}


class PagesGateway(Gateway):
    """The calendar's pages share helpers of the service too."""

    _event_page, _editable_event = GatewayService._event_page, GatewayService._editable_event
    _event_form, _move_form = GatewayService._event_form, GatewayService._move_form


def gateway():
    return PagesGateway(
        notifications_rpc=Stub(inbox=INBOX, unread_count=1),
        referrals_rpc=Stub(list_referrals=[dict(REFERRAL)], get_referral=dict(REFERRAL), referrals_about=[SENT]),
        intake_rpc=Stub(get_beneficiary=dict(RECORD), list_beneficiaries=BENEFICIARIES, audit_trail=AUDIT,
                        list_disclosures=DISCLOSURES),
        directory=Stub(list_associations=ASSOCIATIONS, get_staff=SENDER, find_services=[]),
        events_rpc=Stub(get_event=dict(EVENT), event_occurrences=[OCCURRENCE], list_venues=[], search_events=[],
                         list_occurrences_page=EVENTS))


PAGES = [("home", "/", {}), ("calendar_page", "/calendar", {}), ("inbox_page", "/inbox", {}),
         ("referrals_page", "/referrals", {}), ("referral_page", "/referrals/r-1", {"referral_id": "r-1"}),
         ("intake_page", "/intake", {}), ("beneficiary_page", "/beneficiaries/b-1", {"beneficiary_id": "b-1"}),
         ("event_details_page", "/calendar/events/e-1", {"event_id": "e-1"}),
         ("calendar_search_page", "/calendar/search", {}), ("event_new_page", "/calendar/new", {}),
         ("event_edit_page", "/calendar/events/e-1/edit", {"event_id": "e-1"}),
         ("event_cancel_page", "/calendar/events/e-1/cancel", {"event_id": "e-1"}),
         ("occurrence_move_page", "/calendar/events/e-1/occurrences/move", {"event_id": "e-1"}),
         ("occurrence_cancel_page", "/calendar/events/e-1/occurrences/cancel", {"event_id": "e-1"}),
         ("beneficiaries_page", "/beneficiaries", {}),
         ("erase_page", "/beneficiaries/b-1/erase", {"beneficiary_id": "b-1"})]


def declaration(method, path):
    try:
        declared, _ = ROUTES.bind("tansiq.test").match(path, method=method)
    except (NotFound, MethodNotAllowed):
        return None
    return declared


def allowed(role, method, path):
    declared = declaration(method, path)
    assert declared is not None, f"{method} {path} is offered by a page but is no route"
    return declared.auth in (PUBLIC, OPTIONAL) or role in declared.roles()


def offered(html):
    """(method, path) of every link, form and scripted action of a page."""
    found = {("GET", urlsplit(href).path) for href in re.findall(r'href="(/[^"]*)"', html)
             if not href.startswith("/static/")}
    found |= {(method.upper(), urlsplit(action).path)
              for method, action in re.findall(r'<form[^>]*method="(\w+)"[^>]*action="(/[^"]*)"', html)}
    for pattern, (method, template) in ACTIONS.items():
        for match in re.finditer(pattern, html):
            found.add((method, template.format(**match.groupdict())))
    return found


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """{role: {page: (status, html)}}: every page, as each role sees it."""
    with directory_sessions(tmp_path_factory.mktemp("directory")) as sessions:
        pages = {}
        for role in ROLES:
            token = sessions.signed_in(staff(role))
            pages[role] = {}
            for name, path, values in PAGES:
                response = getattr(GatewayService, name)(gateway(), request(f"{path}?lang=fr", token), **values)
                pages[role][name] = (response.status_code, response.get_data(as_text=True))
        yield pages


@pytest.mark.parametrize("role", ROLES)
def test_every_link_and_action_of_every_page_is_one_her_roles_may_use(rendered, role):
    refused = [(name, method, path) for name, (_, html) in rendered[role].items()
               for method, path in sorted(offered(html)) if not allowed(role, method, path)]
    assert refused == []


@pytest.mark.parametrize("role", ROLES)
def test_a_page_her_roles_do_not_open_is_refused_not_half_shown(rendered, role):
    for name, path, _ in PAGES:
        status, html = rendered[role][name]
        assert status == (200 if allowed(role, "GET", path) else 403), (role, name, status)


def test_an_events_manager_sees_no_case_link_and_no_case_data_anywhere(rendered):
    for name, (_, html) in rendered["events_manager"].items():
        links = {path for method, path in offered(html)}
        assert not {path for path in links if path.startswith(("/beneficiaries", "/referrals", "/intake"))}, name
        for secret in CASE_DATA:
            assert secret not in html, (name, secret)


def test_a_case_worker_is_offered_the_actions_of_her_work(rendered):
    actions = set().union(*(offered(html) for _, html in rendered["case_worker"].values()))
    assert {("POST", "/referrals/r-1/acknowledge"), ("POST", "/referrals/r-1/decline"), ("POST", "/api/referrals"),
            ("POST", "/api/beneficiaries"), ("GET", "/intake"), ("GET", "/referrals"), ("POST", "/logout"),
            ("GET", "/beneficiaries"), ("POST", "/beneficiaries/b-1/sessions"), ("POST", "/consents/c-1/revoke"),
            ("POST", "/duplicates/4"), ("POST", "/intake"), ("POST", "/beneficiaries/b-1/consents"),
            ("POST", "/beneficiaries/b-1/referrals")} <= actions


def test_the_calendar_editors_are_offered_its_forms_and_the_others_only_to_register(rendered):
    edits = {("GET", "/calendar/events/e-1/edit"), ("GET", "/calendar/events/e-1/cancel"),
             ("GET", "/calendar/events/e-1/occurrences/move")}
    for role in ROLES:
        actions = offered(rendered[role]["event_details_page"][1])
        assert ("POST", "/calendar/events/e-1/register") in actions, role
        assert (edits <= actions) is (role in ("coordinator", "events_manager")), role


def test_the_calendar_filters_are_labelled_before_any_script_runs(rendered):
    status, html = rendered["case_worker"]["calendar_page"]
    assert status == 200
    assert '<span>Ville</span>' in html and '<span>Type</span>' in html
    assert '<option value="">Toutes</option>' in html
    assert "<dt>Quand</dt>" in html  # the details dialog's labels too


def test_the_calendar_script_gets_its_words_from_the_catalogue(rendered):
    """Kinds, statuses and the load error the script writes come from the catalogue in the page's language."""
    _, html = rendered["case_worker"]["calendar_page"]
    words = json.loads(re.search(r'id="calendar-words">(.*?)</script>', html, re.S).group(1))
    assert words["kinds"]["training"] == "Formation" and words["statuses"]["cancelled"] == "Annulé"
    assert words["error"] == "Le calendrier n'a pas pu être chargé."
    for lang in ("ar", "fr", "en"):
        said = calendar_words(lang)
        values = [*said["kinds"].values(), *said["statuses"].values()]
        assert not any(value.startswith(("event.", "calendar.")) for value in values), lang  # a missing key
    assert '<h1 class="visually-hidden">Calendrier</h1>' in html
