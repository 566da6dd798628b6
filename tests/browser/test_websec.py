"""Attacks on the running gateway, from the OS Chromium and over plain HTTP.

A page served on another port of 127.0.0.1 (same site, other origin: the session cookie
goes along) tries a form POST, a fetch and an iframe as the signed-in staff member; the
login page is given a `next` that browsers read as another host. All must fail. Sessions
end at once on sign-out and on deactivation; wrong passwords lock the account.
"""

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from harness import eventually, free_port

pytestmark = pytest.mark.browser

EMAIL, PASSWORD = "hanane@amal-safi.example", "tansiq-demo"
NEW_PASSWORD = "chosen-by-the-attacker"
SECURITY_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options")


@pytest.fixture(scope="module")
def network(gateway_network):
    return gateway_network  # directory and gateway (conftest.py)


@contextmanager
def attacker_site(html):
    """`html` served at http://127.0.0.1:<another port>/ (the attacker's page)."""
    class Page(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def sign_in(page, base, next_path="/intake"):
    from playwright.sync_api import expect

    page.goto(f"{base}/login?next={next_path}")
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", PASSWORD)
    page.click("#login-form button[type=submit]")
    expect(page).to_have_url(f"{base}{next_path}")
    expect(page.locator("#intake-form")).to_be_visible()


def test_without_javascript_the_sign_in_form_posts_and_the_password_never_reaches_a_url(network, browser):
    """A phone with scripts off: the form itself posts to /login, she lands on her page, then signs out."""
    from playwright.sync_api import expect

    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    urls = []
    page.on("request", lambda request: urls.append(request.url))
    page.goto(f"{network.web}/login?next=%2Finbox&lang=ar")
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", "not-her-password")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#login-form .error")).to_be_visible()  # refused, in Arabic, the form again
    expect(page.locator("html")).to_have_attribute("dir", "rtl")
    page.fill("input[name=password]", PASSWORD)
    page.click("#login-form button[type=submit]")
    expect(page).to_have_url(f"{network.web}/inbox")
    expect(page.locator("html")).to_have_attribute("lang", "ar")  # the language she chose stays
    page.click("#sign-out")
    expect(page).to_have_url(f"{network.web}/login")
    expect(page.locator("html")).to_have_attribute("lang", "ar")  # ... even signed out
    assert urls and not any(PASSWORD in url or "not-her-password" in url for url in urls)
    context.close()


