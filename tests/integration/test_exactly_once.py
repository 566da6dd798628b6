"""Exactly-once commands through the real gateway, RabbitMQ and intake (issue 12, item 1).

A stream of registrations with client retries under one Idempotency-Key each, while intake is
SIGKILLed and restarted, or while every broker connection is closed (a broker restart as clients
see it): every registration exists exactly once. With intake down, the gateway
answers 503 with Retry-After within its RPC timeout, and the request does not run later behind
the user's back: after the restart, the retried key runs the command once.
"""

import threading
import time
import uuid

import faults
import pytest
import requests
from harness import Network, eventually
from sqlalchemy import select

from services.intake.models import Beneficiary
from tansiq import config
from tansiq.db import make_engine, session_scope

RPC_TIMEOUT_S = 3
CASE_WORKER = "fatima@amal-safi.example"
STREAM = 24
CLIENTS = 3


@pytest.fixture(scope="module")
def network():
    network = Network()
    network.env["TANSIQ_RPC_TIMEOUT_S"] = str(RPC_TIMEOUT_S)
    try:
        network.migrate()
        network.seed()
        network.start("directory", "intake", "gateway")
        yield network
    finally:
        network.close()


def stored(network, service, statement):
    """What `statement` reads from `service`'s database now."""
    engine = make_engine(config.load(service, environ=network.env)["DB_URI"])
    try:
        with session_scope(engine) as session:
            return session.scalars(statement).all()
    finally:
        engine.dispose()


def beneficiaries(network):
    return set(stored(network, "intake", select(Beneficiary.id)))


def register(session, key, name):
    return session.post(f"{session.web}/api/beneficiaries", json={"first_name": name, "needs": ["shelter"]},
                        headers={"Idempotency-Key": key}, timeout=RPC_TIMEOUT_S * 5)


def signed_in(network):
    """Signed in as a client would be: a sign-in answered 503 (the directory slower than this test's short
    RPC timeout on a loaded machine) is tried again."""
    def attempt():
        try:
            return network.login(CASE_WORKER)
        except requests.HTTPError as error:
            if error.response.status_code != 503:
                raise
            return None
    session = eventually(attempt, timeout=RPC_TIMEOUT_S * 20, message="a sign-in")
    session.web = network.web
    return session


def register_until_done(session, key, name, retries):
    """What a client does: the same request, with the same key, until it gets an answer."""
    while True:
        try:
            response = register(session, key, name)
        except requests.ConnectionError:
            response = None
        if response is not None and response.status_code == 201:
            return response.json()["id"]
        assert response is None or response.status_code in (500, 503), response.text
        retries.append(response.status_code if response is not None else "connection")
        time.sleep(0.2)  # a client's backoff before retrying


def test_a_repeat_through_the_gateway_gets_the_first_result(network):
    session, key = signed_in(network), uuid.uuid4().hex
    before = beneficiaries(network)
    first = register(session, key, "Khadija")
    again = register(session, key, "Khadija")
    assert first.status_code == again.status_code == 201 and again.json() == first.json()
    assert beneficiaries(network) - before == {first.json()["id"]}

    reused = register(session, key, "Fatima")
    assert reused.status_code == 409 and reused.json()["error"]["code"] == "idempotency_key_reused"
    assert beneficiaries(network) - before == {first.json()["id"]}


def kill_intake(network, retries):
    network.kill("intake")  # requests in flight are redelivered to the next intake, which may have run them
    eventually(lambda: retries, timeout=RPC_TIMEOUT_S * 10)  # and clients retry what timed out meanwhile
    network.start("intake")


def restart_the_broker(network, retries):
    """What a broker restart looks like to every client: all the network's connections closed at once."""
    # The management API lists a new connection a few seconds late: close until it has listed some.
    eventually(lambda: faults.close_connections(network.vhost, "fault: broker restart") > 0,
               message="the network's connections closed")


