"""Her case with JavaScript turned off in the OS Chromium, against the real network of services.

Fatima registers a woman from the intake form (refused at the field first, in Arabic, what she typed kept),
decides the possible duplicate her registration flagged, records her consent (refused at the field first, in
French) and refers her, all by plain HTML forms; the same form posted twice makes one record. Then the
referral's end: the recipient declines, the sender closes it without re-routing (after confirming). Then an
admin erases her from her record page: her record answers gone, the search no longer finds her, the
recipient's referral no longer shows her name, and a case worker is neither offered the erasure nor let
through when she posts its form anyway.
"""

import random
import re
import uuid
from urllib.parse import urlencode

import pytest
from harness import add_staff, eventually
from test_exactly_once_page import beneficiaries  # the intake database's ids

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
FORBIDDEN = "<code>forbidden</code>"  # the error page of a refused role (not csrf_failed: a stale token)


@pytest.fixture
def no_script(browser):
    """no_script(locale) -> a page in its own context (own cookies) with JavaScript disabled."""
    contexts = []

    def open_page(locale="fr-FR"):
        context = browser.new_context(viewport=PHONE, locale=locale, java_script_enabled=False)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


def sign_in(page, base, path, email):
    """The sign-in form posts without JavaScript too; she lands on the page she asked for."""
    from playwright.sync_api import expect

    page.goto(f"{base}{path}")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", "tansiq-demo")
    page.click("#login-form button[type=submit]")
    expect(page).to_have_url(f"{base}{path}")


def posted_fields(form):
    """[(name, value)] of a form as the browser posts it now: its hidden controls, its ticked boxes."""
    fields = []
    for element in form.locator("input[name], select[name], textarea[name]").element_handles():
        kind = (element.get_attribute("type") or "").lower()
        if kind in ("checkbox", "radio") and not element.is_checked():
            continue
        fields.append((element.get_attribute("name"), element.input_value()))
    return fields


