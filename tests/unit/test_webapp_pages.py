"""The staff pages without the broker: sign-in redirects, buttons per referral state, Casablanca times,
and the pages rendered from service answers (the RPC proxies are stubbed: the edge of the unit)."""

from urllib.parse import quote

import pytest
from actors import SIGNER, verifier  # tests/actors.py
from gateway_sessions import directory_sessions
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from services.gateway import web
from services.gateway.api_webapp import actions_for, for_page, safe_next, when
from services.gateway.service import GatewayService

HANANE = {"id": "s-safi-2", "association": "amal-safi", "roles": ["case_worker", "coordinator"], "language": "fr",
          "name": "Hanane Benali"}


@pytest.fixture
def sessions(tmp_path):
    with directory_sessions(tmp_path) as sessions:
        yield sessions


def request(path, token=None):
    headers = {"Cookie": f"{web.SESSION_COOKIE}={token}"} if token else {}
    return Request(EnvironBuilder(path=path, headers=headers).get_environ())


class Stub:
    """A service's RPC proxy answering from a dict of canned answers."""

    def __init__(self, **answers):
        self.answers, self.calls = answers, []

    def __getattr__(self, name):
        def call(*args, **kwargs):
            self.calls.append((name, args, kwargs))
            return self.answers[name]
        return call


class Gateway:
    """Just the attributes the page routes use."""

    identity = SIGNER

    def __init__(self, **proxies):
        self.__dict__.update(proxies)

    _association_names = GatewayService._association_names
    _case_form = GatewayService._case_form
    _needs_now = GatewayService._needs_now


def test_next_is_only_ever_a_path_of_this_site():
    assert safe_next("/inbox?lang=ar") == "/inbox?lang=ar"
    for unsafe in (None, "", "https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)"):
        assert safe_next(unsafe) == "/"


@pytest.mark.parametrize("path", ["/inbox?lang=ar", "/referrals?status=sent&lang=fr", "/intake", "/referrals/r-1"])
def test_a_page_without_a_session_sends_the_browser_to_sign_in_and_back(sessions, path):
    route = {"/inbox": GatewayService.inbox_page, "/referrals": GatewayService.referrals_page,
             "/intake": GatewayService.intake_page}.get(path.split("?")[0])
    response = route(Gateway(), request(path)) if route else GatewayService.referral_page(
        Gateway(), request(path), referral_id="r-1")
    assert response.status_code == 303
    assert response.headers["Location"] == f"/login?next={quote(path, safe='')}"
    expired = GatewayService.intake_page(Gateway(), request("/intake", token="not-a-token"))
    assert expired.status_code == 303


def test_the_login_page_speaks_the_language_of_the_page_asked_for(sessions):
    html = GatewayService.login_page(Gateway(), request("/login?next=%2Finbox%3Flang%3Dar")).get_data(as_text=True)
    assert 'dir="rtl"' in html and 'data-next="/inbox?lang=ar"' in html
    html = GatewayService.login_page(Gateway(), request("/login?next=https://evil.example")).get_data(as_text=True)
    assert 'data-next="/"' in html


def test_buttons_follow_the_referral_lifecycle_and_the_side():
    def names(direction, state):
        return [a["name"] for a in actions_for({"direction": direction, "state": state})]

    assert names("received", "sent") == ["acknowledge", "decline"]  # a decline needs no acknowledgement first
    assert names("received", "received") == ["accept", "decline"]
    assert names("received", "accepted") == ["start"]
    assert names("received", "in_progress") == ["complete"]
    assert names("received", "declined") == []
    assert names("sent", "sent") == ["withdraw"]
    # No dead end after a decline or an expiry: re-route it, or close it here.
    assert names("sent", "declined") == names("sent", "expired") == ["reroute", "dismiss"]
    assert names("received", "expired") == []  # the recipient cannot close what she let expire
    assert names("sent", "rerouted") == names("sent", "closed") == []
    confirmed = {a["name"] for state in ("sent", "received", "declined") for side in ("sent", "received")
                 for a in actions_for({"direction": side, "state": state}) if a["confirm"]}
    assert confirmed == {"decline", "withdraw", "reroute", "dismiss"}  # what cannot be undone asks to be confirmed
    decline = actions_for({"direction": "received", "state": "received"})[1]
    assert decline["input"] == "reason"
    assert actions_for({"direction": "received", "state": "in_progress"})[0]["input"] == "outcome"


