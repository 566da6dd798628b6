"""The pages for changing one's password and, for admins, deactivating a colleague, in the OS Chromium:
the current password is required and every other session ends; a deactivation asks first and ends
her sessions at once; the pages are offered only to whom the role matrix opens them."""

import pytest
import requests

pytestmark = pytest.mark.browser

PASSWORD, NEW_PASSWORD = "tansiq-demo", "a-new-long-password"
NAIMA, SALMA, HANANE = "naima@wafae.example", "salma@wafae.example", "hanane@amal-safi.example"


@pytest.fixture(scope="module")
def network(gateway_network):
    return gateway_network  # directory and gateway (conftest.py)


def signed_in(browser, network, email, password=PASSWORD, lang=None):
    """A page of a fresh browser (its own cookies) signed in as `email`."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda message: errors.append(message.text)  # the strict CSP holds on these pages too
            if "Content Security Policy" in message.text else None)
    # Without `lang` the pages speak her own language (her staff preference); with it, that one (remembered).
    page.goto(f"{network.web}/login?next=/account" + (f"&lang={lang}" if lang else ""))
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("#login-form button[type=submit]")
    expect(page).to_have_url(f"{network.web}/account")
    page.wait_for_load_state("load")  # static/webapp.js (deferred) has bound the buttons
    page.errors = errors
    return page


def api_login(network, email, password):
    return requests.post(f"{network.web}/api/login", json={"email": email, "password": password}, timeout=30)


def test_changing_her_password_needs_the_current_one_and_ends_her_other_sessions(network, browser):
    from playwright.sync_api import expect

    here, elsewhere = signed_in(browser, network, NAIMA), signed_in(browser, network, NAIMA)
    expect(here.locator("#password-form")).to_be_visible()  # signed in on /account
    form = here.locator("#password-form")

    form.locator("input[name=current_password]").fill("not-my-password")
    form.locator("input[name=new_password]").fill(NEW_PASSWORD)
    form.locator("input[name=confirm_password]").fill(NEW_PASSWORD)
    form.locator("button[type=submit]").click()
    expect(form.locator(".error")).to_be_visible()  # refused: the wrong current password
    form.locator("input[name=current_password]").fill(PASSWORD)
    form.locator("input[name=confirm_password]").fill(NEW_PASSWORD + "-typo")
    form.locator("button[type=submit]").click()
    expect(form.locator(".error")).to_contain_text("مختلفتان")  # in her language (ar); nothing sent
    assert api_login(network, NAIMA, PASSWORD).ok  # nothing changed yet

    form.locator("input[name=confirm_password]").fill(NEW_PASSWORD)
    form.locator("button[type=submit]").click()
    expect(here.locator("#password-changed")).to_be_visible()
    here.goto(f"{network.web}/account")  # this browser goes on, with its new session
    expect(here).to_have_url(f"{network.web}/account")
    elsewhere.goto(f"{network.web}/account")  # the other one was signed out at once
    expect(elsewhere).to_have_url(f"{network.web}/login?next=%2Faccount")
    assert api_login(network, NAIMA, PASSWORD).status_code == 401
    assert api_login(network, NAIMA, NEW_PASSWORD).ok
    assert here.errors == [] and elsewhere.errors == []


def test_an_admin_deactivates_a_colleague_after_confirming_and_her_sessions_end(network, browser):
    from playwright.sync_api import expect

    colleague = signed_in(browser, network, NAIMA, NEW_PASSWORD if not api_login(network, NAIMA, PASSWORD).ok
                          else PASSWORD, lang="ar")
    expect(colleague.locator("#nav-staff")).to_have_count(0)  # a case worker manages no staff
    colleague.goto(f"{network.web}/staff")
    expect(colleague.locator("h1")).not_to_have_text("")
    assert colleague.locator("#staff-list").count() == 0  # refused: the error page, not the list

    admin = signed_in(browser, network, SALMA)
    admin.click("#nav-staff")
    rows = admin.locator("#staff-list tbody tr")
    expect(admin.locator("#staff-list tr[data-id=s-mrk-1]")).to_be_visible()
    assert admin.locator("#staff-list tr[data-id=s-safi-1]").count() == 0  # her association's staff only
    expect(admin.locator("#staff-list tr[data-id=s-mrk-2] button")).to_have_count(0)  # not herself
    count = rows.count()

    button = admin.locator("button.staff-deactivate[data-id=s-mrk-1]")
    admin.once("dialog", lambda dialog: dialog.dismiss())
    button.click()
    expect(rows).to_have_count(count)  # she said no: nothing happened
    colleague.goto(f"{network.web}/account")
    expect(colleague).to_have_url(f"{network.web}/account")

    messages = []
    admin.once("dialog", lambda dialog: (messages.append(dialog.message), dialog.accept()))
    button.click()
    expect(admin.locator("#staff-deactivated")).to_be_visible()
    expect(rows).to_have_count(count - 1)
    assert "Naima Ouali" in messages[0]
    colleague.goto(f"{network.web}/account")  # her session ended at once
    expect(colleague).to_have_url(f"{network.web}/login?next=%2Faccount")
    assert api_login(network, NAIMA, NEW_PASSWORD).status_code == 401
    assert admin.errors == [] and colleague.errors == []


def test_another_associations_admin_cannot_deactivate_through_the_api(network):
    hanane = requests.Session()
    login = hanane.post(f"{network.web}/api/login", json={"email": HANANE, "password": PASSWORD}, timeout=30)
    hanane.headers["X-CSRF-Token"] = login.headers["X-CSRF-Token"]
    refused = hanane.post(f"{network.web}/api/staff/s-mrk-2/deactivate", json={}, timeout=30)
    assert refused.status_code == 403  # not an admin at all; an admin elsewhere is refused by association too
    assert api_login(network, SALMA, PASSWORD).ok


def test_signing_out_in_the_browser_ends_the_session_on_the_server(network, browser):
    from playwright.sync_api import expect

    page = signed_in(browser, network, HANANE)
    [cookie] = [c for c in page.context.cookies() if c["name"] == "tansiq_session"]
    assert requests.get(f"{network.web}/api/me", cookies={"tansiq_session": cookie["value"]}, timeout=30).ok
    page.goto(f"{network.web}/inbox")  # no notifications service in this network: the error page ...
    expect(page.locator("main code")).to_have_text("internal_error")
    page.wait_for_load_state("load")
    page.click("#sign-out")  # ... whose sign-out button works too
    expect(page).to_have_url(f"{network.web}/login")
    replay = requests.get(f"{network.web}/api/me", cookies={"tansiq_session": cookie["value"]}, timeout=30)
    assert replay.status_code == 401  # a copy of the cookie taken before is worth nothing now
    assert page.errors == []