def test_with_javascript_an_api_field_error_is_shown_translated_at_its_field(network, page):
    """webapp.js sends the sign-in to /api/login; its 422 field code appears at the field, in Arabic."""
    from playwright.sync_api import expect

    page.goto(f"{network.web}/login?lang=ar")
    page.fill("input[name=email]", "not-an-email")
    page.fill("input[name=password]", "whatever-it-is")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#email-error")).to_have_text("عنوان بريد إلكتروني غير صالح.")
    expect(page.locator("input[name=email]")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#login-form .error")).to_have_text("يرجى تصحيح الحقول المشار إليها.")  # not English


def test_a_next_that_browsers_read_as_another_host_lands_on_our_home_page(network, page):
    from playwright.sync_api import expect

    page.goto(f"{network.web}/login?next=%2F%09%2Fevil.example%2F")
    page.fill("input[name=email]", EMAIL)
    page.fill("input[name=password]", PASSWORD)
    page.click("#login-form button[type=submit]")
    expect(page).to_have_url(f"{network.web}/")


def test_another_origin_cannot_act_or_frame_as_the_signed_in_user(network, browser):
    from playwright.sync_api import expect

    context = browser.new_context()
    page = context.new_page()
    sign_in(page, network.web)
    target = f"{network.web}/api/password"
    body = json.dumps({"current_password": PASSWORD, "new_password": NEW_PASSWORD})
    attack = f"""<!doctype html><html><body>
<form id="f" method="POST" action="{target}" enctype="text/plain" target="sink">
  <input name='{body[:-2]}' value='"}}'></form>
<iframe name="sink"></iframe>
<iframe id="framed" src="{network.web}/intake"></iframe>
<script>
  window.results = {{}};
  document.getElementById("framed").addEventListener("load", function () {{ window.results.framed = true; }});
  fetch("{target}", {{method: "POST", mode: "no-cors", credentials: "include",
                      headers: {{"Content-Type": "text/plain"}}, body: {body!r}}})
    .then(function () {{ window.results.simple = "sent"; }}, function () {{ window.results.simple = "failed"; }});
  fetch("{target}", {{method: "POST", credentials: "include",
                      headers: {{"Content-Type": "application/json"}}, body: {body!r}}})
    .then(function (r) {{ window.results.json = r.status; }}, function () {{ window.results.json = "blocked"; }});
  document.getElementById("f").submit();
</script></body></html>"""
    with attacker_site(attack) as evil:
        responses = []
        page.on("response", lambda response: responses.append(response) if response.url == target else None)
        page.goto(evil)
        page.wait_for_function("window.results.simple && window.results.json && window.results.framed")
        results = page.evaluate("window.results")
        # Framing refused: the frame holds the browser's error page, none of ours. Without the headers it
        # shows our sign-in form (a clickjacking target too), so no form at all is the test.
        framed = page.query_selector("#framed").content_frame()
        assert framed.locator("form").count() == 0 and framed.locator("input").count() == 0, framed.url
    assert results["json"] == "blocked"  # the browser's preflight: no CORS for other origins
    statuses = {response.status for response in responses}
    assert statuses and statuses <= {403, 415}, statuses  # the simple ones reached us and were refused
    # Her password is unchanged and her session still works.
    assert requests.post(f"{network.web}/api/login", json={"email": EMAIL, "password": PASSWORD}, timeout=30).ok
    page.goto(f"{network.web}/intake")
    expect(page.locator("form").first).to_be_visible()
    context.close()


def test_pages_and_apis_carry_the_security_headers(network):
    session = network.login(EMAIL)
    directory = "/api/directory/services?category=legal_orientation"
    for path in ("/login", "/intake", "/api/me", directory, "/calendar", "/"):
        answer = session.get(f"{network.web}{path}", timeout=30, allow_redirects=False)
        assert answer.status_code == 200, path
        for header in SECURITY_HEADERS:
            assert header in answer.headers, (path, header)
        assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
        assert "unsafe-inline" not in answer.headers["Content-Security-Policy"].split("style-src")[0]
    for path in ("/intake", "/api/me", "/login"):
        assert session.get(f"{network.web}{path}", timeout=30).headers["Cache-Control"] == "no-store", path


def test_sign_out_and_deactivation_end_the_session_at_once(network):
    session = network.login(EMAIL)
    stolen = session.cookies.get("tansiq_session")
    assert session.post(f"{network.web}/api/logout", timeout=30).ok
    replay = requests.get(f"{network.web}/api/me", cookies={"tansiq_session": stolen}, timeout=30)
    assert replay.status_code == 401
    login = requests.post(f"{network.web}/api/login", json={"email": EMAIL, "password": PASSWORD}, timeout=30)
    assert "token" not in login.json() and login.json()["staff"]["email"] == EMAIL
    youssef = network.login("youssef@amal-safi.example")
    assert youssef.get(f"{network.web}/api/me", timeout=30).ok
    with network.rpc() as cluster:
        cluster.directory.deactivate_staff("s-safi-3")
    # Deactivated at the directory itself (not through this gateway): the change reaches the gateway's read
    # model through the directory's change feed, a moment later.
    eventually(lambda: youssef.get(f"{network.web}/api/me", timeout=30).status_code == 401,
               message="a deactivation made at the directory ends her session")
    again = requests.post(f"{network.web}/api/login", json={"email": "youssef@amal-safi.example",
                                                            "password": PASSWORD}, timeout=30)
    assert again.status_code == 401


def test_a_cookie_whose_session_is_over_or_was_never_opened_is_cleared_by_its_first_refusal(network):
    """A stale cookie (signed out elsewhere, or a session this network never opened) is dropped from the
    browser by the answer that refuses it: later requests come signed out, without waiting for the session
    to be announced. A live session's cookie and a program's bearer token are left alone."""
    ended = None
    for path, refused in (("/api/me", 401), ("/inbox", 303)):  # a page sends her to the sign-in instead
        for stale in ("signed out", "never opened"):
            browser = network.login(EMAIL)  # a cookie jar as a browser keeps it (domain, path)
            if stale == "signed out":  # with the same token, from a program: this browser still holds it
                ended = browser.cookies["tansiq_session"]
                assert requests.post(f"{network.web}/api/logout", headers={"Authorization": f"Bearer {ended}"},
                                     timeout=30).ok
            else:
                cookie = next(c for c in browser.cookies if c.name == "tansiq_session")
                browser.cookies.set("tansiq_session", "never-opened-" + "x" * 30, domain=cookie.domain, path="/")
            answer = browser.get(f"{network.web}{path}", allow_redirects=False, timeout=30)
            assert answer.status_code == refused, (path, stale, answer.status_code)
            assert "tansiq_session=;" in answer.headers.get("Set-Cookie", ""), (path, stale, answer.headers)
            assert "tansiq_session" not in browser.cookies, (path, stale)
    program = requests.get(f"{network.web}/api/me", headers={"Authorization": f"Bearer {ended}"}, timeout=30)
    assert program.status_code == 401 and "Set-Cookie" not in program.headers
    live = network.login(EMAIL)
    assert live.get(f"{network.web}/api/me", timeout=30).ok
    refused = live.get(f"{network.web}/staff", timeout=30)  # admins only: refused, and still signed in
    assert refused.status_code == 403 and "Set-Cookie" not in refused.headers and "tansiq_session" in live.cookies


def test_wrong_passwords_lock_the_account_and_say_for_how_long(network):
    email = "naima@wafae.example"
    for _ in range(6):
        assert requests.post(f"{network.web}/api/login", json={"email": email, "password": "guess"},
                             timeout=30).status_code == 401
    locked = requests.post(f"{network.web}/api/login", json={"email": email, "password": PASSWORD}, timeout=30)
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    assert locked.json()["error"]["code"] == "too_many_attempts"


def test_our_pages_run_under_the_policy_without_a_violation(network, browser):
    """The CSP is strict (no inline script): every page's own script and styles must still load."""
    from playwright.sync_api import expect

    context = browser.new_context()
    page = context.new_page()
    refused = []
    page.on("console", lambda message: refused.append(message.text)
            if "Content Security Policy" in message.text else None)
    page.goto(f"{network.web}/calendar?lang=ar")
    expect(page.locator(".fc")).to_be_visible()  # FullCalendar drew itself (its script ran)
    sign_in(page, network.web)
    page.goto(f"{network.web}/intake?lang=fr")
    expect(page.locator("#intake-form")).to_be_visible()
    page.click("#sign-out")  # static/webapp.js: a handler, not an inline onclick
    expect(page).to_have_url(f"{network.web}/login")
    assert refused == []
    context.close()
