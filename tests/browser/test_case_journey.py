"""Her case and the referral's story in the OS Chromium, in Arabic and French, on a phone and a desktop:
a case worker finds a returning woman by her phone typed another way and adds a follow-up session; refers
her; the recipient sees who sent it and declines straight from "sent" (after confirming); the sender sees
whom it is about and the timeline, and re-routes it. No page is wider than the screen; screenshots go to
test-results/ (TANSIQ_SCREENSHOTS to change it)."""

import os
import random
import re
from pathlib import Path

import pytest
from test_webapp import sign_in

pytestmark = pytest.mark.browser

SHOTS = Path(os.environ.get("TANSIQ_SCREENSHOTS", "test-results"))
SCREENS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1280, "height": 900}}
LOCALES = {"ar": "ar-MA", "fr": "fr-FR"}


@pytest.fixture
def screen(browser):
    """screen(lang, size) -> a page in its own context (own cookies); a script error fails the test."""
    contexts, errors = [], []

    def open_screen(lang, size):
        context = browser.new_context(viewport=SCREENS[size], locale=LOCALES[lang], is_mobile=size == "phone",
                                      has_touch=size == "phone")
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        return page

    yield open_screen
    for context in contexts:
        context.close()
    assert errors == []


def fits(page, size, shot):
    """Nothing wider than the screen; the page saved as the journey's evidence."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"tansiq-case-{shot}.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= SCREENS[size]["width"], shot


@pytest.mark.parametrize("lang, size", [("ar", "phone"), ("fr", "phone"), ("ar", "desktop"), ("fr", "desktop")])
def test_found_by_phone_followed_up_referred_declined_from_sent_and_rerouted(network, screen, lang, size):
    from playwright.sync_api import expect

    base, tag = network.web, f"{lang}-{size}"
    digits = f"{random.randrange(10**7, 10**8)}"
    api = network.login("fatima@amal-safi.example")
    registered = api.post(f"{base}/api/beneficiaries", json={
        "first_name": "Salma", "last_name": "Bouazzaoui", "first_name_ar": "سلمى", "phone": f"06{digits}",
        "city": "Safi", "needs": ["legal_orientation"]}, timeout=30)
    assert registered.status_code == 201, registered.text
    beneficiary_id = registered.json()["id"]
    consent = api.post(f"{base}/api/beneficiaries/{beneficiary_id}/consents", json={
        "purpose": "legal_orientation", "fields": ["first_name", "needs"],
        "recipient_category": "legal_orientation"}, timeout=30)  # any partner offering legal orientation
    assert consent.status_code == 201, consent.text

    # She comes back: Fatima finds her by her phone, typed another way.
    fatima = screen(lang, size)
    sign_in(fatima, base, f"/beneficiaries?lang={lang}", "fatima@amal-safi.example")
    search = fatima.locator("#beneficiary-search")
    search.locator("input[name=q]").fill(f"+212 6 {digits[:2]} {digits[2:4]} {digits[4:6]} {digits[6:]}")
    search.locator("button[type=submit]").click()
    rows = fatima.locator("#beneficiary-list li")
    expect(rows).to_have_count(1)
    expect(rows).to_have_attribute("data-id", beneficiary_id)
    fits(fatima, size, f"{tag}-1-found")

    # A follow-up listening session, from her record's form (no script needed).
    rows.locator("a.open-record").click()
    expect(fatima).to_have_url(re.compile(rf"/beneficiaries/{beneficiary_id}\?lang={lang}"))
    session = fatima.locator("#session-form")
    session.locator("input[name=needs][value=shelter]").check()
    session.locator("input[name=urgency][value=high]").check()
    session.locator("textarea[name=notes]").fill("Revenue pour un suivi")
    session.locator("button[type=submit]").click()
    expect(fatima.locator("#sessions .badge")).to_have_text("2")
    expect(fatima.locator("#sessions")).to_contain_text("Revenue pour un suivi")

    # She refers her to Wafae.
    refer = fatima.locator("#refer-form")
    refer.locator("select[name=service_category]").select_option("legal_orientation")
    expect(refer.locator("select[name=to_association] option[value='wafae-marrakech']")).to_have_count(1)
    refer.locator("select[name=to_association]").select_option("wafae-marrakech")
    refer.locator("textarea[name=reason]").fill("Accompagnement juridique")
    refer.locator("input[name=fields][value=first_name]").check()
    refer.locator("button[type=submit]").click()
    expect(fatima.locator("#refer-result")).to_be_visible()
    link = fatima.locator("#refer-open").get_attribute("href")
    referral_id = re.fullmatch(r"/referrals/([^?]+)\?lang=\w+", link).group(1)
    fits(fatima, size, f"{tag}-2-record")

    # Naima (Wafae) sees who sent it and how to reach her, and declines it straight from "sent".
    naima = screen(lang, size)
    sign_in(naima, base, f"/referrals/{referral_id}?lang={lang}", "naima@wafae.example")
    card = naima.locator(f"#referrals-received li[data-id='{referral_id}']")
    expect(card.locator(".state")).to_have_class(re.compile(r"\bstate-sent\b"))
    expect(card.locator(".sender")).to_contain_text("fatima@amal-safi.example")
    assert "Bouazzaoui" not in card.inner_text()  # only what was shared
    decline = card.locator("#form-decline")
    decline.locator("textarea[name=reason]").fill("Pas de place ce mois-ci")
    decline.locator("button.action-decline").click()  # not confirmed: nothing sent
    expect(card.locator(".state")).to_have_class(re.compile(r"\bstate-sent\b"))
    decline.locator("input[name=confirm]").check()
    fits(naima, size, f"{tag}-3-decline")
    decline.locator("button.action-decline").click()
    expect(card.locator(".state")).to_have_class(re.compile(r"\bstate-declined\b"))

    # Fatima sees whom it is about, who declined and when, and re-routes it to another partner.
    fatima.goto(f"{base}/referrals/{referral_id}?lang={lang}")
    sent = fatima.locator(f"#referrals-sent li[data-id='{referral_id}']")
    expect(sent.locator(".about")).to_contain_text("Salma")
    expect(sent.locator(".timeline-entry")).to_have_count(2)
    reroute = sent.locator("#form-reroute")
    reroute.locator("select[name=to_association]").select_option("dar-noor-casablanca")
    reroute.locator("input[name=confirm]").check()
    fits(fatima, size, f"{tag}-4-reroute")
    reroute.locator("button.action-reroute").click()
    expect(fatima).not_to_have_url(re.compile(rf"/referrals/{referral_id}\?"))
    expect(fatima.locator("#referrals-sent li .state")).to_have_class(re.compile(r"\bstate-sent\b"))

    # Her record tells the whole story: both referrals, each with its timeline.
    fatima.goto(f"{base}/beneficiaries/{beneficiary_id}?lang={lang}")
    expect(fatima.locator("#her-referrals li.referral")).to_have_count(2)
    fits(fatima, size, f"{tag}-5-story")
    fatima.goto(f"{base}/?lang={lang}")
    expect(fatima.locator("#home-unread")).to_be_visible()
    fits(fatima, size, f"{tag}-6-home")
