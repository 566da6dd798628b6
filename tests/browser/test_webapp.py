"""The staff web app in the OS Chromium (Playwright), against the real network of services.

Fatima signs in through the login page and registers a woman through the intake form;
her colleague Hanane sees the notification in her inbox (in Arabic, right to left) and
marks it read; a referral to Marrakech is acknowledged and declined (with a reason) from
the referrals page in Marrakech. Phone-sized viewports; screenshots go to /tmp.
"""

import json
import os
import re
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests
from harness import eventually, referred_case

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
SHOTS = Path(os.environ.get("TANSIQ_SCREENSHOTS", "/tmp"))


def sign_in(page, base, path, email):
    """Open a page that needs a session: the login page comes first, then the page itself."""
    from playwright.sync_api import expect

    page.goto(f"{base}{path}")
    expect(page).to_have_url(f"{base}/login?next={quote(path, safe='')}")
    language = parse_qs(urlsplit(path).query)["lang"][0]
    expect(page.locator("html")).to_have_attribute("lang", language)  # the language of the page she asked for
    page.screenshot(path=str(SHOTS / f"tansiq-login-{language}.png"))
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", "wrong password")
    page.click("#login-form button[type=submit]")
    expect(page.locator("#login-form .error")).to_be_visible()
    page.fill("input[name=password]", "tansiq-demo")
    page.click("#login-form button[type=submit]")
    expect(page).to_have_url(f"{base}{path}")


def test_intake_form_to_a_colleagues_inbox_in_arabic_then_mark_read(network, phone):
    from playwright.sync_api import expect

    base = network.web
    fatima = phone("fr-FR")
    sign_in(fatima, base, "/intake?lang=fr", "fatima@amal-safi.example")
    expect(fatima.locator("html")).to_have_attribute("dir", "ltr")
    expect(fatima.locator("h1")).to_contain_text("Enregistrer une bénéficiaire")

    def register(first_name, phone_number):
        form = fatima.locator("#intake-form")
        form.locator("input[name=first_name]").fill(first_name)
        form.locator("input[name=last_name]").fill("Bennani")
        form.locator("input[name=first_name_ar]").fill("خديجة")
        form.locator("input[name=phone]").fill(phone_number)
        form.locator("input[name=birth_year]").fill("1991")
        form.locator("input[name=city]").fill("Safi")
        form.locator("select[name=language]").select_option("ar")
        form.locator("select[name=kind]").select_option("survivor")
        form.locator("input[name=needs][value=legal_orientation]").check()
        form.locator("input[name=needs][value=psychological_support]").check()
        form.locator("input[name=urgency][value=urgent]").check()
        form.locator("textarea[name=notes]").fill("Orientée vers un accompagnement juridique.")
        form.locator("button[type=submit]").click()
        result = fatima.locator("#intake-result")
        expect(result).to_be_visible()
        expect(result.locator(".result-title")).to_have_text("La bénéficiaire a été enregistrée.")
        return result.locator(".result-id").inner_text().strip()

    fatima.screenshot(path=str(SHOTS / "tansiq-intake-form-fr.png"), full_page=True)
    first = register("Khadija", "0661234567")
    expect(fatima.locator("#intake-result .duplicates")).to_contain_text("Aucun dossier semblable")
    fatima.screenshot(path=str(SHOTS / "tansiq-intake-registered-fr.png"), full_page=True)

    # The same phone number again: the form shows the earlier record as a possible duplicate.
    fatima.click("#intake-again")
    expect(fatima.locator("#intake-form")).to_be_visible()
    second = register("Khadija", "0661234567")
    duplicates = fatima.locator("#intake-result .duplicates")
    expect(duplicates).to_contain_text("pourraient concerner la même femme")
    expect(duplicates.locator("li")).to_have_count(1)
    expect(duplicates.locator("li")).to_contain_text(first)
    expect(duplicates.locator("li")).to_contain_text("même téléphone")
    assert second != first

    # Hanane (same association) reads her inbox in Arabic, on her phone.
    hanane = phone("ar-MA")
    sign_in(hanane, base, "/inbox?lang=ar", "hanane@amal-safi.example")
    expect(hanane.locator("html")).to_have_attribute("dir", "rtl")
    expect(hanane.locator("html")).to_have_attribute("lang", "ar")
    expect(hanane.locator("h1")).to_contain_text("صندوق الوارد")

    # The demo data brings other notifications (events), and the module's other tests, on the same network,
    # register women too: only these two registrations (each item links to her record) are ours.
    registered = hanane.locator("#inbox-items li.item[data-kind='beneficiary.registered']").filter(
        has=hanane.locator(f"a[href*='/beneficiaries/{first}'], a[href*='/beneficiaries/{second}']"))

    def both_shown():
        hanane.reload()
        return registered.count() == 2

    eventually(both_shown, timeout=60, interval=1, message="the two registrations in Hanane's inbox page")
    unread = hanane.locator("#unread-count")
    before = int(unread.inner_text())
    assert before >= 2
    expect(registered.and_(hanane.locator(".unread"))).to_have_count(2)
    page_text = hanane.locator("main").inner_text()
    assert "Khadija" not in page_text and "خديجة" not in page_text and "0661234567" not in page_text
    hanane.screenshot(path=str(SHOTS / "tansiq-inbox-ar.png"), full_page=True)

    newest = registered.first
    newest.locator("button.mark-read").click()
    expect(unread).to_have_text(str(before - 1))
    expect(newest).to_have_class(re.compile(r"\bread\b"))
    expect(newest.locator(".state-read")).to_be_visible()
    expect(newest.locator("button.mark-read")).to_have_count(0)
    hanane.screenshot(path=str(SHOTS / "tansiq-inbox-ar-read.png"), full_page=True)

    # It stays read: the service stored it, and the page is rendered from the service.
    hanane.reload()
    expect(hanane.locator("#unread-count")).to_have_text(str(before - 1))
    expect(registered.and_(hanane.locator(".read"))).to_have_count(1)
    assert network.login("hanane@amal-safi.example").get(
        f"{base}/api/inbox/unread-count", timeout=30).json()["unread"] == before - 1

    # Signing out ends the session: the inbox asks her to sign in again.
    hanane.click("#sign-out")
    expect(hanane).to_have_url(f"{base}/login")
    hanane.goto(f"{base}/inbox?lang=ar")
    expect(hanane).to_have_url(f"{base}/login?next={quote('/inbox?lang=ar', safe='')}")


