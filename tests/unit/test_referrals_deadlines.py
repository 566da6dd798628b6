"""Referral deadlines in Moroccan working time, and reminders/escalations/expiry firing exactly once."""

import json
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from fixtures.referrals import keyring, sqlite_session, staff
from sqlalchemy import select

from services.referrals import domain
from services.referrals.models import FiredDeadline
from services.referrals.workcal import WorkCalendar
from tansiq import contracts, sealing
from tansiq.envelope import parse
from tansiq.errors import Forbidden
from tansiq.messaging.store import OutboxMessage

CASA = ZoneInfo("Africa/Casablanca")
SAFI, MARRAKECH = "amal-safi", "wafae-marrakech"
PII = {"first_name": "Khadija", "phone": "+212600000042"}
SHARE = {"consent_id": "c-19", "shared": PII, "override": False}


def local(*args):
    return datetime(*args, tzinfo=CASA)


@pytest.fixture
def session(tmp_path):
    with sqlite_session(tmp_path / "referrals.db") as session:
        yield session


def send(session, urgency, at, to_integration="tansiq"):
    referral = domain.create_referral(
        session, at.astimezone(timezone.utc), staff(SAFI), keyring(), beneficiary_id="b-1", to_association=MARRAKECH,
        service_category="legal_orientation", reason="Needs a lawyer", urgency=urgency, share=SHARE,
        to_integration=to_integration, to_encryption_key=sealing.public_key_b64(sealing.generate_private_key()))
    session.commit()
    return referral


def scan(session, at):
    fired = domain.scan_deadlines(session, at.astimezone(timezone.utc))
    session.commit()
    return [kind for _, kind in fired]


def deadline_messages(session):
    return [json.loads(m.body) for m in session.scalars(select(OutboxMessage).order_by(OutboxMessage.seq))
            if m.type.split(".")[3] in ("reminder_due", "escalated", "expired")]


def test_urgent_on_a_friday_afternoon_before_a_monday_holiday(session):
    # Friday 8 January 2027, 16:00; Monday 11 January is Proclamation of Independence Day.
    referral = send(session, "urgent", local(2027, 1, 8, 16, 0))
    # 4 working hours: 1 on Friday, none over the weekend and the holiday, 3 on Tuesday.
    assert referral.ack_due == local(2027, 1, 12, 12, 0)
    assert referral.ack_remind_at == local(2027, 1, 12, 11, 0)
    assert referral.response_due == local(2027, 1, 12, 16, 0)  # one working day: 8 hours
    assert referral.response_remind_at == local(2027, 1, 12, 14, 0)
    # +5 working days, skipping Thursday 14 January (Amazigh New Year) and the weekend.
    assert referral.expires_at == local(2027, 1, 20, 16, 0)


def test_normal_before_throne_day(session):
    # Wednesday 29 July 2026, 10:00; Thursday 30 July is Throne Day.
    referral = send(session, "normal", local(2026, 7, 29, 10, 0))
    assert referral.ack_due == local(2026, 8, 3, 10, 0)  # 16 h: Wed 7, Fri 8, Mon 1
    assert referral.response_due == local(2026, 8, 6, 10, 0)  # 40 h
    assert referral.expires_at == local(2026, 8, 13, 10, 0)


def test_reminder_escalation_and_expiry_fire_once_each_at_the_right_time(session):
    referral = send(session, "urgent", local(2027, 1, 8, 16, 0))
    timeline = [
        (local(2027, 1, 8, 16, 30), []),
        (local(2027, 1, 11, 12, 0), []),  # the holiday: the clock stands still
        (local(2027, 1, 12, 10, 59), []),
        (local(2027, 1, 12, 11, 0), ["ack_reminder"]),
        (local(2027, 1, 12, 11, 30), []),
        (local(2027, 1, 12, 12, 0), ["ack_escalation"]),
        (local(2027, 1, 12, 12, 0), []),
        (local(2027, 1, 12, 14, 0), ["response_reminder"]),
        (local(2027, 1, 12, 16, 0), ["response_escalation"]),
        (local(2027, 1, 20, 15, 59), []),
        (local(2027, 1, 20, 16, 0), ["expiry"]),
        (local(2027, 2, 20, 16, 0), []),
    ]
    for at, expected in timeline:
        assert scan(session, at) == expected, at
    assert referral.state == "expired"
    assert referral.history[-1].action == "expire" and referral.history[-1].by is None

    messages = deadline_messages(session)
    assert [(m["type"].split(".")[3], m["data"]["deadline"]) for m in messages] == [
        ("reminder_due", "acknowledgement"), ("escalated", "acknowledgement"),
        ("reminder_due", "response"), ("escalated", "response"), ("expired", "response")]
    assert messages[1]["data"]["due_at"] == "2027-01-12T11:00:00+00:00"
    for message in messages:
        contracts.validate(parse(json.dumps(message)))
        assert not any(value in json.dumps(message) for value in PII.values())


