"""The directory's change feed (services/directory/changes.py) and the read model it feeds (tansiq.readmodel),
on SQLite without a broker: what the directory commits to its outbox is what a read model applies."""

import pytest
from sqlalchemy import select

from services.directory import changes, domain, signin
from services.directory.models import Base
from tansiq import contracts
from tansiq.db import make_engine, session_scope
from tansiq.envelope import parse, utcnow
from tansiq.errors import NotFound
from tansiq.messaging.store import OutboxMessage, messaging_metadata
from tansiq.messaging.topology import DIRECTORY_CHANGES
from tansiq.readmodel import ENDED, LIVE, UNKNOWN, DirectoryModel, csrf_for, digest

SAFI = {"slug": "amal-safi", "name_ar": "جمعية أمل", "name_fr": "Association Amal", "city": "Safi",
        "services": [{"name": "Orientation juridique", "category": "legal_orientation"}]}
FATIMA = {"id": "s-fatima", "association_slug": "amal-safi", "name": "Fatima", "email": "fatima@amal.example",
          "language": "ar", "roles": ["case_worker"]}
HOUR = 3600.0


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'directory.sqlite3'}")
    Base.metadata.create_all(engine)
    messaging_metadata.create_all(engine)
    yield engine
    engine.dispose()


def feed(engine, since=0):
    """[(seq, envelope)] the directory committed to its outbox after `since`, as consumers get them."""
    with session_scope(engine) as session:
        rows = session.scalars(select(OutboxMessage).where(OutboxMessage.seq > since,
                                                           OutboxMessage.type.in_(DIRECTORY_CHANGES))
                               .order_by(OutboxMessage.seq)).all()
        return [(row.seq, contracts.validate(parse(row.body.encode()))) for row in rows]


def change(engine, work):
    with session_scope(engine) as session:
        return work(session)


def fatima_in_the_directory(engine):
    change(engine, lambda s: domain.upsert_association(s, SAFI))
    change(engine, lambda s: domain.upsert_staff(s, FATIMA))
    return change(engine, lambda s: domain.get_staff(s, "s-fatima"))


def test_every_change_is_announced_once_per_transaction_with_a_newer_version(engine):
    change(engine, lambda s: domain.upsert_association(s, SAFI))
    change(engine, lambda s: domain.upsert_staff(s, FATIMA))
    change(engine, lambda s: domain.set_encryption_key(s, "amal-safi", "A" * 43 + "="))
    change(engine, lambda s: domain.upsert_association(s, SAFI))  # nothing changed: nothing announced
    change(engine, lambda s: domain.upsert_association(s, {**SAFI, "services": [
        {"name": "Soutien psychologique", "category": "psychological_support"}]}))  # a service added
    announced = [(envelope.type.split(".")[3], envelope.data["version"]) for _, envelope in feed(engine)]
    assert announced == [("association_changed", 1), ("staff_changed", 1), ("association_changed", 2),
                         ("association_changed", 3)]
    last = feed(engine)[-1][1].data
    assert {s["category"] for s in last["services"]} == {"legal_orientation", "psychological_support"}
    assert last["encryption_key"] == "A" * 43 + "="


def test_a_rolled_back_change_is_never_announced(engine):
    change(engine, lambda s: domain.upsert_association(s, SAFI))
    with pytest.raises(RuntimeError), session_scope(engine) as session:
        domain.upsert_association(session, {**SAFI, "city": "Marrakech"})
        raise RuntimeError("the transaction fails after the change")
    assert [envelope.data["city"] for _, envelope in feed(engine)] == ["Safi"]


def test_the_model_takes_the_newest_version_whatever_the_order_and_repeats(engine):
    change(engine, lambda s: domain.upsert_association(s, SAFI))
    change(engine, lambda s: domain.upsert_association(s, {**SAFI, "name_fr": "Amal (Safi)"}))
    first, second = (envelope for _, envelope in feed(engine))
    model = DirectoryModel()
    assert model.apply(second.type, second.data) is True
    assert model.apply(first.type, first.data) is False  # older: ignored
    assert model.apply(second.type, second.data) is False  # repeated: ignored
    assert model.get_association("amal-safi")["name_fr"] == "Amal (Safi)"
    with pytest.raises(NotFound):
        model.get_association("nobody")


