"""`make faults`: a stream of partner referrals and partner events through the real broker while
services are SIGKILLed in turn, every broker connection of the network is closed (what a broker
restart looks like to clients) and the database sessions are terminated; then reconcile: every
message the broker accepted has its effect exactly once, none was refused, none is dead-lettered.

Here it runs a CI-sized slice (a few dozen messages, one fault of each kind). `make faults` sets
TANSIQ_FAULTS=full: hundreds of messages, every service killed in turn, and the figures written
to docs/reliability.md.
"""

import json
import os
import re
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import faults
import pika
import pytest
from harness import BROKER_HOST, ROOT, Network, eventually, postgres_available
from sqlalchemy import func, select

from tansiq import config, ops, signing
from tansiq.broker_admin import BrokerAdmin
from tansiq.db import make_engine, session_scope
from tansiq.envelope import parse
from tansiq.messaging import topology
from tansiq.messaging.store import PENDING, OutboxMessage
from tansiq.partner import PartnerClient

FULL = os.environ.get("TANSIQ_FAULTS") == "full"
SERVICES = ("directory", "referrals", "events")
RECIPIENT = "wafae-marrakech"  # a demo association using the app
REPORT = ROOT / "docs" / "reliability.md"
BEGIN, END = "<!-- faults:begin -->", "<!-- faults:end -->"


def plan(backend):
    """The faults, in order: every service killed in turn, the broker 'restarted', the DB sessions cut."""
    database = [("database", None)] if backend == "postgres" else []
    one_round = [("kill", "referrals"), ("broker", None), *database, ("kill", "events"), ("kill", "directory"),
                 ("broker", None), *database]
    return one_round * 3 if FULL else one_round


def add_partner_association(network, slug):
    from services.directory import domain

    engine = make_engine(config.load("directory", environ=network.env)["DB_URI"])
    with session_scope(engine) as session:
        domain.upsert_association(session, {
            "slug": slug, "name_ar": "جمعية تجريبية", "name_fr": "Partenaire des pannes", "city": "Agadir",
            "address": "Agadir", "phone": "+212528000099", "email": "pannes@example.org",
            "services": [{"name": "Soutien psychologique", "category": "psychological_support",
                          "languages": ["ar", "fr"]}]})
    engine.dispose()


@pytest.fixture
def partner_network(broker_admin):
    backend = "postgres" if postgres_available() else "sqlite"
    network = Network(backend=backend)
    admin = BrokerAdmin(vhost=network.vhost)
    slug = f"pannes-{network.id}"
    try:
        network.migrate()
        network.seed()
        add_partner_association(network, slug)
        admin.declare_topology()
        password = admin.add_partner(slug)["password"]
        key = signing.generate_key()
        network.start("directory")
        with network.rpc() as rpc:
            rpc.directory.set_public_key(slug, signing.public_key_b64(key))
        network.start("intake", "referrals", "events")  # referrals waits for intake, which it calls
        uri = f"amqp://{slug}:{quote(password, safe='')}@{BROKER_HOST}:5672/{quote(network.vhost, safe='')}"
        client = PartnerClient(uri, slug, key, network.var / "partner-outbox.sqlite3")
        yield network, client, uri
    finally:
        admin.revoke_partner(slug, delete_queue=True)
        network.close()


def referral(client, n):
    return {"referral_id": f"{client.slug}-r{n}", "from_association": client.slug, "to_association": RECIPIENT,
            "service_category": "psychological_support", "urgency": "normal", "reason": f"Suivi {n}",
            "consent_id": f"{client.slug}-c{n}", "shared": {"first_name": "Zineb", "language": "fr"}}


def calendar_event(client, n):
    start = datetime(2027, 5, 3, 9, tzinfo=timezone.utc) + timedelta(days=n)  # one a day: no overlaps to report
    return {"event_id": f"e{n}", "organiser": client.slug, "title": f"Atelier {n}", "kind": "training",
            "city": "Agadir", "starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=2)).isoformat(),
            "visibility": "public", "status": "published", "sequence": 0}


def inject(network, fault, target):
    """Apply one fault; returns a short description of what was done."""
    if fault == "kill":
        network.kill(target)  # SIGKILL: no goodbye, unacked deliveries go back to the queue
        network.start(target, wait=False)
        return f"SIGKILL {target}, started again"
    if fault == "broker":
        return f"closed {faults.close_connections(network.vhost, 'fault: broker restart')} broker connections"
    return f"terminated {faults.kill_database_connections(network.pg_databases)} database sessions"


def rows(network, service, statement):
    engine = make_engine(config.load(service, environ=network.env)["DB_URI"])
    try:
        with session_scope(engine) as session:
            return session.execute(statement).all()
    finally:
        engine.dispose()


def rejections(uri, slug):
    connection = pika.BlockingConnection(pika.URLParameters(uri))
    found = []
    try:
        channel = connection.channel()
        while True:
            method, _, body = channel.basic_get(topology.partner_queue(slug), auto_ack=True)
            if method is None:
                return found
            envelope = parse(body)
            if envelope.type == "ma.tansiq.message.rejected.v1":
                found.append(envelope.data)
    finally:
        connection.close()


