"""Preferences: channels, language, quiet hours (Africa/Casablanca) and the daily digest; urgent kinds bypass both."""

from datetime import datetime, timezone

import pytest
from fixtures.notifications import directory, session, small_network  # noqa: F401 - fixtures
from sqlalchemy import select

from services.notifications import domain, schemas
from services.notifications.models import Delivery
from tansiq import contracts
from tansiq.errors import DomainError, load_request

# Casablanca is UTC+1 all year (outside Ramadan), so 22:30 UTC is 23:30 local: inside default quiet hours.
NIGHT = datetime(2026, 11, 30, 22, 30, tzinfo=timezone.utc)
DAY = datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc)
REFERRAL = {"referral_id": "r-41", "from_association": "amal-safi", "to_association": "wafae-marrakech"}



def referral_sent(urgency):
    data = {**contracts.get("ma.tansiq.referral.sent.v1").example, **REFERRAL, "urgency": urgency}
    return contracts.validate(contracts.make("ma.tansiq.referral.sent.v1", "tests", data))


def event_published():
    data = {**contracts.get("ma.tansiq.event.published.v1").example, "organiser": "amal-safi"}
    return contracts.validate(contracts.make("ma.tansiq.event.published.v1", "tests", data))


def deliveries(session, recipient=None):
    query = select(Delivery)
    if recipient:
        query = query.where(Delivery.recipient == recipient)
    return session.scalars(query).all()


def local(moment):
    return moment.astimezone(domain.LOCAL_TZ)


def test_defaults_take_the_language_from_the_directory(session):
    prefs = domain.preferences(session, "s-1", "ar")
    assert prefs["language"] == "ar" and prefs["channels"] == ["inbox", "email"] and prefs["digest"] is True
    assert domain.preferences(session, "s-1", None)["language"] == "fr"


def test_stored_preferences_override_and_the_inbox_cannot_be_switched_off(session):
    changes = load_request(schemas.PreferencesSchema(), {"channels": ["sms"], "language": "en",
                                                         "quiet_start": "22:00", "quiet_end": "07:00"})
    prefs = domain.set_preferences(session, "s-1", changes, DAY)
    assert prefs["channels"] == ["inbox", "sms"] and prefs["language"] == "en"
    assert domain.preferences(session, "s-1", "ar")["language"] == "en"


@pytest.mark.parametrize("bad", [{"channels": ["pigeon"]}, {"quiet_start": "25:00", "quiet_end": "07:00"},
                                 {"quiet_start": "22:00"}, {"language": "de"}])
def test_bad_preferences_are_refused(bad):
    with pytest.raises(DomainError):
        load_request(schemas.PreferencesSchema(), bad)


@pytest.mark.parametrize("moment,quiet", [
    (datetime(2026, 11, 30, 20, 30, tzinfo=timezone.utc), True),   # 21:30 local
    (datetime(2026, 11, 30, 6, 30, tzinfo=timezone.utc), True),    # 07:30 local
    (datetime(2026, 11, 30, 7, 0, tzinfo=timezone.utc), False),    # 08:00 local: over
    (datetime(2026, 11, 30, 19, 59, tzinfo=timezone.utc), False),  # 20:59 local
])
def test_quiet_hours_are_in_casablanca_time_and_span_midnight(moment, quiet):
    assert domain.in_quiet_hours(moment, domain.DEFAULT_PREFERENCES) is quiet


def test_normal_kind_waits_for_the_end_of_quiet_hours(session, directory):
    domain.notify(session, directory, referral_sent("normal"), NIGHT)
    [email] = deliveries(session)
    assert email.channel == "email" and not email.digest
    assert local(email.next_attempt_at).strftime("%Y-%m-%d %H:%M") == "2026-12-01 08:00"


def test_urgent_referral_ignores_quiet_hours(session, directory):
    domain.notify(session, directory, referral_sent("urgent"), NIGHT)
    [email] = deliveries(session)
    assert email.next_attempt_at == NIGHT and email.urgency == "urgent"


def test_escalation_ignores_quiet_hours_and_digest(session, directory):
    data = {**REFERRAL, "by": None}
    escalated = contracts.validate(contracts.make("ma.tansiq.referral.escalated.v1", "tests", data))
    domain.notify(session, directory, escalated, NIGHT)
    assert {d.recipient for d in deliveries(session)} == {"s-amal-coord", "s-wafae-coord"}
    assert all(d.next_attempt_at == NIGHT and not d.digest for d in deliveries(session))


def test_low_urgency_goes_to_the_daily_digest(session, directory):
    domain.notify(session, directory, event_published(), DAY)
    for delivery in deliveries(session):
        assert delivery.digest
        assert local(delivery.next_attempt_at).strftime("%Y-%m-%d %H:%M") == "2026-12-01 08:00"


def test_without_digest_a_low_kind_is_sent_at_once_outside_quiet_hours(session, directory):
    domain.set_preferences(session, "s-nour-events", {"digest": False}, DAY)
    domain.notify(session, directory, event_published(), DAY)
    [delivery] = deliveries(session, "s-nour-events")
    assert not delivery.digest and delivery.next_attempt_at == DAY


def test_channels_follow_preferences_and_sms_needs_a_phone_and_a_gateway(session, directory):
    domain.set_preferences(session, "s-wafae-cw-en", {"channels": ["sms"]}, DAY)
    domain.notify(session, directory, referral_sent("urgent"), DAY, enabled_channels=("email",))
    assert deliveries(session) == []  # SMS wanted, but no gateway configured: the inbox item still exists
    domain.notify(session, directory, referral_sent("urgent"), DAY, enabled_channels=("email", "sms"))
    [sms] = deliveries(session)
    assert sms.channel == "sms" and sms.address == "+212600000002" and sms.language == "en"


def test_next_local_crosses_the_day():
    late = datetime(2026, 11, 30, 9, 0, tzinfo=timezone.utc)  # 10:00 local, past 08:00
    assert local(domain.next_local(late, "08:00")).strftime("%d %H:%M") == "01 08:00"