def test_the_model_answers_like_the_directory_rpcs(engine):
    from nameko.testing.services import worker_factory

    from services.directory.service import DirectoryService
    from tansiq.db import Sessions

    change(engine, lambda s: domain.upsert_association(s, SAFI))
    change(engine, lambda s: domain.upsert_association(s, {
        "slug": "wafae", "name_ar": "وفاء", "name_fr": "Wafae", "city": "Marrakech",
        "services": [{"name": "Accueil", "category": "legal_orientation", "status": "inactive"}]}))
    change(engine, lambda s: domain.upsert_staff(s, FATIMA))
    change(engine, lambda s: domain.upsert_staff(s, {**FATIMA, "id": "s-gone", "email": "g@amal.example",
                                                     "active": False}))
    directory = worker_factory(DirectoryService, db=Sessions(engine))
    model = DirectoryModel()
    model.load(directory.snapshot())
    assert model.get_association("amal-safi") == directory.get_association("amal-safi")
    assert model.list_associations() == directory.list_associations()
    assert model.list_associations(category="legal_orientation") == directory.list_associations(
        category="legal_orientation")
    assert model.find_services("legal_orientation") == directory.find_services("legal_orientation")
    assert model.list_staff("amal-safi", role="case_worker") == directory.list_staff("amal-safi", role="case_worker")
    assert model.get_staff("s-fatima") == directory.get_staff("s-fatima")
    assert "version" not in model.get_staff("s-fatima") and "active" not in model.get_staff("s-fatima")
    # The slugs a command checks, without copies of the records: the same as listing them.
    assert model.slugs() == {a["slug"] for a in directory.list_associations()} == {"amal-safi", "wafae"}
    change(engine, lambda s: domain.set_public_key(s, "wafae", "B" * 43 + "="))
    model.load(directory.snapshot())
    assert model.slugs(integration="queue") == {"wafae"}
    assert model.slugs(integration="app") == {"amal-safi"}



def test_what_the_model_answers_and_what_fed_it_are_copies_the_caller_may_change(engine):
    """A caller changing what it was given (a list it appends to, a nested dict it fills) changes nothing in
    the model, nor does the feed's message changed after it was applied: every read and every write copies."""
    change(engine, lambda s: domain.upsert_association(s, SAFI))
    model = DirectoryModel()
    (_, envelope), = feed(engine)
    model.apply(envelope.type, envelope.data)
    before = model.get_association("amal-safi")
    assert before["services"], before

    envelope.data["services"].append({"category": "shelter"})  # the message, after it was applied
    given = model.get_association("amal-safi")
    given["services"][0]["category"] = "changed"
    given["services"].append({"category": "shelter"})
    model.find_services("legal_orientation")[0]["status"] = "changed"
    model.list_associations()[0]["services"].clear()
    assert model.get_association("amal-safi") == before
    assert model.find_services("legal_orientation")[0]["status"] == "active"

    signed_in = {"id": "s-new", "association": "amal-safi", "roles": ["case_worker"], "email": "n@amal.example"}
    model.open_session("t-1", signed_in, created_at=utcnow().timestamp())  # the gateway's own sign-in
    signed_in["roles"].append("coordinator")  # the caller's dict, changed afterwards
    assert model.get_staff("s-new")["roles"] == ["case_worker"]

def test_sessions_end_at_once_and_an_old_opened_never_revives_one(engine):
    staff = fatima_in_the_directory(engine)
    opened = change(engine, lambda s: signin.open_session(s, utcnow(), staff))
    model = DirectoryModel()
    for _, envelope in feed(engine):
        model.apply(envelope.type, envelope.data)
    token_hash, now = digest(opened["token"]), utcnow().timestamp()
    assert model.session(token_hash, now, HOUR, 12 * HOUR)[0] == LIVE
    assert model.session(digest("forged"), now, HOUR, 12 * HOUR) == (UNKNOWN, None)
    assert opened["csrf_token"] == csrf_for(opened["token"])  # derived: nothing secret travels in the feed

    seen = feed(engine)[-1][0]
    change(engine, lambda s: signin.sign_out(s, utcnow(), opened["token"]))
    [(_, revoked)] = feed(engine, seen)
    assert opened["token"] not in str(revoked.data) and revoked.data["token_hashes"] == [token_hash]
    model.apply(revoked.type, revoked.data)
    assert model.session(token_hash, now, HOUR, 12 * HOUR)[0] == ENDED
    [(_, opened_again)] = [(seq, e) for seq, e in feed(engine) if e.type.endswith("session_opened.v1")]
    assert model.apply(opened_again.type, opened_again.data) is False  # a late or repeated `opened`
    assert model.session(token_hash, now, HOUR, 12 * HOUR)[0] == ENDED