@pytest.mark.timeout(1800 if FULL else 420)
def test_every_accepted_message_has_its_effect_once_through_kills_and_resets(partner_network):
    network, client, uri = partner_network
    per_kind = 300 if FULL else 20
    schedule = plan(network.backend)
    every = max(1, 2 * per_kind // (len(schedule) + 1))  # messages between two faults
    stop = threading.Event()
    sender = threading.Thread(target=client.run_outbox, args=(stop, 0.2), daemon=True)
    sender.start()
    began = time.monotonic()
    timeline, sent = [], {"referral": [], "event": []}
    try:
        for n in range(per_kind):
            sent["referral"].append(client.send("ma.tansiq.referral.sent.v1", referral(client, n), deliver=False).id)
            sent["event"].append(client.send("ma.tansiq.event.published.v1", calendar_event(client, n),
                                             deliver=False).id)
            if len(timeline) < len(schedule) and 2 * n + 2 >= (len(timeline) + 1) * every:
                fault, target = schedule[len(timeline)]
                timeline.append((round(time.monotonic() - began, 1), 2 * n + 2, inject(network, fault, target)))
            time.sleep(0.1)
        for fault, target in schedule[len(timeline):]:
            timeline.append((round(time.monotonic() - began, 1), 2 * per_kind, inject(network, fault, target)))
        eventually(lambda: client.store.pending_count() == 0, timeout=120, message="the partner's outbox drained")
    finally:
        stop.set()
        sender.join(timeout=30)
    for service in SERVICES:
        network.wait_healthy(service, timeout=120)

    referral_ids = [referral(client, n)["referral_id"] for n in range(per_kind)]
    event_uids = [f"e{n}@{client.slug}.partner.tansiq.ma" for n in range(per_kind)]
    from services.events.models import Event
    from services.referrals.models import Referral

    def referral_counts():
        return Counter(dict(rows(network, "referrals", select(Referral.id, func.count()).where(
            Referral.id.in_(referral_ids)).group_by(Referral.id))))

    def event_counts():
        return Counter(dict(rows(network, "events", select(Event.uid, func.count()).where(
            Event.uid.in_(event_uids)).group_by(Event.uid))))

    settled(lambda: (len(referral_counts()), len(event_counts())), (per_kind, per_kind))
    referrals_done, events_done = referral_counts(), event_counts()

    def unpublished():  # what the services' relays still owe the broker after their own resets
        return {service: rows(network, service, select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.state == PENDING))[0][0] for service in ("referrals", "events")}

    owed = settled(unpublished, {"referrals": 0, "events": 0})
    refused = rejections(uri, client.slug)
    letters = [letter for service in ("referrals", "events")
               for queue in (topology.consumer_queue(service), topology.partner_inbound_queue(service))
               for letter in ops.dead_letters(network.amqp_uri, queue)]
    restarts = {service: network.log(service).count(" starting ") for service in SERVICES}
    figures = {
        "backend": network.backend, "accepted_referrals": len(sent["referral"]), "accepted_events": len(sent["event"]),
        "referrals_applied_once": sum(1 for count in referrals_done.values() if count == 1),
        "events_applied_once": sum(1 for count in events_done.values() if count == 1),
        "applied_twice_or_more": sum(1 for c in [*referrals_done.values(), *events_done.values()] if c > 1),
        "lost": 2 * per_kind - len(referrals_done) - len(events_done),
        "rejected": len(refused), "dead_lettered": len(letters), "outbox_unpublished": sum(owed.values()),
        "rejected_reasons": dict(Counter(r["reason"] for r in refused)),
        "dead_letter_reasons": dict(Counter(letter["reason"] for letter in letters)),
        "faults": len(timeline), "starts_per_service": restarts,
        "seconds": round(time.monotonic() - began, 1),
    }
    print(json.dumps({"figures": figures, "timeline": timeline}, indent=2, ensure_ascii=False))
    if FULL:
        write_report(figures, timeline)
    assert refused == [] and letters == []
    assert figures["lost"] == 0 and figures["applied_twice_or_more"] == 0
    assert figures["referrals_applied_once"] == figures["events_applied_once"] == per_kind


def settled(measure, goal, timeout=300, quiet=30):
    """`measure()` once it equals `goal`, or once it has not changed for `quiet` seconds (a loss
    is then counted and reported rather than waited for until the timeout)."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        value = measure()
        if value == goal:
            return value
        if value != last:
            last, since = value, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return value
        time.sleep(2)
    return last


def write_report(figures, timeline):
    lines = [BEGIN, "",
             f"Last full run ({datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {figures['backend']}, "
             f"{figures['seconds']} s):", "",
             "| figure | value |", "|---|---|"]
    for name in ("accepted_referrals", "accepted_events", "referrals_applied_once", "events_applied_once",
                 "applied_twice_or_more", "lost", "rejected", "dead_lettered", "outbox_unpublished", "faults"):
        lines.append(f"| {name.replace('_', ' ')} | {figures[name]} |")
    starts = ", ".join(f"{service} {count}" for service, count in figures["starts_per_service"].items())
    reasons = ", ".join(f"{reason} {count}" for reason, count in figures["rejected_reasons"].items()) or "-"
    dead = ", ".join(f"{reason} {count}" for reason, count in figures["dead_letter_reasons"].items()) or "-"
    lines += [f"| rejection reasons | {reasons} |", f"| dead-letter reasons | {dead} |",
              f"| process starts per service | {starts} |", "", "Faults injected, in order:", "",
              "| at (s) | after message | fault |", "|---|---|---|"]
    lines += [f"| {at} | {after} | {what} |" for at, after, what in timeline]
    lines += ["", END]
    text = REPORT.read_text(encoding="utf-8")
    REPORT.write_text(re.sub(f"{re.escape(BEGIN)}.*{re.escape(END)}", "\n".join(lines), text, flags=re.S),
                      encoding="utf-8")


def test_the_report_markers_exist():
    text = Path(REPORT).read_text(encoding="utf-8")
    assert text.count(BEGIN) == 1 and text.count(END) == 1