def test_deadlines_are_shown_in_casablanca_time():
    assert "15:00" in when("2026-11-30T14:00:00+00:00", "fr")  # UTC+1 most of the year
    assert "10:00" in when("2027-03-03T10:00:00+00:00", "en")  # UTC+0 during Ramadan
    referral = for_page({"direction": "received", "state": "received", "ack_due": "2026-11-30T09:00:00+00:00",
                         "response_due": "2026-12-01T16:00:00+00:00", "created_at": "2026-11-29T15:00:00+00:00"},
                        "ar")
    assert referral["deadline"] == "2026-12-01T16:00:00+00:00" and "17:00" in referral["deadline_local"]
    assert for_page({"direction": "sent", "state": "accepted", "ack_due": None, "response_due": None,
                     "created_at": "2026-11-29T15:00:00+00:00"}, "fr")["deadline_local"] == ""


def test_the_inbox_page_renders_her_own_items_from_her_session(sessions):
    notifications = Stub(inbox={"next": "b2xkZXI", "items": [
        {"id": 7, "kind": "beneficiary.registered", "urgency": "urgent", "subject": "Nouvelle bénéficiaire",
         "body": "Ouvrez votre boîte.", "link": "/beneficiaries/b-1", "created_at": "2026-11-29T14:00:00+00:00",
         "read_at": None, "read": False},
        {"id": 3, "kind": "referral.accepted", "urgency": "normal", "subject": "Orientation acceptée <b>",
         "body": "", "link": "/referrals/r-1", "created_at": "2026-11-28T14:00:00+00:00",
         "read_at": "2026-11-28T15:00:00+00:00", "read": True}]}, unread_count=1)
    response = GatewayService.inbox_page(Gateway(notifications_rpc=notifications),
                                         request("/inbox?lang=ar", sessions.signed_in(HANANE)))
    html = response.get_data(as_text=True)
    assert 'href="/inbox?cursor=b2xkZXI"' in html  # the older items are one link away, not cut off
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert 'dir="rtl"' in html and 'data-unread="1"' in html
    assert html.count('class="mark-read"') == 1 and 'href="/referrals/r-1"' in html
    assert "&lt;b&gt;" in html  # escaped
    # her id, from the session only, inside an assertion only the gateway can sign
    assert {verifier("notifications").actor(call[1][0]).id for call in notifications.calls} == {"s-safi-2"}


def test_a_refused_page_is_an_html_page_not_json(sessions):
    from tansiq.errors import Forbidden

    class Refusing:
        def get_referral(self, referral_id, staff):
            raise Forbidden("not one of your association's referrals")

    response = GatewayService.referral_page(Gateway(referrals_rpc=Refusing()),
                                            request("/referrals/r-9?lang=en", sessions.signed_in(HANANE)),
                                            referral_id="r-9")
    assert response.status_code == 403 and response.mimetype == "text/html"
    assert "You do not have access to this page." in response.get_data(as_text=True)


NAIMA = {"id": "s-wafae-1", "association": "wafae-marrakech", "roles": ["case_worker"], "language": "ar",
         "name": "Naima"}
ASSOCIATIONS = [{"slug": "amal-safi", "name_ar": "جمعية أمل", "name_fr": "Association Amal", "city": "Safi"},
                {"slug": "wafae-marrakech", "name_ar": "جمعية وفاء للمرأة", "name_fr": "Association Wafae",
                 "city": "Marrakech"}]
# The directory's services (any category asked): Wafae's, and her own association's, which the forms leave out.
OFFERS = [{"association": "wafae-marrakech", "category": "legal_orientation"},
          {"association": "amal-safi", "category": "legal_orientation"}]
