"""Templates: every kind in Arabic, French and English; Babel dates; RTL Arabic email; nothing about a beneficiary."""

from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
from fixtures.notifications import small_network
from sqlalchemy.orm import Session

from services.notifications import domain, rules
from services.notifications.models import Base
from services.notifications.render import CONTEXT_KEYS, Renderer, format_when, safe_context
from tansiq import contracts, i18n
from tansiq.db import make_engine
from tansiq.messaging.store import messaging_metadata

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc)
# What a beneficiary's record could hold; none of it may ever appear in a message.
SECRETS = ("Khadija", "Benali", "+212611223344", "violence conjugale", "b-7c2e", "c-19", "r-41", "Hay Mohammadi")
HOSTILE = {  # every free-text or personal field of every contract, filled with the secrets above
    "beneficiary_id": "b-7c2e", "consent_id": "c-19", "referral_id": "r-41", "city": "Safi",
    "reason": "violence conjugale, Khadija Benali", "note": "Khadija Benali +212611223344",
    "outcome": "Khadija relogée à Hay Mohammadi",
    "shared": {"first_name": "Khadija", "last_name": "Benali", "phone": "+212611223344", "notes": "Hay Mohammadi"},
    "from_association": "amal-safi", "to_association": "wafae-marrakech", "association": "amal-safi",
    "recipients": ["wafae-marrakech"], "organiser": "amal-safi", "organisers": ["amal-safi", "nour-safi"],
    "needs": ["legal_orientation"], "staff_ids": ["s-amal-cw-fr"],
}


@pytest.fixture(scope="module")
def renderer():
    return Renderer("https://tansiq.example/")


@pytest.fixture(scope="module")
def directory():
    directory = small_network()
    yield directory
    directory.close()


def hostile_event(type_):
    schema = contracts.get(type_).schema()
    example = dict(contracts.get(type_).example)
    example.update({key: value for key, value in HOSTILE.items() if key in schema.fields})
    # Keep the example's value where a field only takes codes (e.g. a closing reason).
    for key in schema.validate(example):
        example[key] = contracts.get(type_).example[key]
    return contracts.validate(contracts.make(type_, "tests", example))


def test_every_kind_of_the_rules_has_a_subject_and_body_in_three_languages(renderer):
    assert renderer.kinds() == sorted({rule.kind for rule in rules.RULES.values()})
    for kind in renderer.kinds():
        for language in ("ar", "fr", "en"):
            for part in ("subject", "body"):
                text = i18n.translate(language, f"notification.{kind}.{part}")
                assert text and text != f"notification.{kind}.{part}", (kind, language, part)


@pytest.mark.parametrize("type_", sorted(rules.RULES))
@pytest.mark.parametrize("language", ["ar", "fr", "en"])
def test_real_messages_of_every_kind_carry_no_beneficiary_detail(renderer, directory, type_, language):
    engine = make_engine("sqlite://")
    Base.metadata.create_all(engine)
    messaging_metadata.create_all(engine)
    with Session(engine) as session:
        domain.notify(session, directory, hostile_event(type_), NOW)
        deliveries = session.query(domain.Delivery).all()
        assert deliveries, "each kind should produce at least one email"
        for delivery in deliveries:
            delivery.language = language
            message = renderer.message(delivery)
            for body in (message.subject, message.text, message.html, message.sms):
                assert body.strip()
                for secret in SECRETS:
                    assert secret not in body, (type_, language, secret)
            assert "https://tansiq.example/inbox/" in message.text and message.sms.endswith(
                f"/inbox/{delivery.inbox_item_id}")
    engine.dispose()


def test_the_template_context_is_a_fixed_whitelist():
    context = safe_context({"first_name": "Khadija", "reason": "x", "association": "amal-safi",
                            "names": {"amal-safi": {"ar": "جمعية أمل", "fr": "Association Amal"}}}, "ar")
    assert tuple(context) == CONTEXT_KEYS
    assert "Khadija" not in repr(context) and context["association_name"] == "جمعية أمل"


def test_a_translation_using_anything_else_fails_loudly(renderer, monkeypatch):
    real = i18n.translations("fr").gettext
    monkeypatch.setattr(i18n.translations("fr"), "gettext", lambda msgid: "%(first_name)s" if msgid.endswith(
        ".subject") else real(msgid))
    with pytest.raises(KeyError, match="first_name"):
        renderer.entry("referral.accepted", "fr", {})


def delivery(kind, language, **params):
    names = {"amal-safi": {"ar": "جمعية أمل", "fr": "Association Amal"},
             "wafae-marrakech": {"ar": "جمعية وفاء", "fr": "Association Wafae"}}
    return SimpleNamespace(kind=kind, language=language, inbox_item_id=7,
                           params={"names": names, "from_association": "amal-safi",
                                   "to_association": "wafae-marrakech", **params})


def test_arabic_email_is_right_to_left(renderer):
    message = renderer.message(delivery("referral.sent", "ar", deadline="2026-12-01T11:00:00+00:00"))
    assert '<html lang="ar" dir="rtl">' in message.html
    assert "جمعية أمل" in message.subject and "توجيه" in message.subject
    assert "دجنبر" in message.text  # Babel ar_MA: the Moroccan month name, and 12:00 Casablanca time
    assert "12:00" in message.text


@pytest.mark.parametrize("language,month,name", [("fr", "décembre", "Association Amal"),
                                                 ("en", "December", "Association Amal")])
def test_french_and_english_email_are_left_to_right_with_local_dates(renderer, language, month, name):
    message = renderer.message(delivery("referral.sent", language, deadline="2026-12-01T11:00:00+00:00"))
    assert f'<html lang="{language}" dir="ltr">' in message.html
    assert name in message.subject and month in message.text and "12:00" in message.text


def test_dates_are_formatted_per_locale_in_casablanca_time():
    moment = "2027-05-12T09:00:00+00:00"  # UTC+1 in Casablanca (outside Ramadan)
    assert format_when(moment, "fr") == "mercredi 12 mai 2027, 10:00"
    assert format_when(moment, "en") == "Wednesday, 12 May 2027, 10:00"  # CLDR en_GB's own punctuation
    arabic = format_when(moment, "ar")
    assert "ماي" in arabic and arabic.endswith("، 10:00") and " ," not in arabic  # never "10:00 ,2027"


def test_event_titles_are_escaped_in_html(renderer):
    message = renderer.message(SimpleNamespace(
        kind="event.reminder_due", language="fr", inbox_item_id=1,
        params={"event_title": "<script>x</script>", "starts_at": "2027-03-12T09:00:00+00:00"}))
    assert "<script>" not in message.html and "&lt;script&gt;" in message.html


def test_digest_lists_every_item_with_one_link_to_the_inbox(renderer):
    items = [delivery("referral.accepted", "fr"), delivery("referral.started", "fr")]
    message = renderer.digest("fr", items)
    assert message.subject == "Résumé du jour : 2 notifications"
    assert "a accepté" in message.text and "a commencé" in message.text
    assert message.text.count("https://tansiq.example/inbox") == 1
