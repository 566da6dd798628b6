"""The staff pages without the broker: sign-in redirects, buttons per referral state, Casablanca times,
and the pages rendered from service answers (the RPC proxies are stubbed: the edge of the unit)."""

from urllib.parse import quote

import pytest
from cryptography.fernet import Fernet
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from services.gateway import web
from services.gateway.api_webapp import actions_for, for_page, safe_next, when
from services.gateway.service import GatewayService

HANANE = {"id": "s-safi-2", "association": "amal-safi", "roles": ["case_worker", "coordinator"], "language": "fr",
          "name": "Hanane Benali"}


@pytest.fixture
def sessions():
    sessions = web.Sessions()
    sessions.fernet = Fernet(Fernet.generate_key())
    previous, web._active[0] = web._active[0], sessions
    yield sessions
    web._active[0] = previous


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

    def __init__(self, **proxies):
        self.__dict__.update(proxies)

    _association_names = GatewayService._association_names


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

    assert names("received", "sent") == ["acknowledge"]
    assert names("received", "received") == ["accept", "decline"]
    assert names("received", "accepted") == ["start"]
    assert names("received", "in_progress") == ["complete"]
    assert names("received", "declined") == []
    assert names("sent", "sent") == ["withdraw"]
    assert names("sent", "declined") == []
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
    notifications = Stub(inbox=[
        {"id": 7, "kind": "beneficiary.registered", "urgency": "urgent", "subject": "Nouvelle bénéficiaire",
         "body": "Ouvrez votre boîte.", "link": "/beneficiaries/b-1", "created_at": "2026-11-29T14:00:00+00:00",
         "read_at": None, "read": False},
        {"id": 3, "kind": "referral.accepted", "urgency": "normal", "subject": "Orientation acceptée <b>",
         "body": "", "link": "/referrals/r-1", "created_at": "2026-11-28T14:00:00+00:00",
         "read_at": "2026-11-28T15:00:00+00:00", "read": True}], unread_count=1)
    response = GatewayService.inbox_page(Gateway(notifications_rpc=notifications),
                                         request("/inbox?lang=ar", sessions.issue(HANANE)))
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert 'dir="rtl"' in html and 'data-unread="1"' in html
    assert html.count('class="mark-read"') == 1 and 'href="/referrals/r-1"' in html
    assert "&lt;b&gt;" in html  # escaped
    assert {call[1][0] for call in notifications.calls} == {"s-safi-2"}  # her id, from the session only


def test_a_refused_page_is_an_html_page_not_json(sessions):
    from tansiq.errors import Forbidden

    class Refusing:
        def get_referral(self, referral_id, staff):
            raise Forbidden("not one of your association's referrals")

    response = GatewayService.referral_page(Gateway(referrals_rpc=Refusing()),
                                            request("/referrals/r-9?lang=en", sessions.issue(HANANE)),
                                            referral_id="r-9")
    assert response.status_code == 403 and response.mimetype == "text/html"
    assert "You do not have access to this page." in response.get_data(as_text=True)