RECORD = {
    "id": "b-1", "association": "amal-safi", "kind": "survivor", "schooled": None, "city": "Safi", "language": "ar",
    "registered_at": "2026-11-29T14:00:00+00:00", "registered_by": "s-safi-1", "erased": False,
    "first_name": "Khadija", "last_name": "Bennani", "first_name_ar": "خديجة", "last_name_ar": None,
    "phone": "0661234567", "birth_date": None, "birth_year": 1991,
    "sessions": [{"id": "l-1", "held_at": "2026-11-29T14:00:00+00:00", "staff_id": "s-safi-1",
                  "needs": ["legal_orientation"], "urgency": "urgent", "orientation": None,
                  "notes": "<script>alert(1)</script>"}],
    "consents": [
        {"id": "c-1", "beneficiary_id": "b-1", "purpose": "legal_orientation", "fields": ["first_name", "phone"],
         "recipient_association": "wafae-marrakech", "recipient_category": None,
         "given_at": "2026-11-29T14:05:00+00:00", "expires_at": None, "revoked_at": None, "valid": True},
        {"id": "c-2", "beneficiary_id": "b-1", "purpose": "shelter", "fields": ["first_name"],
         "recipient_association": None, "recipient_category": "shelter",
         "given_at": "2026-11-29T14:06:00+00:00", "expires_at": None, "revoked_at": "2026-11-29T15:00:00+00:00",
         "valid": False}],
    "possible_duplicates": [{"id": 4, "beneficiary_id": "b-1", "other_id": "b-0", "reasons": ["same_phone"],
                             "status": "open", "created_at": "2026-11-29T14:00:00+00:00"}],
}


SENDER = {"id": "s-safi-1", "association": "amal-safi", "name": "Fatima Zahra", "email": "fatima@amal-safi.example",
          "phone": "+212 524 00 00 01", "language": "fr", "roles": ["case_worker"]}
HISTORY = [{"action": "send", "from_state": None, "to_state": "sent", "by": "s-safi-1", "by_association": "amal-safi",
            "at": "2026-11-29T14:10:00+00:00", "note": ""},
           {"action": "decline", "from_state": "sent", "to_state": "declined", "by": "s-wafae-1",
            "by_association": "wafae-marrakech", "at": "2026-11-29T16:00:00+00:00", "note": ""}]
SENT = {"id": "r-2", "direction": "sent", "state": "declined", "beneficiary_id": "b-1", "from_association": "amal-safi",
        "to_association": "wafae-marrakech", "service_category": "legal_orientation", "urgency": "high",
        "reason": "Avocate", "decline_reason": "Pas de place", "overdue": False, "ack_due": None, "response_due": None,
        "created_at": "2026-11-29T14:10:00+00:00", "created_by": "s-safi-1", "history": HISTORY}
REFERRAL_RECEIVED = {"id": "r-1", "direction": "received", "state": "sent", "beneficiary_id": None,
                     "from_association": "amal-safi", "to_association": "wafae-marrakech",
                     "service_category": "legal_orientation", "urgency": "normal", "reason": "Avocate",
                     "shared": {"first_name": "Khadija"}, "overdue": False, "ack_due": "2026-12-01T10:00:00+00:00",
                     "response_due": None, "created_at": "2026-11-29T14:00:00+00:00", "created_by": "s-safi-1",
                     "history": HISTORY[:1]}
AUDIT = {"items": [{"staff_id": "s-safi-1", "association": "amal-safi", "action": "register", "fields": [],
                    "detail": "", "at": "2026-11-29T14:00:00+00:00"}], "next": None}
DISCLOSURES = {"items": [{"id": 1, "consent_id": "c-1", "recipient_association": "wafae-marrakech",
                          "category": "legal_orientation", "fields": ["first_name"], "staff_id": "s-safi-1",
                          "at": "2026-11-29T14:10:00+00:00", "override": False, "override_reason": None}],
               "next": None}
BENEFICIARIES = {"items": [{"id": "b-1", "kind": "survivor", "city": "Safi", "language": "ar",
                            "registered_at": "2026-11-29T14:00:00+00:00", "registered_by": "s-safi-1"}],
                 "next": "bmV4dA"}
EVENTS = {"items": [{"event_id": "e-1", "title": "Formation écoute", "start": "2026-12-02T09:00:00+00:00",
                     "city": "Safi"}], "next": None, "truncated": False}


def record_gateway(**intake_answers):
    return Gateway(intake_rpc=Stub(**{"get_beneficiary": dict(RECORD), "audit_trail": AUDIT,
                                      "list_disclosures": DISCLOSURES, **intake_answers}),
                   referrals_rpc=Stub(referrals_about=[dict(SENT, history=[dict(h) for h in HISTORY])]),
                   directory=Stub(list_associations=ASSOCIATIONS, get_staff=SENDER, find_services=OFFERS))


