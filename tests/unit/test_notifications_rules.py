"""The rules table: each kind reaches exactly the right people (directory answers from the real directory domain)."""

from datetime import datetime, timezone

import pytest
from fixtures.notifications import directory, session, small_network  # noqa: F401 - fixtures
from sqlalchemy import select

from services.notifications import domain, rules
from services.notifications.models import Delivery, InboxItem
from tansiq import contracts

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc)  # 11:00 in Casablanca: outside quiet hours
REFERRAL = {"referral_id": "r-41", "from_association": "amal-safi", "to_association": "wafae-marrakech"}



def event(type_, **data):
    """A validated envelope of `type_`: the contract's example, overridden by `data`."""
    example = dict(contracts.get(type_).example)
    if "from_association" in example:
        example.update(REFERRAL)
    example.update(data)
    return contracts.validate(contracts.make(type_, "tests", example))


SENDER_CW = {"s-amal-cw-ar", "s-amal-cw-fr"}
RECIPIENT_CW = {"s-wafae-cw-en"}
EXPECTED = [
    ("ma.tansiq.beneficiary.registered.v1", {"association": "amal-safi"}, SENDER_CW),
    ("ma.tansiq.referral.sent.v1", {}, RECIPIENT_CW),
    ("ma.tansiq.referral.acknowledged.v1", {}, SENDER_CW),
    ("ma.tansiq.referral.accepted.v1", {}, SENDER_CW),
    ("ma.tansiq.referral.declined.v1", {"reason": "no_capacity"}, SENDER_CW),
    ("ma.tansiq.referral.started.v1", {}, SENDER_CW),
    ("ma.tansiq.referral.completed.v1", {"outcome": "done"}, SENDER_CW),
    ("ma.tansiq.referral.closed.v1", {"outcome": "closed"}, SENDER_CW),
    ("ma.tansiq.referral.expired.v1", {}, SENDER_CW),
    ("ma.tansiq.referral.dismissed.v1", {}, SENDER_CW),  # her colleagues; the recipient is not told
    ("ma.tansiq.referral.withdrawn.v1", {}, SENDER_CW | RECIPIENT_CW),
    ("ma.tansiq.referral.reminder_due.v1", {}, RECIPIENT_CW),
    ("ma.tansiq.referral.escalated.v1", {}, {"s-amal-coord", "s-wafae-coord"}),
    ("ma.tansiq.consent.revoked.v1", {"recipients": ["wafae-marrakech"]}, RECIPIENT_CW),
    ("ma.tansiq.event.reminder_due.v1", {"staff_ids": ["s-nour-events", "s-amal-cw-fr"]},
     {"s-nour-events", "s-amal-cw-fr"}),
    ("ma.tansiq.event.overlap_detected.v1", {"organisers": ["amal-safi", "nour-safi"]},
     {"s-amal-coord", "s-nour-events"}),
    ("ma.tansiq.event.overlap_detected.v2", {"organisers": ["amal-safi", "nour-safi"]},
     {"s-amal-coord", "s-nour-events"}),
    ("ma.tansiq.event.published.v1", {"organiser": "amal-safi"},
     {"s-amal-coord", "s-wafae-coord", "s-wafae-events", "s-nour-events"}),
    ("ma.tansiq.association.registered.v1", {"slug": "nour-safi", "city": "Safi"}, {"s-amal-coord", "s-wafae-coord"}),
]


@pytest.mark.parametrize("type_,data,expected", EXPECTED, ids=[row[0].split(".", 2)[2] for row in EXPECTED])
def test_each_kind_reaches_exactly_the_right_people(session, directory, type_, data, expected):
    items = domain.notify(session, directory, event(type_, **data), NOW)
    assert {item.staff_id for item in items} == expected
    assert {item.kind for item in items} == {rules.RULES[type_].kind}


EVENT_RULES = [row for row in EXPECTED if row[0].startswith("ma.tansiq.event.")]