def test_intake_duplicate_consent_and_referral_without_javascript(network, no_script):
    from playwright.sync_api import expect

    base = network.web
    digits = f"{random.randrange(10**7, 10**8)}"
    earlier = network.login("fatima@amal-safi.example").post(f"{base}/api/beneficiaries", json={
        "first_name": "Houda", "last_name": "Kabbaj", "phone": f"06{digits}", "needs": ["shelter"]}, timeout=30)
    assert earlier.status_code == 201, earlier.text

    fatima = no_script("ar-MA")
    sign_in(fatima, base, "/intake?lang=ar", "fatima@amal-safi.example")
    form = fatima.locator("#intake-form")
    form.locator("input[name=phone]").fill(f"06 {digits}")
    form.locator("input[name=needs][value=legal_orientation]").check()
    form.locator("textarea[name=notes]").fill("جاءت ليلاً")
    before = beneficiaries(network)
    form.locator("button[type=submit]").click()  # no name: refused at the field, in Arabic
    expect(fatima.locator("#first_name-error")).to_be_visible()
    expect(fatima.locator("#first_name-error")).to_have_text(re.compile(r"\S"))
    assert re.search(r"[\u0600-\u06ff]", fatima.locator("#first_name-error").inner_text())
    expect(form.locator("input[name=phone]")).to_have_value(f"06 {digits}")  # what she typed is kept
    expect(form.locator("input[name=needs][value=legal_orientation]")).to_be_checked()
    expect(form.locator("textarea[name=notes]")).to_have_value("جاءت ليلاً")
    assert beneficiaries(network) == before

    # The same form posted twice (a double tap, a reload of the post): one record.
    form.locator("input[name=first_name_ar]").fill("هدى")
    form.locator("input[name=first_name]").fill("Houda")
    first = fatima.request.post(f"{base}/intake?lang=ar", data=urlencode(posted_fields(form)), max_redirects=0,
                                headers={"Origin": base, "Content-Type": "application/x-www-form-urlencoded"})
    assert first.status == 303, first.text()
    form.locator("button[type=submit]").click()  # the page's own post, with the same key
    expect(fatima).to_have_url(re.compile(r"/beneficiaries/[^?]+\?lang=ar&registered=1#duplicates$"))
    assert first.headers["location"] == fatima.url.removeprefix(base)
    beneficiary_id = re.search(r"/beneficiaries/([^?]+)\?", fatima.url).group(1)
    assert beneficiaries(network) - before == {beneficiary_id}  # once

    # Her registration flagged the earlier record with the same phone: decided here, by a form.
    expect(fatima.locator("#registered a[href='#duplicates']")).to_be_visible()
    flag = fatima.locator("#duplicates li.duplicate")
    expect(flag).to_have_count(1)
    flag.locator("input[name=confirm]").check()
    flag.locator("button[value=distinct]").click()
    expect(fatima).to_have_url(re.compile(rf"/beneficiaries/{beneficiary_id}\?lang=ar"))
    expect(fatima.locator("#duplicates")).to_have_count(0)

    # Her consent, in French: nothing ticked is refused at the field, her choice of recipient kept.
    fatima.goto(f"{base}/beneficiaries/{beneficiary_id}?lang=fr")
    consent = fatima.locator("#consent-form")
    consent.locator("select[name=purpose]").select_option("legal_orientation")
    consent.locator("select[name=recipient_association]").select_option("wafae-marrakech")
    consent.locator("button[type=submit]").click()
    expect(fatima.locator("#fields-error")).to_have_text(re.compile("obligatoire", re.I))
    consent = fatima.locator("#consent-form")
    expect(consent.locator("select[name=recipient_association]")).to_have_value("wafae-marrakech")
    consent.locator("input[name=fields][value=first_name]").check()
    consent.locator("button[type=submit]").click()
    expect(fatima).to_have_url(re.compile(rf"/beneficiaries/{beneficiary_id}\?lang=fr#consents$"))
    recorded = fatima.locator("#consents li.consent")
    expect(recorded).to_have_count(1)
    expect(recorded.locator(".recipient")).to_contain_text("Wafae")

    # A referral her consent does not cover (another association) is refused at the fields, in French.
    refer = fatima.locator("#refer-form")
    refer.locator("select[name=service_category]").select_option("legal_orientation")
    refer.locator("select[name=to_association]").select_option("dar-noor-casablanca")
    refer.locator("textarea[name=reason]").fill("Accompagnement juridique")
    refer.locator("input[name=fields][value=first_name]").check()
    refer.locator("button[type=submit]").click()
    expect(fatima.locator("#fields-error")).to_be_visible()
    expect(fatima.locator("#fields-error")).to_contain_text("consentement")
    refer = fatima.locator("#refer-form")
    expect(refer.locator("textarea[name=reason]")).to_have_value("Accompagnement juridique")
    refer.locator("select[name=to_association]").select_option("wafae-marrakech")
    refer.locator("button[type=submit]").click()
    expect(fatima).to_have_url(re.compile(r"/referrals/[^?]+\?lang=fr$"))
    referral_id = re.search(r"/referrals/([^?]+)\?", fatima.url).group(1)
    card = fatima.locator(f"#referrals-sent li[data-id='{referral_id}']")
    expect(card.locator(".about")).to_contain_text("Houda")
    expect(card.locator(".state")).to_have_class(re.compile(r"\bstate-sent\b"))