@pytest.mark.parametrize("fault", [kill_intake, restart_the_broker], ids=["sigkill", "broker"])
def test_a_fault_in_a_stream_of_creations_duplicates_nothing_and_loses_nothing(network, fault):
    before = beneficiaries(network)
    run = uuid.uuid4().hex[:8]
    answers, retries, done = {}, [], threading.Semaphore(0)

    def client(indexes):
        session = signed_in(network)
        for index in indexes:
            answers[index] = register_until_done(session, f"{run}-{index}", f"Stream {run} {index}", retries)
            done.release()

    threads = [threading.Thread(target=client, args=(range(n, STREAM, CLIENTS),)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for _ in range(STREAM // 3):  # a third of the stream through, the others in flight: the fault
        done.acquire()
    fault(network, retries)
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads)

    created = beneficiaries(network) - before
    assert len(answers) == STREAM and len(set(answers.values())) == STREAM  # none lost, each its own record
    assert created == set(answers.values())  # and not one more: nothing ran twice
    session = signed_in(network)  # each key, asked again, answers its first result
    assert all(register(session, f"{run}-{i}", f"Stream {run} {i}").json()["id"] == answers[i] for i in range(STREAM))
    assert beneficiaries(network) - before == created


def test_a_service_down_gets_503_and_nothing_runs_behind_the_users_back(network):
    session, key = signed_in(network), uuid.uuid4().hex
    before = beneficiaries(network)
    network.kill("intake")
    try:
        down = register(session, key, "Nadia")  # the client waits far longer than the gateway's timeout
        assert down.status_code == 503 and int(down.headers["Retry-After"]) > 0
        assert down.json()["error"]["code"] == "service_unavailable"
        # The request expired in the broker (RPC_TIMEOUT_S): nothing is left for intake to run on restart.
        eventually(lambda: network.queue_depth("rpc-intake") == 0, timeout=RPC_TIMEOUT_S * 10)
    finally:
        network.start("intake")
    assert beneficiaries(network) == before

    retried = register(session, key, "Nadia")  # the user's retry runs it, once
    assert retried.status_code == 201 and register(session, key, "Nadia").json() == retried.json()
    assert beneficiaries(network) - before == {retried.json()["id"]}


@pytest.fixture(scope="module")
def referring_network():
    network = Network()
    network.env["TANSIQ_RPC_TIMEOUT_S"] = str(RPC_TIMEOUT_S * 3)
    network.env["TANSIQ_REFERRALS_RPC_TIMEOUT_S"] = str(RPC_TIMEOUT_S)
    try:
        network.migrate()
        network.seed()
        network.start("directory", "intake", "referrals", "gateway")
        yield network
    finally:
        network.close()


def consented_referral(session, web):
    """Samira registered, her consent to share her first name with Wafae recorded: (her id, the referral's body)."""
    beneficiary = session.post(f"{web}/api/beneficiaries", json={"first_name": "Samira", "needs": ["shelter"]},
                               timeout=30).json()["id"]
    assert session.post(f"{web}/api/beneficiaries/{beneficiary}/consents", json={
        "purpose": "legal_orientation", "fields": ["first_name"], "recipient_association": "wafae-marrakech"},
        timeout=30).status_code == 201
    return beneficiary, {"beneficiary_id": beneficiary, "to_association": "wafae-marrakech", "reason": "Avocate",
                         "service_category": "legal_orientation", "urgency": "normal", "fields": ["first_name"]}


def test_a_referral_while_intake_is_down_gets_503_from_referrals_and_nothing_runs_later(referring_network):
    """The second hop is timed too (tansiq.calls): referrals gives up on intake before the gateway gives up on
    referrals, so the user hears which service is down; its request to intake expires, so no data is handed
    out and no referral made behind her back; the retry with the same key makes the referral once."""
    from services.intake.models import Disclosure
    from services.referrals.models import Referral

    network = referring_network
    session, web = network.login(CASE_WORKER), network.web
    beneficiary, body = consented_referral(session, web)
    key = uuid.uuid4().hex
    network.kill("intake")
    try:
        started = time.monotonic()
        down = session.post(f"{web}/api/referrals", json=body, headers={"Idempotency-Key": key}, timeout=60)
        assert down.status_code == 503 and int(down.headers["Retry-After"]) > 0
        # referrals' own timeout, not the gateway's; Retry-After a number in the body too, as from one hop
        assert down.json()["error"]["details"] == {"service": "intake", "retry_after": int(down.headers["Retry-After"])}
        assert time.monotonic() - started < RPC_TIMEOUT_S * 3
        eventually(lambda: network.queue_depth("rpc-intake") == 0, timeout=RPC_TIMEOUT_S * 10)
    finally:
        network.start("intake")
    time.sleep(RPC_TIMEOUT_S)  # what intake would run late, it would run now
    assert stored(network, "intake", select(Disclosure).filter_by(beneficiary_id=beneficiary)) == []
    assert stored(network, "referrals", select(Referral).filter_by(beneficiary_id=beneficiary)) == []

    retried = session.post(f"{web}/api/referrals", json=body, headers={"Idempotency-Key": key}, timeout=60)
    assert retried.status_code == 201, retried.text
    assert stored(network, "referrals", select(Referral.id).filter_by(beneficiary_id=beneficiary)) == [
        retried.json()["id"]]


def test_a_share_intake_made_after_referrals_gave_up_is_the_one_the_retry_uses(referring_network):
    """Intake hands out her data late, after referrals gave up on it and the user was answered 503 (or after
    referrals died before committing the referral). The retry with the same key makes the referral from that
    first share: one disclosure in her record, not two, and the recipient opens what it was sealed with."""
    import sqlite3

    from services.intake.models import Disclosure

    network = referring_network
    session, web = network.login(CASE_WORKER), network.web
    beneficiary, body = consented_referral(session, web)
    key = uuid.uuid4().hex

    def disclosures():
        return stored(network, "intake", select(Disclosure.id).filter_by(beneficiary_id=beneficiary))

    # Intake's database held by another writer: the share waits for it past referrals' timeout.
    database = config.load("intake", environ=network.env)["DB_URI"].removeprefix("sqlite:///")
    writer = sqlite3.connect(database, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        late = session.post(f"{web}/api/referrals", json=body, headers={"Idempotency-Key": key}, timeout=60)
        assert late.status_code == 503, late.text
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    eventually(disclosures, message="intake made the share after referrals gave up")

    retried = session.post(f"{web}/api/referrals", json=body, headers={"Idempotency-Key": key}, timeout=60)
    assert retried.status_code == 201, retried.text
    assert len(disclosures()) == 1
    naima = network.login("naima@wafae.example")
    seen = naima.get(f"{web}/api/referrals/{retried.json()['id']}", timeout=30)
    assert seen.status_code == 200 and seen.json()["shared"] == {"first_name": "Samira"}, seen.text