def test_a_deactivation_and_a_password_change_end_her_sessions_through_the_feed(engine):
    staff = fatima_in_the_directory(engine)
    first = change(engine, lambda s: signin.open_session(s, utcnow(), staff))
    second = change(engine, lambda s: signin.open_session(s, utcnow(), staff))
    model, now = DirectoryModel(), utcnow().timestamp()
    for _, envelope in feed(engine):
        model.apply(envelope.type, envelope.data)
    seen = feed(engine)[-1][0]
    change(engine, lambda s: signin.revoke_all(s, utcnow(), "s-fatima"))  # what a password change does
    for _, envelope in feed(engine, seen):
        model.apply(envelope.type, envelope.data)
    assert [model.session(digest(o["token"]), now, HOUR, 12 * HOUR)[0] for o in (first, second)] == [ENDED] * 2

    third = change(engine, lambda s: signin.open_session(s, utcnow(), staff))
    seen = feed(engine)[-1][0]
    change(engine, lambda s: signin.deactivate(s, utcnow(), domain.get_staff(s, "s-fatima")))
    for _, envelope in feed(engine, 0):
        model.apply(envelope.type, envelope.data)
    assert model.session(digest(third["token"]), now, HOUR, 12 * HOUR)[0] == ENDED
    assert model.staff_active("s-fatima") is False
    assert {e.type.split(".")[3] for _, e in feed(engine, seen)} == {"staff_changed", "sessions_revoked"}


def test_idle_and_absolute_lifetimes_are_kept_by_the_model():
    model = DirectoryModel()
    model.apply("ma.tansiq.directory.staff_changed.v1", {
        "version": 1, "id": "s-1", "association": "amal-safi", "name": "F", "email": "f@x.example", "phone": "",
        "language": "fr", "roles": [], "active": True})
    model.open_session("a" * 64, {"id": "s-1"}, 1000.0, now=1000.0)
    model.open_session("b" * 64, {"id": "s-1"}, 1000.0, now=1000.0)
    assert model.session("a" * 64, 1000.0 + 0.9 * HOUR, HOUR, 2 * HOUR)[0] == LIVE  # touched
    assert model.session("a" * 64, 1000.0 + 1.8 * HOUR, HOUR, 2 * HOUR)[0] == LIVE
    assert model.session("a" * 64, 1000.0 + 2.1 * HOUR, HOUR, 2 * HOUR)[0] == ENDED  # absolute
    assert model.session("b" * 64, 1000.0 + 1.1 * HOUR, HOUR, 2 * HOUR)[0] == ENDED  # idle
    model.forget_ended(1000.0 + 3 * HOUR, 2 * HOUR)
    assert model.sessions == {}


def test_a_snapshot_ends_the_sessions_it_no_longer_lists(engine):
    staff = fatima_in_the_directory(engine)
    kept = change(engine, lambda s: signin.open_session(s, utcnow(), staff))
    lost = change(engine, lambda s: signin.open_session(s, utcnow(), staff))
    model = DirectoryModel()
    with session_scope(engine) as session:
        model.load(changes.snapshot(session, utcnow(), with_sessions=True))
    # Signed out while this process was cut from the broker: the change never reached it.
    change(engine, lambda s: signin.sign_out(s, utcnow(), lost["token"]))
    with session_scope(engine) as session:
        model.load(changes.snapshot(session, utcnow(), with_sessions=True))
    now = utcnow().timestamp()
    assert model.session(digest(kept["token"]), now, HOUR, 12 * HOUR)[0] == LIVE
    assert model.session(digest(lost["token"]), now, HOUR, 12 * HOUR)[0] == ENDED