@pytest.mark.parametrize("type_,data,expected", EVENT_RULES, ids=[row[0].split(".", 2)[2] for row in EVENT_RULES])
def test_an_event_notification_links_to_that_events_own_page(session, directory, type_, data, expected):
    from services.gateway.routes import declared_routes

    sent = event(type_, **data)
    links = {item.link for item in domain.notify(session, directory, sent, NOW)}
    assert links == {f"/calendar/events/{sent.data['event_id']}"}
    [page] = [d for d in declared_routes() if d.method == "GET" and d.url == "/calendar/events/<string:event_id>"]
    assert page.name == "event_details_page" and page.page


def test_every_rule_has_a_contract_and_the_table_covers_the_tested_kinds():
    assert set(rules.RULES) <= set(contracts.all_contracts())
    assert {row[0] for row in EXPECTED} == set(rules.RULES)


def test_urgent_referral_and_escalation_are_urgent_others_not(directory):
    sent = rules.RULES["ma.tansiq.referral.sent.v1"]
    assert sent.urgency({"urgency": "urgent"}) == rules.URGENT
    assert sent.urgency({"urgency": "normal"}) == rules.NORMAL
    assert rules.RULES["ma.tansiq.referral.escalated.v1"].urgency({}) == rules.URGENT
    assert rules.RULES["ma.tansiq.event.published.v1"].urgency({}) == rules.LOW


def test_unknown_staff_in_an_event_reminder_is_skipped_not_fatal(session, directory):
    items = domain.notify(session, directory, event("ma.tansiq.event.reminder_due.v1",
                                                    staff_ids=["s-gone", "s-amal-cw-fr"]), NOW)
    assert [item.staff_id for item in items] == ["s-amal-cw-fr"]


def test_a_type_without_a_rule_notifies_nobody(session, directory):
    assert domain.notify(session, directory, event("ma.tansiq.association.updated.v1"), NOW) == []


def test_a_duplicated_event_notifies_once(session, directory):
    sent = event("ma.tansiq.referral.sent.v1", urgency="urgent")
    first = domain.notify(session, directory, sent, NOW)
    again = domain.notify(session, directory, sent, NOW)
    assert len(first) == 1 and again == []
    assert len(session.scalars(select(InboxItem)).all()) == 1
    assert len(session.scalars(select(Delivery)).all()) == 1  # one email (SMS not enabled by default)


def test_stored_params_hold_no_beneficiary_detail(session, directory):
    sent = event("ma.tansiq.referral.sent.v1", reason="Violence conjugale, Khadija", note="x",
                 shared={"first_name": "Khadija", "phone": "+212611111111"})
    [item] = domain.notify(session, directory, sent, NOW)
    stored = repr(item.subject_params) + repr([d.params for d in session.scalars(select(Delivery))])
    for detail in ("Khadija", "+212611111111", "Violence", "r-41"):
        assert detail not in stored
    assert item.link == "/referrals/r-41"  # the id stays in the app link, behind sign-in


def test_a_batch_is_recorded_as_each_event_alone_would_be_and_a_repeat_in_it_adds_nothing(session, directory):
    cases = [event(type_, **data) for type_, data, _ in EXPECTED]
    plans = [domain.plan(directory, each) for each in cases]
    items = domain.record_many(session, [*plans, plans[1], None], NOW)  # referral.sent twice, a type nobody hears
    assert sorted((item.source_message_id, item.staff_id) for item in items) == sorted(
        (each.id, staff) for each, (_, _, expected) in zip(cases, EXPECTED, strict=True) for staff in expected)
    deliveries = session.scalars(select(Delivery)).all()
    assert len({(d.source_message_id, d.recipient, d.channel) for d in deliveries}) == len(deliveries)
    assert {d.inbox_item_id for d in deliveries if d.channel == "email"} <= {item.id for item in items}
    assert domain.record_many(session, plans, NOW) == []  # delivered again: already told
    assert len(session.scalars(select(InboxItem)).all()) == len(items)
