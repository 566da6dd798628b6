"""Sessions that end and web hardening, without the broker: the directory's real sign-in rules on
SQLite (time given, never waited for), the gateway's routes and refusals on werkzeug requests."""

import json
import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from actors import signed, verifier  # tests/actors.py
from gateway_sessions import PASSWORD, cheap_password_hashing, directory_sessions
from nameko.testing.services import worker_factory
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response

from services.directory import domain, signin
from services.directory.models import Base as DirectoryBase
from services.events.models import Base as EventsBase
from services.events.service import EventsService
from services.gateway import web
from services.gateway.api_webapp import safe_next
from services.gateway.service import GatewayService
from tansiq import config as tansiq_config
from tansiq import i18n
from tansiq.crypto import adopt_key_from_data_folder, load_master_key
from tansiq.db import Sessions as Units
from tansiq.db import make_engine
from tansiq.envelope import utcnow
from tansiq.errors import DomainError, Forbidden
from tansiq.messaging.store import messaging_metadata

HANANE = {"id": "s-safi-2", "association": "amal-safi", "roles": ["case_worker", "coordinator"], "language": "fr",
          "name": "Hanane Benali"}
SALMA = {"id": "s-safi-9", "association": "amal-safi", "roles": ["admin"], "language": "fr", "name": "Salma"}
EMAIL = "s-safi-2@test.example"
WRONG = "not-her-password"


# --- the directory's rules, at chosen times ------------------------------------------------------

@pytest.fixture(autouse=True)
def _cheap_hashes():
    with cheap_password_hashing():
        yield