def test_the_beneficiary_page_shows_her_record_consents_and_flags_with_the_forms(sessions):
    gateway = record_gateway()
    intake = gateway.intake_rpc
    response = GatewayService.beneficiary_page(gateway, request("/beneficiaries/b-1?lang=ar",
                                                                sessions.signed_in(HANANE)), beneficiary_id="b-1")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert 'dir="rtl"' in html and "Khadija" in html and "0661234567" in html
    assert "&lt;script&gt;alert(1)" in html  # her notes are escaped
    (name, (beneficiary_id, assertion), kwargs) = intake.calls[0]  # who asks comes from the session only
    assert (name, beneficiary_id, kwargs) == ("get_beneficiary", "b-1", {})
    assert verifier("intake").actor(assertion).to_dict() == {**HANANE, "roles": sorted(HANANE["roles"])}
    assert "جمعية وفاء للمرأة" in html  # the consent's recipient by name
    assert html.count('class="consent-revoke') == 1  # the revoked one has no button
    assert 'data-id="4" data-decision="distinct"' in html and 'data-decision="same"' in html
    # Irreversible steps are forms that post without JavaScript, each behind a required confirmation box.
    assert 'consent-revoke-form" method="post" action="/consents/c-1/revoke?lang=ar">' in html
    assert 'method="post" action="/duplicates/4?lang=ar"' in html
    assert html.count('name="confirm" value="true" required') == 2
    assert 'method="post" action="/beneficiaries/b-1/sessions?lang=ar"' in html  # a follow-up session
    # Her referrals with their timeline (who, when), what was shared and who read her record.
    referrals = html.split('id="her-referrals"')[1].split("</section>")[0]
    assert 'href="/referrals/r-2?lang=ar"' in referrals and "state-declined" in referrals
    assert "Fatima Zahra" in referrals and referrals.count('class="timeline-entry"') == 2
    assert 'id="disclosures"' in html and 'id="audit"' in html
    assert [call[0] for call in intake.calls] == ["get_beneficiary", "audit_trail", "list_disclosures"]
    assert 'href="/beneficiaries/b-0?lang=ar"' in html
    for form in ("consent-form", "refer-form"):
        assert f'id="{form}"' in html
    assert html.count('name="fields" value="notes"') == 2  # every shareable field, in both forms
    assert html.count('value="legal_orientation" selected') == 2  # both forms start on a need of her session


def test_the_beneficiary_page_of_another_association_is_refused_without_her_data(sessions):
    from tansiq.errors import Forbidden

    class Refusing:
        def get_beneficiary(self, beneficiary_id, actor):
            assert verifier("intake").actor(actor).association == "wafae-marrakech"
            raise Forbidden("this beneficiary belongs to another association")

    response = GatewayService.beneficiary_page(Gateway(intake_rpc=Refusing()),
                                               request("/beneficiaries/b-1?lang=fr", sessions.signed_in(NAIMA)),
                                               beneficiary_id="b-1")
    html = response.get_data(as_text=True)
    assert response.status_code == 403 and response.mimetype == "text/html"
    assert "accès à cette page." in html  # error.forbidden, in her language
    assert 'id="consent-form"' not in html and "Khadija" not in html


def test_an_erased_record_shows_no_forms(sessions):
    erased = {key: RECORD[key] for key in ("id", "association", "kind", "schooled", "city", "language",
                                           "registered_at", "registered_by")}
    gateway = record_gateway(get_beneficiary={**erased, "erased": True})
    html = GatewayService.beneficiary_page(gateway, request("/beneficiaries/b-1", sessions.signed_in(HANANE)),
                                           beneficiary_id="b-1").get_data(as_text=True)
    assert 'id="erased"' in html and 'id="refer-form"' not in html and 'id="session-form"' not in html
    assert [call[0] for call in gateway.intake_rpc.calls] == ["get_beneficiary"]  # no audit or referrals to show