def test_the_running_gateway_serves_the_committed_openapi_document(live_network):
    from services.gateway.api_openapi import OUTPUT

    served = requests.get(f"{live_network.web}/api/openapi.json", timeout=30)
    assert served.status_code == 200 and served.headers["Content-Type"].startswith("application/json")
    assert served.json() == json.loads(OUTPUT.read_text(encoding="utf-8"))


def test_a_referral_is_acknowledged_then_declined_with_a_reason_from_the_referrals_page(network, phone):
    from playwright.sync_api import expect

    base = network.web
    beneficiary_id, referral = referred_case(network, "fatima@amal-safi.example")
    referral_id = referral["id"]

    naima = phone("ar-MA")
    sign_in(naima, base, "/referrals?lang=ar", "naima@wafae.example")
    expect(naima.locator("html")).to_have_attribute("dir", "rtl")
    card = naima.locator(f"#referrals-received li[data-id='{referral_id}']")
    expect(card).to_be_visible()
    expect(card.locator(".state")).to_have_text("مرسلة")
    expect(card).to_contain_text("Meriem")  # shared with her consent, on the recipient's side only
    expect(card.locator("time").first).to_have_attribute("datetime", referral["ack_due"])
    expect(card.locator("button.referral-action")).to_have_count(1)
    naima.screenshot(path=str(SHOTS / "tansiq-referrals-ar.png"), full_page=True)

    card.locator("button.action-acknowledge").click()
    expect(card.locator(".state")).to_have_text("مستلمة")
    expect(card.locator("button.action-accept")).to_be_visible()
    decline = card.locator("#form-decline")  # acknowledging led to the referral's own page, its forms open
    decline.locator("textarea[name=reason]").fill("Pas d'avocate disponible ce mois-ci")
    decline.locator("button.action-decline").click()  # not confirmed yet: the form stays, nothing is sent
    expect(card.locator(".state")).to_have_text("مستلمة")
    decline.locator("input[name=confirm]").check()
    decline.locator("button.action-decline").click()
    expect(card.locator(".state")).to_have_text("مرفوضة")
    expect(card).to_contain_text("Pas d'avocate disponible ce mois-ci")
    expect(card.locator("button.referral-action")).to_have_count(0)
    naima.screenshot(path=str(SHOTS / "tansiq-referrals-ar-declined.png"), full_page=True)

    # The sender sees it in her sent list, filtered by status, with no personal data of the recipient side.
    fatima = phone("fr-FR")
    sign_in(fatima, base, "/referrals?lang=fr&status=declined", "fatima@amal-safi.example")
    sent = fatima.locator(f"#referrals-sent li[data-id='{referral_id}']")
    expect(sent.locator(".state")).to_have_text("Déclinée")
    expect(sent).to_contain_text("Association Wafae pour la femme")  # the directory's name, not the slug
    expect(fatima.locator("#status-filter")).to_have_value("declined")
    fatima.locator("#status-filter").select_option("in_progress")
    expect(fatima).to_have_url(f"{base}/referrals?lang=fr&status=in_progress")
    expect(fatima.locator(f"li[data-id='{referral_id}']")).to_have_count(0)
    fatima.screenshot(path=str(SHOTS / "tansiq-referrals-fr.png"), full_page=True)