def test_a_declined_referral_closed_then_her_erasure_by_an_admin_without_javascript(network, no_script):
    from playwright.sync_api import expect

    base = network.web
    api = network.login("fatima@amal-safi.example")
    registered = api.post(f"{base}/api/beneficiaries", json={
        "first_name": "Nawal", "last_name": "Berrada", "phone": f"06{random.randrange(10**7, 10**8)}",
        "needs": ["legal_orientation"]}, timeout=30)
    assert registered.status_code == 201, registered.text
    beneficiary_id = registered.json()["id"]
    consent = api.post(f"{base}/api/beneficiaries/{beneficiary_id}/consents", json={
        "purpose": "legal_orientation", "fields": ["first_name"], "recipient_category": "legal_orientation"},
        timeout=30)
    assert consent.status_code == 201, consent.text
    referrals = {}
    for recipient in ("wafae-marrakech", "dar-noor-casablanca"):
        made = api.post(f"{base}/api/referrals", json={
            "beneficiary_id": beneficiary_id, "to_association": recipient, "service_category": "legal_orientation",
            "reason": "Accompagnement juridique", "urgency": "normal", "fields": ["first_name"]}, timeout=30)
        assert made.status_code == 201, made.text
        referrals[recipient] = made.json()["id"]
    declined = network.login("karima@darnoor.example").post(
        f"{base}/api/referrals/{referrals['dar-noor-casablanca']}/decline", json={"reason": "Pas de place"}, timeout=30)
    assert declined.status_code == 200, declined.text

    # Karima (the recipient) is not offered to close it; posting the form anyway is refused.
    karima = no_script("fr-FR")
    sign_in(karima, base, f"/referrals/{referrals['dar-noor-casablanca']}?lang=fr", "karima@darnoor.example")
    expect(karima.locator("#form-dismiss")).to_have_count(0)
    csrf = karima.locator("input[name=csrf_token]").first.get_attribute("value") or ""
    forced = karima.request.post(f"{base}/referrals/{referrals['dar-noor-casablanca']}/dismiss?lang=fr",
                                 headers={"Origin": base}, max_redirects=0,
                                 form={"csrf_token": csrf, "confirm": "true", "idempotency_key": uuid.uuid4().hex})
    assert forced.status == 403 and FORBIDDEN in forced.text()  # her role's refusal, not a stale token

    # Fatima closes it without re-routing, once she confirms.
    fatima = no_script("fr-FR")
    sign_in(fatima, base, f"/referrals/{referrals['dar-noor-casablanca']}?lang=fr", "fatima@amal-safi.example")
    dismiss = fatima.locator("#form-dismiss")
    expect(dismiss.locator("input[name=confirm]")).to_have_attribute("required", "")
    dismiss.locator("input[name=confirm]").check()
    dismiss.locator("button.action-dismiss").click()
    card = fatima.locator(f"#referrals-sent li[data-id='{referrals['dar-noor-casablanca']}']")
    expect(card.locator(".state")).to_have_class(re.compile(r"\bstate-closed\b"))
    expect(card.locator(".timeline-entry[data-action=dismiss]")).to_contain_text("Close sans réorientation")
    expect(card.locator("#form-dismiss")).to_have_count(0)
    expect(card.locator("#form-reroute")).to_have_count(0)

    # Fatima is a case worker: no erasure on her record, and its form posted anyway is refused.
    fatima.goto(f"{base}/beneficiaries/{beneficiary_id}?lang=fr")
    expect(fatima.locator("#erase-link")).to_have_count(0)
    csrf = fatima.locator("input[name=csrf_token]").first.get_attribute("value")
    forced = fatima.request.post(f"{base}/beneficiaries/{beneficiary_id}/erase?lang=fr", headers={"Origin": base},
                                 max_redirects=0, form={"csrf_token": csrf, "confirm": "true"})
    assert forced.status == 403 and FORBIDDEN in forced.text()
    fatima.reload()
    expect(fatima.locator("#identity")).to_contain_text("Nawal")  # nothing was erased
    fatima.goto(f"{base}/beneficiaries?lang=fr&q=Nawal%20Berrada")
    expect(fatima.locator(f"#beneficiary-list li[data-id='{beneficiary_id}']")).to_have_count(1)  # found, for now

    # Naima (Wafae) sees her first name on the open referral.
    naima = no_script("fr-FR")
    sign_in(naima, base, f"/referrals/{referrals['wafae-marrakech']}?lang=fr", "naima@wafae.example")
    expect(naima.locator("main")).to_contain_text("Nawal")

    # An admin of her association erases her from her record page, after the confirmation.
    admin_email = f"admin-{uuid.uuid4().hex[:8]}@amal-safi.test"
    add_staff(network, f"s-t-admin-{uuid.uuid4().hex[:8]}", admin_email, ["case_worker", "admin"])
    admin = no_script("fr-FR")
    eventually(lambda: network.login(admin_email), timeout=30, message="the admin can sign in")
    sign_in(admin, base, f"/beneficiaries/{beneficiary_id}?lang=fr", admin_email)
    admin.locator("#erase-link").click()
    expect(admin).to_have_url(f"{base}/beneficiaries/{beneficiary_id}/erase?lang=fr")
    confirm = admin.locator("#confirm-form")
    expect(confirm.locator("input[name=confirm]")).to_have_attribute("required", "")
    confirm.locator("input[name=confirm]").check()
    confirm.locator("button[type=submit]").click()
    expect(admin.locator("#confirm-done")).to_be_visible()

    # Her record answers gone; the search no longer finds her by name.
    admin.goto(f"{base}/beneficiaries/{beneficiary_id}?lang=fr")
    expect(admin.locator("#erased")).to_be_visible()
    assert "Nawal" not in admin.locator("main").inner_text() and "Berrada" not in admin.locator("main").inner_text()
    fatima.goto(f"{base}/beneficiaries?lang=fr&q=Nawal%20Berrada")
    expect(fatima.locator("#beneficiary-search")).to_be_visible()
    expect(fatima.locator(f"#beneficiary-list li[data-id='{beneficiary_id}']")).to_have_count(0)

    # The recipient's referral no longer shows her name.
    def name_gone():
        naima.reload()
        return "Nawal" not in naima.locator("main").inner_text()

    eventually(name_gone, timeout=60, interval=1, message="her first name erased on Naima's side")
