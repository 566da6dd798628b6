"""Forms post without JavaScript: the sign-in form posts its fields in the body (never the URL), answers
with her page and the session cookie, or with the form again, its errors translated at the fields; the
sign-out form ends the session. Only routes declared `form=True` take a form body; signed-in forms carry
the session's CSRF token in a field."""

from urllib.parse import urlencode

import pytest
from gateway_sessions import directory_sessions
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from services.gateway import web
from services.gateway.routes import declared_routes
from services.gateway.service import GatewayService
from tansiq.errors import Forbidden

EMAIL, PASSWORD = "hanane@amal-safi.example", "a-long-test-password"
HANANE = {"id": "s-safi-2", "association": "amal-safi", "roles": ["case_worker"], "language": "ar",
          "name": "Hanane Benali"}
FORM = "application/x-www-form-urlencoded"


class Gateway:
    def __init__(self, sessions):
        self.sessions, self.directory_rpc = sessions, sessions.directory

    open_session, end_session = GatewayService.open_session, GatewayService.end_session


@pytest.fixture
def sessions(tmp_path):
    with directory_sessions(tmp_path) as sessions:
        sessions.add_staff(HANANE, email=EMAIL)
        yield sessions


def post(path, fields, token=None, headers=None):
    headers = {"Host": "127.0.0.1:8000", "Origin": "http://127.0.0.1:8000", **(headers or {})}
    if token:
        headers["Cookie"] = f"{web.SESSION_COOKIE}={token}"
    return Request(EnvironBuilder(path=path, method="POST", headers=headers, data=urlencode(fields, doseq=True),
                                  content_type=FORM, environ_base={"REMOTE_ADDR": "10.0.0.2"}).get_environ())


def test_the_sign_in_form_posts_to_the_server_never_into_the_url(sessions):
    html = GatewayService.login_page(None, Request(EnvironBuilder(path="/login?lang=fr").get_environ())).get_data(
        as_text=True)
    assert '<form id="login-form" class="stack" method="post" action="/login?lang=fr"' in html


def test_signing_in_without_script_opens_her_page_with_the_session_cookie(sessions):
    response = GatewayService.login_form(Gateway(sessions), post(
        "/login", {"email": EMAIL, "password": "a-long-test-password", "next": "/inbox"}))
    assert response.status_code == 303 and response.headers["Location"] == "/inbox"
    cookies = response.headers.getlist("Set-Cookie")
    token = next(c for c in cookies if c.startswith(web.SESSION_COOKIE)).split(";")[0].split("=", 1)[1]
    assert "HttpOnly" in next(c for c in cookies if c.startswith(web.SESSION_COOKIE))
    assert any(c.startswith("lang=ar") for c in cookies)  # her preference, remembered for the next pages
    assert web.current_staff(Request(EnvironBuilder(path="/inbox", headers={
        "Cookie": f"{web.SESSION_COOKIE}={token}"}).get_environ()))["id"] == HANANE["id"]


def test_a_refused_sign_in_shows_the_form_again_translated(sessions):
    wrong = GatewayService.login_form(Gateway(sessions), post(
        "/login?lang=ar", {"email": EMAIL, "password": "wrong-password", "next": "/inbox"}))
    html = wrong.get_data(as_text=True)
    assert wrong.status_code == 401
    assert not any(c.startswith(web.SESSION_COOKIE) for c in wrong.headers.getlist("Set-Cookie"))
    assert 'dir="rtl"' in html and "البريد الإلكتروني أو كلمة المرور غير صحيحة" in html
    assert "wrong-password" not in html and f'value="{EMAIL}"' in html  # her e-mail kept, never the password
    invalid = GatewayService.login_form(Gateway(sessions), post("/login?lang=fr", {"email": "not-an-email",
                                                                                   "password": ""}))
    page = invalid.get_data(as_text=True)
    assert invalid.status_code == 422
    assert 'id="email-error"' in page and "Adresse e-mail non valide." in page  # at the field, in her language
    assert 'aria-invalid="true" aria-describedby="password-error"' in page


def test_the_sign_out_form_ends_the_session_and_keeps_the_language(sessions):
    token = sessions.signed_in(HANANE)
    response = GatewayService.logout_form(Gateway(sessions), post("/logout", {}, token=token))
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert sessions.directory.session_staff(token) is None
    assert not any(c.startswith("lang=") for c in response.headers.getlist("Set-Cookie"))  # only the session goes


def test_only_form_routes_take_a_form_body():
    forms = {(d.method, d.url) for d in declared_routes(GatewayService) if d.form}
    calendar = {("POST", "/calendar/new"), *(("POST", f"/calendar/events/<string:event_id>/{action}") for action in (
        "edit", "cancel", "occurrences/cancel", "occurrences/move", "register"))}
    assert forms == {("POST", "/login"), ("POST", "/logout"), ("POST", "/inbox/<int:item_id>/read"),
                     ("POST", "/beneficiaries/<string:beneficiary_id>/sessions"),
                     ("POST", "/beneficiaries/<string:beneficiary_id>/erase"), ("POST", "/duplicates/<int:flag_id>"),
                     ("POST", "/consents/<string:consent_id>/revoke"), ("POST", "/intake"),
                     ("POST", "/beneficiaries/<string:beneficiary_id>/consents"),
                     ("POST", "/beneficiaries/<string:beneficiary_id>/referrals"),
                     ("POST", "/referrals/<string:referral_id>/<string:action>"), *calendar}
    assert web.refuse_cross_site(post("/api/login", {"email": EMAIL})).status_code == 415
    assert web.refuse_cross_site(post("/login", {"email": EMAIL}), form=True) is None
    other_site = post("/login", {"email": EMAIL}, headers={"Origin": "http://evil.example"})
    assert web.refuse_cross_site(other_site, form=True).status_code == 403


def test_a_signed_in_form_needs_the_csrf_token_in_the_form(sessions):
    token = sessions.signed_in(HANANE)
    csrf = sessions.directory.session_staff(token)["csrf_token"]
    with pytest.raises(Forbidden):
        web.current_staff(post("/some-form", {"x": "1"}, token=token))
    with pytest.raises(Forbidden):
        web.current_staff(post("/some-form", {"csrf_token": "guess"}, token=token))
    assert web.current_staff(post("/some-form", {"csrf_token": csrf}, token=token))["id"] == HANANE["id"]


def test_marking_an_item_read_without_script_needs_the_form_token(sessions):
    from actors import SIGNER, verifier  # tests/actors.py

    class Notifications:
        calls = []

        def mark_read(self, actor, item_id):
            self.calls.append((verifier("notifications").actor(actor).id, item_id))

    gateway = Gateway(sessions)
    gateway.identity, gateway.notifications_rpc = SIGNER, Notifications()
    token = sessions.signed_in(HANANE)
    refused = GatewayService.inbox_read_form(gateway, post("/inbox/7/read", {}, token=token), item_id=7)
    assert refused.status_code == 403 and refused.mimetype == "text/html" and Notifications.calls == []
    csrf = sessions.directory.session_staff(token)["csrf_token"]
    done = GatewayService.inbox_read_form(gateway, post("/inbox/7/read", {"csrf_token": csrf}, token=token),
                                          item_id=7)
    assert done.status_code == 303 and done.headers["Location"] == "/inbox#item-7"
    assert Notifications.calls == [(HANANE["id"], 7)]  # her own item: the id comes from her session