def test_acknowledged_in_time_skips_the_ack_escalation_and_an_answer_stops_the_rest(session):
    referral = send(session, "normal", local(2026, 7, 29, 10, 0))
    domain.transition(session, local(2026, 7, 31, 9, 0).astimezone(timezone.utc), staff(MARRAKECH),
                      referral.id, "acknowledge")
    session.commit()
    assert scan(session, local(2026, 8, 3, 10, 0)) == []
    assert scan(session, local(2026, 8, 4, 16, 0)) == ["response_reminder"]
    domain.transition(session, local(2026, 8, 5, 9, 0).astimezone(timezone.utc), staff(MARRAKECH),
                      referral.id, "accept")
    session.commit()
    assert scan(session, local(2026, 9, 1, 9, 0)) == []
    assert referral.state == "accepted"


def test_a_late_scan_skips_reminders_overtaken_by_their_deadline(session):
    referral = send(session, "urgent", local(2027, 1, 8, 16, 0))
    assert scan(session, local(2027, 1, 12, 17, 0)) == ["ack_escalation", "response_escalation"]
    skipped = session.scalars(select(FiredDeadline.kind).where(FiredDeadline.skipped)).all()
    assert sorted(skipped) == ["ack_reminder", "response_reminder"]
    assert scan(session, local(2027, 1, 12, 17, 0)) == []
    assert referral.state == "sent"


def test_a_queue_partner_recipient_is_reminded_on_its_own_queue(session):
    send(session, "urgent", local(2027, 1, 8, 16, 0), to_integration="queue")
    scan(session, local(2027, 1, 12, 11, 0))
    routed = session.scalars(select(OutboxMessage.routing_key).where(OutboxMessage.exchange == "partners.outbound"))
    assert f"{MARRAKECH}.ma.tansiq.referral.reminder_due.v1" in set(routed)


def test_an_admin_corrects_the_holiday_calendar(session):
    now = datetime(2027, 1, 1, tzinfo=timezone.utc)
    for roles in (("case_worker",), ("events_manager",)):  # deadlines are the coordinators' and admins' business
        with pytest.raises(Forbidden):
            domain.set_holiday(session, now, staff(SAFI, *roles), date(2027, 1, 12), True)
    # An exceptional day off on Tuesday 12 January, and Monday 11 January worked after all.
    domain.set_holiday(session, now, staff(SAFI, "admin"), date(2027, 1, 12), True, "Exceptional day off")
    session.commit()
    referral = send(session, "urgent", local(2027, 1, 8, 16, 0))
    assert referral.ack_due == local(2027, 1, 13, 12, 0)
    domain.set_holiday(session, now, staff(SAFI, "admin"), date(2027, 1, 11), False, "Worked")
    session.commit()
    assert send(session, "urgent", local(2027, 1, 8, 16, 0)).ack_due == local(2027, 1, 11, 12, 0)
    # The referral already running follows the corrected calendar too.
    assert referral.ack_due == local(2027, 1, 11, 12, 0)


def test_a_holiday_declared_later_moves_running_deadlines_but_not_what_fired(session):
    referral = send(session, "urgent", local(2027, 1, 8, 16, 0))
    assert scan(session, local(2027, 1, 12, 11, 0)) == ["ack_reminder"]
    domain.set_holiday(session, datetime(2027, 1, 12, 11, 30, tzinfo=timezone.utc), staff(SAFI, "admin"),
                       date(2027, 1, 12), True, "Exceptional day off")
    session.commit()
    assert referral.ack_due == local(2027, 1, 13, 12, 0)
    assert scan(session, local(2027, 1, 12, 16, 0)) == []
    assert scan(session, local(2027, 1, 13, 12, 0)) == ["ack_escalation"]


def test_working_time_honours_the_ramadan_offset_change():
    calendar = WorkCalendar()
    # Morocco moves from UTC+1 to UTC+0 for Ramadan (mid-February 2026): office hours stay 09:00-17:00 local.
    start = local(2026, 2, 13, 16, 0)  # Friday, UTC+1
    due = calendar.add(start.astimezone(timezone.utc), timedelta(hours=2))
    assert due.astimezone(CASA).replace(tzinfo=None) == datetime(2026, 2, 16, 10, 0)
    assert calendar.add(start, timedelta(0)) == start