def test_an_older_event_link_opens_the_events_own_page_without_asking_the_service(sessions):
    events = Stub()  # no answer: the redirect needs none
    signed_in = request("/events/e-7?lang=ar", sessions.signed_in(HANANE))
    response = GatewayService.event_page(Gateway(events_rpc=events), signed_in, event_id="e-7")
    assert response.status_code == 303 and response.headers["Location"] == "/calendar/events/e-7?lang=ar"
    hostile = request("/events/x?lang=<script>", sessions.signed_in(HANANE))
    response = GatewayService.event_page(Gateway(events_rpc=events), hostile, event_id="a?b#c")
    assert response.headers["Location"] == "/calendar/events/a%3Fb%23c"  # still that page, no other language
    assert events.calls == []


YOUSSEF = {"id": "s-safi-3", "association": "amal-safi", "roles": ["events_manager"], "language": "fr",
           "name": "Youssef Amrani"}


@pytest.mark.parametrize("page, values", [(GatewayService.beneficiary_page, {"beneficiary_id": "b-1"}),
                                          (GatewayService.referrals_page, {}), (GatewayService.intake_page, {}),
                                          (GatewayService.referral_page, {"referral_id": "r-1"})])
def test_an_events_manager_gets_no_case_page_and_no_service_is_asked(sessions, page, values):
    untouchable = Stub()  # any RPC would fail the test: the gateway refuses first
    gateway = Gateway(intake_rpc=untouchable, referrals_rpc=untouchable, directory=untouchable)
    response = page(gateway, request("/x?lang=fr", sessions.signed_in(YOUSSEF)), **values)
    assert response.status_code == 403 and response.mimetype == "text/html" and untouchable.calls == []


def test_navigation_follows_her_roles(sessions):
    inbox = Stub(inbox={"items": [], "next": None}, unread_count=0)
    nav = {}
    for name, staff in (("hanane", HANANE), ("youssef", YOUSSEF)):
        nav[name] = GatewayService.inbox_page(Gateway(notifications_rpc=inbox),
                                              request("/inbox", sessions.signed_in(staff))).get_data(as_text=True)
    assert 'id="nav-referrals"' in nav["hanane"] and 'id="nav-intake"' in nav["hanane"]
    assert 'id="nav-referrals"' not in nav["youssef"] and 'id="nav-intake"' not in nav["youssef"]
    assert 'href="/calendar' in nav["youssef"]


def test_every_inbox_link_with_a_page_gets_an_open_link(sessions):
    def item(number, link):
        return {"id": number, "kind": "k", "urgency": "normal", "subject": "s", "body": "", "link": link,
                "created_at": "2026-11-29T14:00:00+00:00", "read_at": None, "read": False}

    links = ["/beneficiaries/b-1", "/events/e-7", "/referrals/r-1", "/referrals", "/", "https://evil.example/x"]
    notifications = Stub(inbox={"items": [item(n, link) for n, link in enumerate(links)], "next": None},
                         unread_count=len(links))
    html = GatewayService.inbox_page(Gateway(notifications_rpc=notifications),
                                     request("/inbox", sessions.signed_in(HANANE))).get_data(as_text=True)
    for link in links[:4]:
        assert f'href="{link}"' in html
    assert 'href="https://evil.example/x"' not in html and html.count(">Ouvrir<") == 4


def test_the_directory_route_lists_active_services_for_signed_in_staff(sessions):
    from marshmallow import ValidationError

    directory = Stub(find_services=[
        {"id": "sv-1", "association": "wafae-marrakech", "category": "legal_orientation", "status": "active"},
        {"id": "sv-2", "association": "dar-noor-casablanca", "category": "legal_orientation", "status": "paused"}])
    gateway = Gateway(directory=directory)
    token = sessions.signed_in(HANANE)
    response = GatewayService.directory_services(
        gateway, request("/api/directory/services?category=legal_orientation&city=Marrakech&lang=fr", token))
    assert [s["id"] for s in response.get_json()] == ["sv-1"]
    assert directory.calls == [("find_services", ("legal_orientation",), {"city": "Marrakech"})]
    with pytest.raises(ValidationError):
        GatewayService.directory_services(gateway, request("/api/directory/services?category=cooking", token))
    with pytest.raises(web.Unauthorized):
        GatewayService.directory_services(gateway, request("/api/directory/services?category=shelter"))
