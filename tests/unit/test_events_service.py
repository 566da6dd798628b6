"""The events service's entrypoints without a broker: real SQLite, the directory faked at the edge."""

import pytest
from actors import signed, verifier  # tests/actors.py
from marshmallow import ValidationError
from nameko.testing.services import worker_factory

from services.events.models import Base
from services.events.service import EventsService
from tansiq.db import Sessions, make_engine
from tansiq.errors import DomainError, Forbidden, InvalidActor, NotFound
from tansiq.messaging.store import messaging_metadata

COORDINATOR = {"id": "s-1", "association": "amal-safi", "roles": ["coordinator"], "language": "fr", "name": "K"}
AS_COORDINATOR = signed(COORDINATOR, "events")
NOUR_STAFF = signed({"id": "s-7", "association": "nour-safi", "roles": ["case_worker"]}, "events")


class FakeDirectory:
    associations = {"amal-safi", "nour-safi"}

    def list_associations(self):
        return [{"slug": slug} for slug in sorted(self.associations)]

    def slugs(self, integration=None):
        return set() if integration else set(self.associations)

    def get_association(self, slug):
        if slug not in self.associations:
            raise NotFound(f"no association {slug}")
        return {"slug": slug}


@pytest.fixture
def service(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'events.db'}")
    Base.metadata.create_all(engine)
    messaging_metadata.create_all(engine)
    yield worker_factory(EventsService, db=Sessions(engine), directory=FakeDirectory(),
                         config={"REMINDER_HORIZON_HOURS": 48}, identity=verifier("events"))
    engine.dispose()


def payload(**values):
    return {"title": "Salon de l'artisanat", "kind": "exhibition", "organiser": "amal-safi", "city": "Safi",
            "start": "2027-02-20T10:00", "end": "2027-02-20T18:00", "status": "published", "visibility": "public",
            "capacity": 1, **values}


def test_create_list_register_and_feed(service):
    created = service.create_event(payload(), actor=AS_COORDINATOR)
    event = created["event"]
    assert (event["starts_at"], event["start_local"]) == ("2027-02-20T10:00:00+00:00", "2027-02-20T10:00:00+00:00")
    [occurrence] = service.list_occurrences("2027-02-01", "2027-03-01", city="safi")
    assert occurrence["event_id"] == event["id"]
    assert service.list_occurrences("2027-02-01", "2027-03-01", kind="training") == []
    stand = service.register(event["id"], {"association": "nour-safi", "name": "Coopérative", "products": ["tapis"]},
                             actor=NOUR_STAFF)
    assert stand["kind"] == "stand"
    with pytest.raises(DomainError) as caught:
        service.register(event["id"], {"association": "amal-safi", "name": "Autre", "products": ["poterie"]},
                         actor=AS_COORDINATOR)
    assert caught.value.code == "event_full"
    # The organisers see who registered; the public does not.
    assert service.get_event(event["id"], actor=AS_COORDINATOR)["registrations"][0]["name"] == "Coopérative"
    assert "registrations" not in service.get_event(event["id"])
    assert "BEGIN:VCALENDAR" in service.ical_feed("city", "Safi")


def test_refusals(service):
    with pytest.raises(ValidationError):
        service.create_event(payload(start="not a date"), actor=AS_COORDINATOR)
    with pytest.raises(Forbidden):  # nobody edits for an association that is not hers
        service.create_event(payload(organiser="ghost"), actor=AS_COORDINATOR)
    for untrusted in (None, COORDINATOR, signed(COORDINATOR, "intake")):  # no trusted caller without an assertion
        with pytest.raises(InvalidActor):
            service.create_event(payload(), actor=untrusted)
    with pytest.raises(Forbidden):
        service.create_event(payload(organiser="nour-safi"), actor=AS_COORDINATOR)
    with pytest.raises(Forbidden):
        service.create_event(payload(), actor=signed({**COORDINATOR, "roles": ["case_worker"]}, "events"))
    network_only = service.create_event(payload(visibility="network"), actor=AS_COORDINATOR)["event"]
    with pytest.raises(NotFound):
        service.get_event(network_only["id"])  # not for the public
    assert service.get_event(network_only["id"], audience="network")["id"] == network_only["id"]
    assert service.list_occurrences("2027-02-01", "2027-03-01") == []


def test_update_and_cancel(service):
    event = service.create_event(payload(rrule="FREQ=DAILY;COUNT=3"), actor=AS_COORDINATOR)["event"]
    moved = service.move_occurrence(event["id"], {"recurrence_id": "2027-02-21T10:00", "start": "2027-02-24T10:00"},
                                    actor=AS_COORDINATOR)
    assert moved["event"]["moved"][0]["recurrence_id"] == "2027-02-21T10:00:00+00:00"
    updated = service.update_event(event["id"], {"title": "Salon d'hiver"}, actor=AS_COORDINATOR)["event"]
    assert updated["title"] == "Salon d'hiver" and updated["sequence"] == 2
    with pytest.raises(Forbidden):  # a case worker does not edit the calendar
        service.cancel_event(event["id"], actor=NOUR_STAFF)
    assert service.cancel_event(event["id"], actor=AS_COORDINATOR)["status"] == "cancelled"
    assert "STATUS:CANCELLED" in service.ical_feed("event", event["id"])


def test_partner_event_applied_once_per_message(service):
    from tansiq import contracts

    envelope = contracts.make("ma.tansiq.event.published.v1", "nour-safi", {
        "event_id": "np-1", "organiser": "nour-safi", "title": "Foire", "kind": "fair", "city": "Safi",
        "starts_at": "2027-02-20T09:00:00+00:00", "ends_at": "2027-02-20T17:00:00+00:00", "visibility": "public"})
    service.on_partner_event(contracts.validate(envelope))
    service.on_partner_event(contracts.validate(envelope))  # redelivery: no second effect
    occurrences = service.list_occurrences("2027-02-01", "2027-03-01")
    assert [occurrence["title"] for occurrence in occurrences] == ["Foire"]


def test_the_horizon_timer_stores_events_older_than_the_table_in_batches(service, monkeypatch):
    from sqlalchemy import func, select, update

    from services.events import occurrences
    from services.events.models import Event, StoredOccurrence

    for day in range(1, 6):
        service.create_event(payload(start=f"2027-03-0{day}T10:00", end=f"2027-03-0{day}T12:00",
                                     rrule="FREQ=WEEKLY;COUNT=3"), actor=AS_COORDINATOR, force=True)
    listed = service.list_occurrences_page("2027-03-01", "2027-04-01", limit=100)
    with service.db.session() as session:  # as the migration leaves every event
        session.execute(StoredOccurrence.__table__.delete())
        session.execute(update(Event).values(occurrences_until=None))
    monkeypatch.setattr(occurrences, "EXTEND_BATCH", 2)  # several units of work
    assert service.list_occurrences_page("2027-03-01", "2027-04-01", limit=100) == listed  # expanded live
    units, real_session = [], service.db.session
    monkeypatch.setattr(service.db, "session", lambda: units.append(1) or real_session())
    service.extend_occurrences()
    assert len(units) == 3  # 2 + 2 + 1 events
    with service.db.session() as session:
        assert session.scalar(select(func.count()).select_from(StoredOccurrence)) == 15
        assert session.scalar(select(func.count()).where(Event.occurrences_until.is_(None))) == 0
    assert service.list_occurrences_page("2027-03-01", "2027-04-01", limit=100) == listed
    assert listed["next"] is None and listed["truncated"] is False and len(listed["items"]) == 15