@pytest.fixture
def directory(tmp_path):
    """(units of work on a directory database with Hanane in it, the time she signs in)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'directory.sqlite3'}")
    DirectoryBase.metadata.create_all(engine)
    messaging_metadata.create_all(engine)
    units = Units(engine)
    with units.session() as session:
        domain.upsert_association(session, {"slug": "amal-safi", "name_ar": "أمل", "name_fr": "Amal", "city": "Safi"})
        domain.upsert_staff(session, {"id": HANANE["id"], "association_slug": "amal-safi", "name": "Hanane",
                                      "email": EMAIL, "roles": HANANE["roles"]}, password=PASSWORD)
    yield units, utcnow()
    engine.dispose()


def sign_in(units, now, password=PASSWORD, address="10.0.0.1", email=EMAIL):
    with units.session() as session:
        opened = signin.sign_in(session, now, email, password, address)
        return opened and opened["token"]


def live(units, now, token):
    with units.session() as session:
        return signin.current(session, now, token) is not None


def test_sign_out_ends_the_session_at_once(directory):
    units, now = directory
    token = sign_in(units, now)
    assert live(units, now, token)
    with units.session() as session:
        signin.sign_out(session, now, token)
    assert not live(units, now, token)
    assert not live(units, now, "a-made-up-token") and not live(units, now, None)


def test_idle_and_absolute_timeouts(directory):
    units, now = directory
    token = sign_in(units, now)
    assert not live(units, now + signin.IDLE + timedelta(seconds=1), token)  # forgotten on a shared computer
    token = sign_in(units, now)
    moment = now
    while moment + timedelta(minutes=20) < now + signin.ABSOLUTE:  # used all day long: each request keeps it
        moment += timedelta(minutes=20)
        assert live(units, moment, token)
    assert not live(units, now + signin.ABSOLUTE + timedelta(minutes=1), token)


def test_deactivation_ends_every_session_at_once_and_sign_in(directory):
    units, now = directory
    first, second = sign_in(units, now), sign_in(units, now, address="10.0.0.2")
    with units.session() as session:
        signin.deactivate(session, now, domain.get_staff(session, HANANE["id"]))
    assert not live(units, now, first) and not live(units, now, second)
    assert sign_in(units, now) is None
    # The other way to deactivate (the directory's upsert, as seeding does) ends them too.
    with units.session() as session:
        domain.upsert_staff(session, {"id": HANANE["id"], "association_slug": "amal-safi", "name": "Hanane",
                                      "email": EMAIL, "roles": HANANE["roles"], "active": True})
    token = sign_in(units, now)
    with units.session() as session:
        domain.upsert_staff(session, {"id": HANANE["id"], "association_slug": "amal-safi", "name": "Hanane",
                                      "email": EMAIL, "roles": HANANE["roles"], "active": False})
    assert not live(units, now, token)


def test_a_password_change_ends_her_other_sessions(directory):
    units, now = directory
    here, stolen = sign_in(units, now), sign_in(units, now, address="10.6.6.6")
    with units.session() as session:
        with pytest.raises(DomainError) as wrong:
            signin.change_password(session, now, here, WRONG, "a-new-long-password")
    assert wrong.value.code == "wrong_password"
    with units.session() as session:
        renewed = signin.change_password(session, now, here, PASSWORD, "a-new-long-password")["token"]
    assert not live(units, now, stolen) and not live(units, now, here)
    assert live(units, now, renewed)
    assert sign_in(units, now) is None
    assert sign_in(units, now, password="a-new-long-password")


def locked(units, now, **kwargs):
    with pytest.raises(DomainError) as caught:
        sign_in(units, now, **kwargs)
    assert caught.value.code == "too_many_attempts"
    return caught.value.details["retry_after"]


def test_five_wrong_passwords_then_a_lock_that_doubles_and_ends(directory):
    units, now = directory
    for _ in range(signin.ACCOUNT_FREE_FAILURES):
        assert sign_in(units, now, password=WRONG) is None
    assert sign_in(units, now, password=WRONG) is None  # the sixth failure locks
    assert locked(units, now) == 61  # even the right password waits: the lock says how long
    later = now + timedelta(seconds=61)
    assert sign_in(units, later, password=WRONG) is None  # still wrong: twice as long
    assert locked(units, later) == 121
    latest = later
    for _ in range(6):  # ... but never more than 15 minutes
        latest += signin.LONGEST_LOCK
        sign_in(units, latest, password=WRONG)
    assert locked(units, latest) == int(signin.LONGEST_LOCK.total_seconds()) + 1
    assert sign_in(units, latest + signin.LONGEST_LOCK + timedelta(seconds=1))  # it ends by itself
    assert sign_in(units, latest + signin.LONGEST_LOCK, password=WRONG) is None  # and success reset the count
    assert sign_in(units, latest + signin.LONGEST_LOCK + timedelta(seconds=2))


def test_one_address_guessing_many_accounts_is_throttled_others_are_not(directory):
    units, now = directory
    for number in range(signin.ADDRESS_FREE_FAILURES + 1):
        assert sign_in(units, now, password=WRONG, email=f"guess-{number}@test.example", address="10.6.6.6") is None
    assert locked(units, now, address="10.6.6.6") == 61  # her right password, from the guessing address
    assert sign_in(units, now, address="10.0.0.1")  # from her own address she signs in


def test_only_a_hash_of_the_token_is_stored(directory):
    units, now = directory
    token = sign_in(units, now)
    folder = Path(units.engine.url.database).parent
    assert not any(token.encode() in path.read_bytes() for path in folder.glob("directory.sqlite3*"))
    assert any(signin.token_hash(token).encode() in path.read_bytes() for path in folder.glob("directory.sqlite3*"))


# --- the gateway: login, cookies, CSRF, headers ----------------------------------------------------

@pytest.fixture
def sessions(tmp_path):
    with directory_sessions(tmp_path) as sessions:
        sessions.add_staff(HANANE, email=EMAIL)
        yield sessions


class Gateway:
    """The attributes the session routes use."""

    def __init__(self, sessions):
        self.sessions, self.directory_rpc = sessions, sessions.directory
        self.directory = sessions.model()  # the gateway's read model of the directory (tansiq.readmodel)

    _signed_in, open_session, end_session = (GatewayService._signed_in, GatewayService.open_session,
                                             GatewayService.end_session)


def request(path="/", method="GET", body=None, token=None, headers=None, content_type=None):
    headers = dict(headers or {})
    if token:
        headers["Cookie"] = f"{web.SESSION_COOKIE}={token}"
    data = json.dumps(body) if body is not None else None
    if data is not None and content_type is None:
        content_type = "application/json"
    return Request(EnvironBuilder(path=path, method=method, headers=headers, data=data,
                                  content_type=content_type, environ_base={"REMOTE_ADDR": "10.0.0.1"}).get_environ())


def login(sessions, password=PASSWORD):
    credentials = {"email": EMAIL, "password": password}
    return GatewayService.login(Gateway(sessions), request("/api/login", "POST", credentials))


def token_of(response):
    cookie = response.headers["Set-Cookie"]
    return cookie.split(";")[0].split("=", 1)[1]


def test_login_answers_her_profile_only_and_a_private_cookie(sessions):
    response = login(sessions)
    body = json.loads(response.get_data(as_text=True))
    assert set(body) == {"staff"} and body["staff"]["id"] == HANANE["id"]
    token = token_of(response)
    assert token not in response.get_data(as_text=True)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie  # http://127.0.0.1
    assert response.headers[web.CSRF_HEADER]
    sessions.secure_cookies = True
    assert "Secure" in login(sessions).headers["Set-Cookie"]


def test_secure_cookies_follow_the_base_url_unless_told():
    assert web.secure_cookies({"WEB_BASE_URL": "https://tansiq.example.ma"}) is True
    assert web.secure_cookies({"WEB_BASE_URL": "http://127.0.0.1:8000"}) is False
    assert web.secure_cookies({"WEB_BASE_URL": "http://127.0.0.1:8000", "SECURE_COOKIES": "true"}) is True
    assert web.secure_cookies({"WEB_BASE_URL": "https://x.example", "SECURE_COOKIES": "false"}) is False
    assert "SECURE_COOKIES" in tansiq_config.load("gateway", environ={})


def test_logout_and_deactivation_refuse_the_very_next_request(sessions):
    token = token_of(login(sessions))
    assert GatewayService.me(Gateway(sessions), request("/api/me", token=token)).status_code == 200
    GatewayService.logout(Gateway(sessions), request("/api/logout", "POST", token=token))
    with pytest.raises(web.Unauthorized):
        GatewayService.me(Gateway(sessions), request("/api/me", token=token))
    token = token_of(login(sessions))
    sessions.directory.deactivate_staff(HANANE["id"])
    with pytest.raises(web.Unauthorized):
        GatewayService.me(Gateway(sessions), request("/api/me", token=token))


def test_only_an_admin_of_her_association_deactivates(sessions):
    hanane = token_of(login(sessions))
    salma = sessions.signed_in(SALMA)
    csrf = {web.CSRF_HEADER: sessions.directory.session_staff(hanane)["csrf_token"]}
    with pytest.raises(Forbidden):
        GatewayService.deactivate_staff(Gateway(sessions), request("/x", "POST", token=hanane, headers=csrf),
                                        staff_id=SALMA["id"])
    csrf = {web.CSRF_HEADER: sessions.directory.session_staff(salma)["csrf_token"]}
    GatewayService.deactivate_staff(Gateway(sessions), request("/x", "POST", token=salma, headers=csrf),
                                    staff_id=HANANE["id"])
    assert sessions.directory.session_staff(hanane) is None


def test_a_password_change_keeps_this_browser_and_ends_the_others(sessions):
    here, elsewhere = login(sessions), login(sessions)
    token = token_of(here)
    body = {"current_password": PASSWORD, "new_password": "another-long-password"}
    changed = GatewayService.change_password(Gateway(sessions), request(
        "/api/password", "POST", body, token=token, headers={web.CSRF_HEADER: here.headers[web.CSRF_HEADER]}))
    assert "token" not in json.loads(changed.get_data(as_text=True))
    assert sessions.directory.session_staff(token_of(changed)) is not None
    # This gateway goes on with the new session, though the directory's feed announced it (and the end of
    # the others) before the answer was handled: what a busy gateway sees (tests/gateway_sessions.py feeds
    # every committed change before the gateway looks at its model).
    assert GatewayService.me(Gateway(sessions), request("/api/me", token=token_of(changed))).status_code == 200
    for ended in (token, token_of(elsewhere)):
        with pytest.raises(web.Unauthorized):
            GatewayService.me(Gateway(sessions), request("/api/me", token=ended))
    assert sessions.directory.session_staff(token_of(elsewhere)) is None
    assert sessions.directory.session_staff(token) is None


def test_too_many_wrong_passwords_answer_429_with_retry_after(sessions):
    for _ in range(signin.ACCOUNT_FREE_FAILURES + 1):
        with pytest.raises(web.Unauthorized):
            login(sessions, password=WRONG)
    with pytest.raises(DomainError) as caught:
        login(sessions)
    answer = web.response_for(caught.value)
    assert answer.status_code == 429 and int(answer.headers["Retry-After"]) > 0
    assert json.loads(answer.get_data(as_text=True))["error"]["code"] == "too_many_attempts"


def test_a_change_signed_in_by_cookie_needs_the_csrf_token(sessions):
    response = login(sessions)
    token, csrf = token_of(response), response.headers[web.CSRF_HEADER]
    with pytest.raises(Forbidden) as caught:
        web.current_staff(request("/api/inbox/1/read", "POST", token=token))
    assert caught.value.code == "csrf_failed"
    with pytest.raises(Forbidden):
        web.current_staff(request("/api/inbox/1/read", "POST", token=token, headers={web.CSRF_HEADER: "guess"}))
    assert web.current_staff(request("/x", "POST", token=token, headers={web.CSRF_HEADER: csrf}))["id"] == HANANE["id"]
    assert web.current_staff(request("/x", token=token))["id"] == HANANE["id"]  # reading needs no token


SAME = {"Host": "127.0.0.1:8000"}


@pytest.mark.parametrize("headers, content_type, body, status", [
    ({"Origin": "http://127.0.0.1:9999"}, None, {"a": 1}, 403),      # another port is another site
    ({"Origin": "null"}, None, {"a": 1}, 403),                       # sandboxed frame, file://
    ({"Origin": "null", "Sec-Fetch-Site": "cross-site"}, None, {"a": 1}, 403),  # ... as a browser says it
    ({"Origin": "null", "Sec-Fetch-Site": "same-origin"}, None, {"a": 1}, None),  # our form, no-referrer
    ({"Origin": "http://evil.example"}, None, None, 403),
    ({"Sec-Fetch-Site": "same-site"}, None, {"a": 1}, 403),          # no Origin but the browser says whence
    ({"Origin": "http://127.0.0.1:8000"}, "text/plain", {"a": 1}, 415),  # what a form can send
    ({"Origin": "http://127.0.0.1:8000"}, "application/x-www-form-urlencoded", {"a": 1}, 415),
    ({}, "multipart/form-data; boundary=x", {"a": 1}, 415),
    ({"Origin": "http://127.0.0.1:8000"}, None, {"a": 1}, None),     # our own page
    ({}, None, {"a": 1}, None),                                      # a program (no Origin)
    ({}, None, None, None),                                          # a POST without a body
    ({}, "text/plain", None, None),                                  # ... as eventlet's server presents it
])
def test_changes_come_from_our_pages_as_json(headers, content_type, body, status):
    refused = web.refuse_cross_site(request("/api/referrals", "POST", body, headers={**SAME, **headers},
                                            content_type=content_type))
    assert (refused and refused.status_code) == status


def test_reading_is_never_refused_for_its_origin():
    assert web.refuse_cross_site(request("/api/me", headers={**SAME, "Origin": "http://evil.example"})) is None


def test_every_answer_carries_the_security_headers():
    answer = web.with_security_headers(Response("{}"))
    csp = answer.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline' " not in csp.split(
        "style-src")[0]
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["Cache-Control"] == "no-store"
    static = web.with_security_headers(Response("x", headers={"Cache-Control": "public, max-age=300"}))
    assert static.headers["Cache-Control"] == "public, max-age=300"


def test_no_template_has_inline_script_or_handlers():
    import re

    for template in (web.HERE / "templates").glob("*.html"):
        html = template.read_text(encoding="utf-8")
        assert not re.search(r"\son[a-z]+\s*=", html), template.name
        for tag in re.findall(r"<script[^>]*>", html):
            assert "src=" in tag or 'type="application/json"' in tag, (template.name, tag)


# --- next, lang -----------------------------------------------------------------------------------

@pytest.mark.parametrize("target", [
    "/\t/evil.example/", "/\n/evil.example", "//evil.example", "/\\evil.example", "\\\\evil.example",
    "https://evil.example/", "javascript:alert(1)", "/\x00/evil", "", None, "evil.example",
])
def test_next_refuses_anything_that_leaves_the_site(target):
    assert safe_next(target) == "/"


def test_next_keeps_our_own_paths():
    assert safe_next("/inbox?lang=ar") == "/inbox?lang=ar"
    assert safe_next("/beneficiaries/b-1") == "/beneficiaries/b-1"


def test_the_login_page_with_a_tab_trick_goes_home():
    html = GatewayService.login_page(None, request("/login?next=%2F%09%2Fevil.example%2F")).get_data(as_text=True)
    assert 'data-next="/"' in html and 'data-next="/\t' not in html


def test_lang_is_one_of_three_and_never_names_a_file(monkeypatch):
    opened = []
    real = i18n.Path.open

    def spy(path, *args, **kwargs):
        opened.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(i18n.Path, "open", spy)
    i18n.translations.cache_clear()
    web._environments.clear()
    for lang in ("../../x", "../i18n/fr", "/etc/passwd", "ar/../en"):
        html = GatewayService.login_page(None, request(f"/login?lang={lang}")).get_data(as_text=True)
        assert '<html lang="fr"' in html or '<html lang="en"' in html
        with pytest.raises(ValueError):
            i18n.translations(lang)
        with pytest.raises(ValueError):
            i18n.po_path(lang)
    assert opened and all(path.endswith(("/fr/LC_MESSAGES/tansiq.po", "/en/LC_MESSAGES/tansiq.po",
                                         "/ar/LC_MESSAGES/tansiq.po")) for path in opened)
    assert '<html lang="ar"' in GatewayService.login_page(None, request("/login?lang=ar")).get_data(as_text=True)


# --- files and keys -------------------------------------------------------------------------------

def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_sqlite_files_are_private_even_when_they_existed(tmp_path):
    from sqlalchemy import text

    path = tmp_path / "data" / "x.sqlite3"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(text("create table t (a)"))
        connection.execute(text("insert into t values (1)"))
        assert mode(path) == 0o600 and mode(f"{path}-wal") == 0o600
    engine.dispose()
    assert mode(path.parent) == 0o700
    os.chmod(path, 0o644)  # made by an older version
    make_engine(f"sqlite:///{path}").dispose()
    assert mode(path) == 0o600


def test_keys_live_apart_from_the_databases(tmp_path, monkeypatch):
    monkeypatch.setenv("TANSIQ_VAR", str(tmp_path))
    monkeypatch.delenv("TANSIQ_KEYS_DIR", raising=False)
    monkeypatch.delenv("TANSIQ_DATA_KEY_FILE", raising=False)
    monkeypatch.delenv("TANSIQ_REFERRALS_DATA_KEY_FILE", raising=False)
    for service in ("intake", "referrals"):
        config = tansiq_config.load(service, environ={"TANSIQ_VAR": str(tmp_path)})
        key, database = config["DATA_KEY_FILE"], config["DB_URI"].split("///")[1]
        assert os.path.dirname(key) == str(tmp_path / "keys") != os.path.dirname(database)
    key = tmp_path / "keys" / "intake-master.key"
    load_master_key(key)
    assert mode(key) == 0o600 and mode(key.parent) == 0o700
    # A key left beside the databases by an older version is moved, not replaced by a new one.
    old = tmp_path / "referrals-master.key"
    old.write_bytes(key.read_bytes())
    adopt_key_from_data_folder(tmp_path / "keys" / "referrals-master.key")
    assert not old.exists() and load_master_key(tmp_path / "keys" / "referrals-master.key") == load_master_key(key)


# --- event registrations ----------------------------------------------------------------------------

class Associations:
    def list_associations(self):
        return [{"slug": "amal-safi"}]

    def slugs(self, integration=None):
        return set() if integration else {"amal-safi"}


def test_a_registration_is_recorded_under_the_signed_in_staff_not_the_one_sent(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'events.sqlite3'}")
    EventsBase.metadata.create_all(engine)
    messaging_metadata.create_all(engine)
    events = worker_factory(EventsService, db=Units(engine), directory=Associations(),
                            config={"REMINDER_HORIZON_HOURS": 48}, identity=verifier("events"))
    event = events.create_event({"title": "Formation", "kind": "training", "organiser": "amal-safi", "city": "Safi",
                                 "start": "2027-02-20T10:00", "end": "2027-02-20T12:00", "status": "published",
                                 "visibility": "network"}, actor=signed(HANANE, "events"))["event"]
    registered = events.register(event["id"], {"association": "amal-safi", "name": "Hanane",
                                               "staff_id": "s-someone-else"}, actor=signed(HANANE, "events"))
    assert registered["staff_id"] == HANANE["id"]
    engine.dispose()