def test_her_record_page_consent_then_referral_seen_by_the_recipient_and_refused_to_others(network, phone):
    """Intake result -> her page -> consent (first name + phone) -> referral sharing only her first name."""
    from playwright.sync_api import expect

    base = network.web
    fatima = phone("fr-FR")
    sign_in(fatima, base, "/intake?lang=fr", "fatima@amal-safi.example")
    form = fatima.locator("#intake-form")
    form.locator("input[name=first_name]").fill("Samira")
    form.locator("input[name=last_name]").fill("Alaoui")
    form.locator("input[name=phone]").fill("0663111222")
    form.locator("input[name=city]").fill("Safi")
    form.locator("input[name=needs][value=legal_orientation]").check()
    form.locator("textarea[name=notes]").fill("Plainte à déposer.")
    form.locator("button[type=submit]").click()
    expect(fatima.locator("#intake-result")).to_be_visible()
    beneficiary_id = fatima.locator("#intake-result .result-id").inner_text().strip()

    fatima.locator("#intake-open").click()
    expect(fatima).to_have_url(f"{base}/beneficiaries/{beneficiary_id}?lang=fr")
    expect(fatima.locator("h1")).to_have_text("Dossier de la bénéficiaire")
    expect(fatima.locator("#identity .field-first_name")).to_have_text("Samira")
    expect(fatima.locator("#identity .field-phone")).to_have_text("0663111222")
    expect(fatima.locator("#sessions")).to_contain_text("Plainte à déposer.")
    expect(fatima.locator("#consents .empty")).to_be_visible()

    # Her consent: legal orientation, to Wafae (Marrakech), her first name and phone.
    consent = fatima.locator("#consent-form")
    consent.locator("select[name=purpose]").select_option("legal_orientation")
    consent.locator("button[type=submit]").click()  # nothing ticked yet: refused in the page
    expect(consent.locator(".error")).to_be_visible()
    consent.locator("select[name=recipient_association]").select_option("wafae-marrakech")
    consent.locator("input[name=fields][value=first_name]").check()
    consent.locator("input[name=fields][value=phone]").check()
    consent.locator("button[type=submit]").click()
    recorded = fatima.locator("#consents li.consent")
    expect(recorded).to_have_count(1)
    expect(recorded).to_contain_text("Association Wafae pour la femme")
    expect(recorded.locator(".fields")).to_have_text("Prénom (lettres latines), Téléphone")
    expect(recorded.locator(".state")).to_have_text("Valide")

    # The referral shares her first name only, although the consent would allow her phone too.
    refer = fatima.locator("#refer-form")
    refer.locator("select[name=service_category]").select_option("legal_orientation")
    recipients = refer.locator("select[name=to_association] option")
    expect(recipients.filter(has_text="Association Wafae pour la femme")).to_have_count(1)
    expect(refer.locator("select[name=to_association] option[value='amal-safi']")).to_have_count(0)  # not hers
    refer.locator("select[name=to_association]").select_option("wafae-marrakech")
    refer.locator("textarea[name=reason]").fill("Accompagnement juridique pour la plainte")
    refer.locator("input[name=urgency][value=high]").check()
    refer.locator("input[name=fields][value=first_name]").check()
    refer.locator("button[type=submit]").click()
    sent = fatima.locator("#refer-result")
    expect(sent).to_be_visible()
    link = fatima.locator("#refer-open").get_attribute("href")
    referral_id = re.fullmatch(r"/referrals/([^?]+)\?lang=fr", link).group(1)

    fatima.goto(f"{base}/beneficiaries/{beneficiary_id}?lang=ar")
    expect(fatima.locator("html")).to_have_attribute("dir", "rtl")
    expect(fatima.locator("h1")).to_have_text("ملف المستفيدة")
    fatima.screenshot(path=str(SHOTS / "tansiq-beneficiary-ar.png"), full_page=True)
    fatima.screenshot(path=str(SHOTS / "tansiq-beneficiary-ar-top.png"))  # the first screen, as she sees it
    assert fatima.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # nothing wider than the phone
    fatima.locator("#refer-form").screenshot(path=str(SHOTS / "tansiq-refer-form-ar.png"))

    # Naima (Wafae) sees the referral with the first name only.
    naima = phone("ar-MA")
    sign_in(naima, base, "/referrals?lang=ar", "naima@wafae.example")
    card = naima.locator(f"#referrals-received li[data-id='{referral_id}']")
    expect(card).to_be_visible()
    expect(card).to_contain_text("Samira")
    card_text = card.inner_text()
    assert "0663111222" not in card_text and "Alaoui" not in card_text and "Plainte" not in card_text

    # Her record is not Naima's to open: the refusal page, without any of her data.
    refused = naima.goto(f"{base}/beneficiaries/{beneficiary_id}?lang=ar")
    assert refused.status == 403
    expect(naima.locator("h1")).to_have_text("تعذر عرض الصفحة")
    expect(naima.locator("main")).to_contain_text("ليست لديكم صلاحية الاطلاع على هذه الصفحة.")
    page_text = naima.locator("main").inner_text()
    assert "Samira" not in page_text and "0663111222" not in page_text and "Alaoui" not in page_text
    expect(naima.locator("#consent-form")).to_have_count(0)
    naima.screenshot(path=str(SHOTS / "tansiq-beneficiary-refused-ar.png"), full_page=True)

    # An event's older notification link (/events/<id>): the event's own page (a network-only one here).
    occurrences = network.login("naima@wafae.example").get(f"{base}/api/events", timeout=30).json()
    event = next(o for o in occurrences if o["visibility"] == "network")
    naima.goto(f"{base}/events/{event['event_id']}?lang=ar")
    expect(naima).to_have_url(re.compile(rf"/calendar/events/{event['event_id']}\?lang=ar$"))
    expect(naima.locator("#event-title")).to_have_text(event["title"])

    # She withdraws her consent from her page: Naima's copy of her first name is erased.
    fatima.goto(f"{base}/beneficiaries/{beneficiary_id}?lang=fr")
    fatima.locator("#consents input[name=confirm]").check()  # revoking is confirmed first
    fatima.locator("#consents button.consent-revoke").click()
    expect(fatima.locator("#consents li.consent .state")).to_have_text("Révoqué")
    expect(fatima.locator("#consents button.consent-revoke")).to_have_count(0)
    naima.goto(f"{base}/referrals/{referral_id}?lang=ar")

    def erased():
        naima.reload()
        return "Samira" not in naima.locator("main").inner_text()

    eventually(erased, timeout=60, interval=1, message="the shared first name erased on Naima's side")
