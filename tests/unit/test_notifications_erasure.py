"""Her erasure and what notifications was told of her, in whatever order the two arrive.

Messages about a woman can come after her erasure: a retry, or an event held while the service's read model
of the directory loads (tansiq.messaging.consumer: erasures are never held). Nobody is told of her then, and
a batch telling of her while her erasure is being noted is taken back once it commits. Through the
service's own handlers (nameko's worker_factory), on SQLite and PostgreSQL."""

import pytest
from fixtures.databases import BACKENDS, throwaway_engine
from fixtures.notifications import directory  # noqa: F401 - fixture
from nameko.testing.services import worker_factory
from sqlalchemy import func, select

from services.notifications import domain
from services.notifications.models import Delivery, InboxItem
from services.notifications.service import NotificationsService
from tansiq import contracts
from tansiq.db import Sessions, session_scope
from tansiq.messaging.store import messaging_metadata

REGISTERED, ERASED = "ma.tansiq.beneficiary.registered.v1", "ma.tansiq.beneficiary.erased.v1"


@pytest.fixture(params=BACKENDS)
def engine(request, tmp_path):
    from services.notifications.models import Base

    def tables(engine):
        Base.metadata.create_all(engine)
        messaging_metadata.create_all(engine)

    with throwaway_engine(request.param, tmp_path, tables, "notifications") as engine:
        yield engine


@pytest.fixture
def service(engine, directory):  # noqa: F811 - the fixture imported above
    return worker_factory(NotificationsService, db=Sessions(engine), directory=directory, config={})


def registered(beneficiary_id):
    data = {**contracts.get(REGISTERED).example, "beneficiary_id": beneficiary_id, "association": "amal-safi"}
    return contracts.validate(contracts.make(REGISTERED, "intake", data))


def erased(beneficiary_id):
    data = {**contracts.get(ERASED).example, "beneficiary_id": beneficiary_id}
    return contracts.validate(contracts.make(ERASED, "intake", data))


def told_of(engine, beneficiary_id):
    """(inbox items, deliveries) about her."""
    with session_scope(engine) as session:
        items = session.scalars(select(InboxItem.id).where(InboxItem.link == f"/beneficiaries/{beneficiary_id}")).all()
        deliveries = session.scalar(select(func.count()).select_from(Delivery).where(Delivery.inbox_item_id.in_(
            items))) if items else 0
    return len(items), deliveries


def test_an_event_about_her_heard_after_her_erasure_tells_nobody_and_others_still_are(engine, service):
    service.on_beneficiary_erased(erased("b-gone"))
    service.on_events([registered("b-gone"), registered("b-here")])  # one batch: late for her, on time for another
    assert told_of(engine, "b-gone") == (0, 0)
    items, deliveries = told_of(engine, "b-here")
    assert items >= 2 and deliveries >= 1  # Safi's case workers, and the email of those who get one


@pytest.fixture
def pg_service(directory, tmp_path):  # noqa: F811 - the fixture imported above
    from services.notifications.models import Base

    def tables(engine):
        Base.metadata.create_all(engine)
        messaging_metadata.create_all(engine)

    with throwaway_engine("postgres", tmp_path, tables, "notifications") as engine:
        yield engine, worker_factory(NotificationsService, db=Sessions(engine), directory=directory, config={})


@pytest.mark.postgres
def test_her_erasure_noted_while_a_batch_told_of_her_is_taken_back_once_the_batch_commits(pg_service, monkeypatch):
    """The erasure handler runs whole (its note, then its forgetting) after the batch looked for erasures and
    before it wrote: the forgetting saw nothing of the batch yet, so the batch, once committed, forgets her
    itself. PostgreSQL only: on SQLite the units of work of a process take turns (tansiq.db), and the batch
    already holds the write lock here."""
    engine, service = pg_service
    record_many = domain.record_many

    def erased_meanwhile(session, plans, now, **kwargs):
        service.on_beneficiary_erased(erased("b-racing"))
        return record_many(session, plans, now, **kwargs)

    monkeypatch.setattr(domain, "record_many", erased_meanwhile)
    service.on_events([registered("b-racing")])
    assert told_of(engine, "b-racing") == (0, 0)


@pytest.mark.postgres
def test_a_batch_delivered_again_after_a_crash_before_its_second_look_still_forgets_her(pg_service, monkeypatch):
    """As above, and the process dies between the batch's commit and its look for erasures noted meanwhile:
    the batch comes again with nothing new in it (its inbox says so), and the look must still find her."""
    engine, service = pg_service
    record_many = domain.record_many

    def erased_meanwhile(session, plans, now, **kwargs):
        service.on_beneficiary_erased(erased("b-crash"))
        return record_many(session, plans, now, **kwargs)

    def died(women):
        raise RuntimeError("the process died after the batch's commit")  # before its second look

    monkeypatch.setattr(domain, "record_many", erased_meanwhile)
    monkeypatch.setattr(service, "_forget_erased_meanwhile", died)
    batch = [registered("b-crash")]
    with pytest.raises(RuntimeError):
        service.on_events(batch)
    assert told_of(engine, "b-crash")[0] > 0  # told, and not taken back yet
    monkeypatch.setattr(domain, "record_many", record_many)
    monkeypatch.delattr(service, "_forget_erased_meanwhile")  # the service's own again
    service.on_events(batch)  # delivered again
    assert told_of(engine, "b-crash") == (0, 0)


def test_an_erasure_heard_twice_and_an_event_about_her_heard_twice_tell_nobody(engine, service):
    service.on_beneficiary_erased(erased("b-twice"))
    service.on_beneficiary_erased(erased("b-twice"))  # redelivered: the note stands, nothing fails
    service.on_events([registered("b-twice")])
    service.on_events([registered("b-twice")])
    assert told_of(engine, "b-twice") == (0, 0)