def test_the_feed_types_are_one_list_with_a_contract_each_and_a_sink():
    from tansiq.messaging import topology

    assert set(DIRECTORY_CHANGES) == {changes.ASSOCIATION_CHANGED, changes.STAFF_CHANGED, changes.SESSION_OPENED,
                                      changes.SESSIONS_REVOKED}
    assert all(contracts.get(type_).partners == "none" for type_ in DIRECTORY_CHANGES)  # never for partners
    sink = next(q for q in topology.network_queues() if q.name == topology.DIRECTORY_CHANGES_SINK)
    assert {key for _, key in sink.bindings} == set(DIRECTORY_CHANGES)
    assert sink.arguments["x-message-ttl"] and sink.arguments["x-max-length"]


def test_a_request_waits_for_a_session_the_feed_has_not_announced_yet_and_only_so_long(engine):
    """A session opened on another gateway: its request waits for the feed (never for the directory)."""
    import eventlet

    staff = fatima_in_the_directory(engine)
    opened = change(engine, lambda s: signin.open_session(s, utcnow(), staff))
    model, token_hash = DirectoryModel(), digest(opened["token"])
    for _, envelope in feed(engine):
        if not envelope.type.endswith("session_opened.v1"):
            model.apply(envelope.type, envelope.data)
    [announced] = [e for _, e in feed(engine) if e.type.endswith("session_opened.v1")]
    waiting = eventlet.spawn(model.await_session, token_hash, 30)
    eventlet.sleep(0)
    assert model.awaiting() == 1
    model.apply(announced.type, announced.data)  # the feed brings it: the waiting request goes on at once
    assert waiting.wait() is True and model.awaiting() == 0
    assert model.session(token_hash, utcnow().timestamp(), HOUR, 12 * HOUR)[0] == LIVE

    assert model.await_session(digest("forged"), 0.05) is False  # never announced: refused after the grace
    assert model.awaiting() == 0 and digest("forged") not in model.sessions


def test_partner_signing_keys_come_from_the_read_model_and_an_unknown_sender_gets_one_retry(engine):
    """PartnerQueue asks the read model, never the directory; an association not (yet) in it is retried once."""
    from types import SimpleNamespace

    from eventlet.event import Event

    from tansiq.errors import NotReady
    from tansiq.messaging.consumer import PartnerQueue, Unavailable

    change(engine, lambda s: domain.upsert_association(s, SAFI))
    change(engine, lambda s: domain.set_public_key(s, "amal-safi", "a2V5LW9mLWFtYWw="))
    queue = PartnerQueue()
    queue.feed = SimpleNamespace(model=DirectoryModel(), ready=Event())
    with pytest.raises(NotReady):  # no snapshot yet: the message waits, spending no attempt
        queue.public_key_for("amal-safi")
    for _, envelope in feed(engine):
        queue.feed.model.apply(envelope.type, envelope.data)
    queue.feed.ready.send(True)
    assert queue.public_key_for("amal-safi") == "a2V5LW9mLWFtYWw="
    with pytest.raises(Unavailable):  # perhaps registered a moment ago: once more after the retry delay
        queue.public_key_for("ghost-assoc", first_attempt=True)
    assert queue.public_key_for("ghost-assoc") is None  # then refused: unknown_association


@pytest.mark.parametrize("provider_first", [True, False], ids=["provider-first", "feed-first"])
def test_the_gateway_keeps_its_sessions_in_whatever_order_nameko_sets_extensions_up(monkeypatch, provider_first):
    """nameko sets a container's extensions up in no fixed order (a set): the session provider's wish must
    survive the feed's own setup, or the gateway's snapshot and queue leave sessions out."""
    import contextlib
    import types

    from tansiq import readmodel

    monkeypatch.setattr(readmodel, "connect", lambda uri: contextlib.nullcontext())  # no broker at this edge
    monkeypatch.setattr(readmodel, "declare", lambda connection: None)
    feed = readmodel.DirectoryFeed()
    feed.container = types.SimpleNamespace(config={"AMQP_URI": "amqp://unused"}, service_name="gateway")
    provider = readmodel.DirectoryView(sessions=True)
    provider.feed = feed
    steps = [provider.setup, feed.setup] if provider_first else [feed.setup, provider.setup]
    for step in steps:
        step()
    assert feed.with_sessions and set(feed.types()) == set(DIRECTORY_CHANGES)
    assert not readmodel.DirectoryFeed().with_sessions  # another service's feed leaves them out
