"""`tansiq bench --flows`: the real flows, through the real processes, at fixed offered rates.

- the referral loop through the HTTP API (register a woman, record her consent, refer her to
  Marrakech) at fixed offered rates: achieved loops per second, the loop's own latency and
  referral → recipient's inbox (from the moment the referral is posted until the notifications
  service has written Naima's inbox item; read from its database, so no polling adds to it);
- the notifications service draining a backlog of referral.sent events: batched (`@handles_batch`,
  BATCH_SIZE 100) and one message per unit of work (BATCH_SIZE 1), each as deployed (the directory
  read from the process's read model, tansiq.readmodel, fed by the directory's changes) and, for
  comparison, with the directory answered from a fixed copy taken at start
  (tests/fixtures/bench_notifications.py: what the read model costs over a plain dict).

Every network runs in its own vhost and databases (tests/harness.py), on SQLite and on PostgreSQL.
"""

import http.client
import json
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from datetime import datetime, timezone
from urllib.parse import urlsplit

import requests

SERVICES = ("directory", "intake", "referrals", "notifications", "gateway")
SENDER, RECIPIENT = "fatima@amal-safi.example", "naima@wafae.example"
RECIPIENT_STAFF_ID, TO = "s-mrk-1", "wafae-marrakech"
LOOP_CLIENTS = 64          # concurrent HTTP clients: enough that the offered rate, not the client, sets the pace
SATURATED = 0.8            # achieved below this share of the offered rate: the next rates are not tried
# The notifications service sends what is due every second during the loop rows (deployed: every 15 s, in
# bigger runs), so each loop's three emails go out within the row's window and count in its CPU.
LOOP_DELIVERY_INTERVAL_S = 1
REFERRAL_SENT = "ma.tansiq.referral.sent.v1"
SNAPSHOT_NOTIFICATIONS = "tests.fixtures.bench_notifications:SnapshotDirectoryNotifications"
# The loop's hops with nothing behind them (tests/fixtures/hollow_network.py), in place of these services.
HOLLOW = {"intake": "HollowIntake", "referrals": "HollowReferrals", "notifications": "HollowNotifications"}


def say(text):
    print(text, flush=True)


def percentile(samples, share):
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def network(backend):
    from harness import Network  # tests/harness.py: vhost, databases, processes

    net = Network(backend=backend)
    net.env["TANSIQ_SMTP_PORT"] = str(SmtpSink().port)  # staff emails go out, as deployed (none were: retried)
    net.migrate()
    net.seed()
    return net


class SmtpSink:
    """An SMTP server that takes every email and keeps none: what a mail relay costs the notifications
    service (a conversation per run of sends), without one on this machine. A daemon thread per connection."""

    def __init__(self):
        import socket

        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            connection, _ = self.server.accept()
            threading.Thread(target=self._converse, args=(connection,), daemon=True).start()

    @staticmethod
    def _converse(connection):
        # OSError: the notifications service stopped mid-conversation (the network is closing).
        with suppress(OSError), connection, connection.makefile("rb") as lines:
            connection.sendall(b"220 bench ESMTP\r\n")
            for line in lines:
                command = line[:4].upper()
                if command == b"DATA":
                    connection.sendall(b"354 go on\r\n")
                    for body in lines:
                        if body in (b".\r\n", b".\n"):
                            break
                    connection.sendall(b"250 kept nowhere\r\n")
                elif command == b"QUIT":
                    connection.sendall(b"221 bye\r\n")
                    return
                elif command in (b"EHLO", b"HELO"):
                    connection.sendall(b"250 bench\r\n")
                else:
                    connection.sendall(b"250 ok\r\n")


def notifications_engine(net):
    from tansiq import config
    from tansiq.db import make_engine

    return make_engine(config.load("notifications", environ=net.env)["DB_URI"])


def as_utc(value):
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


# --- the referral loop through the API -----------------------------------------------------------------------


class Client:
    """One signed-in staff member, shared by threads (each thread its own keep-alive connection, same cookie).

    Plain http.client rather than requests: the bench's client runs on the cores it measures; with
    requests it took 1.8 ms of CPU per event create through the API, with this 0.6-0.7 ms."""

    def __init__(self, web, email):
        self.address = urlsplit(web).netloc
        login = requests.post(f"{web}/api/login", json={"email": email, "password": "tansiq-demo"}, timeout=30)
        login.raise_for_status()
        cookie = "; ".join(f"{name}={value}" for name, value in login.cookies.items())
        self.headers = {"Cookie": cookie, "X-CSRF-Token": login.headers["X-CSRF-Token"],
                        "Content-Type": "application/json"}
        self.local = threading.local()

    def _connection(self):
        if not hasattr(self.local, "connection"):
            self.local.connection = http.client.HTTPConnection(self.address, timeout=60)
        return self.local.connection

    def post(self, path, body, status=201, headers=None):
        connection = self._connection()
        headers = {**self.headers, "Idempotency-Key": uuid.uuid4().hex, **(headers or {})}  # as the web app's forms
        try:
            connection.request("POST", path, json.dumps(body), headers)
            response = connection.getresponse()
            text = response.read()
        except (http.client.HTTPException, OSError):
            connection.close()  # the next call opens a new one; this one is reported, not retried
            raise
        if response.status != status:
            raise RuntimeError(f"POST {path}: {response.status} {text[:200]!r}")
        return json.loads(text)


def one_loop(client):
    """Register, consent, refer; returns (loop start, referral posted at, loop end, referral id), wall clock.
    Each POST carries its own Idempotency-Key, as the web app's forms do."""
    started = time.time()
    beneficiary = client.post("/api/beneficiaries", {
        "kind": "survivor", "first_name": "Bench", "last_name": uuid.uuid4().hex[:8], "phone": "06" + str(
            uuid.uuid4().int)[:8], "birth_year": 1990, "city": "Safi", "language": "ar",
        "needs": ["legal_orientation"], "urgency": "normal"})["id"]
    client.post(f"/api/beneficiaries/{beneficiary}/consents", {
        "purpose": "legal_orientation", "fields": ["first_name"], "recipient_association": TO})
    posted = time.time()
    referral = client.post("/api/referrals", {
        "beneficiary_id": beneficiary, "to_association": TO, "service_category": "legal_orientation",
        "reason": "Besoin d'une avocate", "urgency": "normal", "fields": ["first_name"]})
    return started, posted, time.time(), referral["id"]


def offered(client, rate, seconds):
    """Start loops at `rate` per second for `seconds` (open loop: a slow answer does not slow the offer)."""
    count = max(4, round(rate * seconds))
    results, errors = [], []
    start = time.time()
    with ThreadPoolExecutor(LOOP_CLIENTS) as pool:
        futures = []
        for n in range(count):
            delay = start + n / rate - time.time()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(one_loop, client))
        for future in futures:
            try:
                results.append(future.result())
            except Exception as exc:  # noqa: BLE001 - counted and reported, the run goes on
                errors.append(str(exc)[:200])
    return start, results, errors


def inbox_times(engine, referral_ids, timeout):
    """{referral id: when the recipient's inbox item was written}, waiting up to `timeout` for all."""
    from sqlalchemy import select

    from services.notifications.models import InboxItem
    from tansiq.db import session_scope

    links = {f"/referrals/{referral_id}": referral_id for referral_id in referral_ids}
    found, deadline = {}, time.monotonic() + timeout
    while len(found) < len(links) and time.monotonic() < deadline:
        with session_scope(engine) as session:
            rows = session.execute(select(InboxItem.link, InboxItem.created_at).where(
                InboxItem.staff_id == RECIPIENT_STAFF_ID, InboxItem.link.in_(list(links)))).all()
        found = {links[link]: as_utc(created).timestamp() for link, created in rows}
        if len(found) < len(links):
            time.sleep(0.2)
    return found


def handled(engine):
    """How many events the notifications service (real or hollow) has taken: its rows in the kernel's inbox."""
    from sqlalchemy import func, select

    from tansiq.db import session_scope
    from tansiq.messaging.store import InboxMessage

    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(InboxMessage).where(
            InboxMessage.consumer == "notifications"))


def loop_rows(net, backend, rates, seconds):
    say(f"  referral loop through the API, {backend}: rates {', '.join(map(str, rates))} loops/s, "
        f"{seconds:g} s each")
    net.env["TANSIQ_DELIVERY_INTERVAL_S"] = str(LOOP_DELIVERY_INTERVAL_S)
    net.start(*(service for service in SERVICES if service not in net.procs))
    engine = notifications_engine(net)

    def to_inbox(results):
        arrived = inbox_times(engine, [ref for *_, ref in results], timeout=60 + len(results))
        time.sleep(1.5 * LOOP_DELIVERY_INTERVAL_S)  # the last loops' emails
        return [(arrived[ref] - posted) * 1000 for _, posted, _, ref in results if ref in arrived]

    try:
        return measured_rates(net, backend, rates, seconds, to_inbox)
    finally:
        engine.dispose()


def hollow_rows(net, backend, rates, seconds):
    """The same loops through the real gateway and directory, with hollow intake, referrals and notifications:
    every hop and the messaging kernel's work at each, none of the services' own (what the architecture costs
    before any work is done). Throughput and CPU per loop; there is no inbox item to time."""
    say(f"  the same loop's hops with nothing behind them (hollow services), {backend}: rates "
        f"{', '.join(map(str, rates))} loops/s")
    for service in HOLLOW:
        if service in net.procs:
            net.kill(service, signal.SIGTERM)
    for service, cls in HOLLOW.items():
        net.start(service, service_class=f"tests.fixtures.hollow_network:{cls}")
    net.start(*(service for service in SERVICES if service not in net.procs))

    engine = notifications_engine(net)
    seen = {"expected": handled(engine) + 2}  # the inbox so far, and the two events of the warm-up loop

    def settled(results):
        """Until the hollow consumer has taken both events of every loop so far (its inbox), so that none of
        this rate's work spills into the next; nothing to time."""
        seen["expected"] += 2 * len(results)
        deadline = time.monotonic() + 60 + len(results)
        while handled(engine) < seen["expected"] and time.monotonic() < deadline:
            time.sleep(0.2)
        return None

    try:
        return measured_rates(net, backend, rates, seconds, settled)
    finally:
        engine.dispose()


def measured_rates(net, backend, rates, seconds, to_inbox):
    """Loops offered at each rate, each process's CPU counted until `to_inbox(results)` returns (the
    referral → inbox times it waited for, or None when there is nothing to time); higher rates are not
    tried once one is saturated."""
    from tansiq.bench_calendar import CpuMeter

    rows, client = [], Client(net.web, SENDER)
    one_loop(client)  # warm-up, off the clock
    for rate in rates:
        meter = CpuMeter({service: net.procs[service].pid for service in SERVICES}, net.procs["intake"].pid)
        meter.start()
        start, results, errors = offered(client, rate, seconds)
        done = max((end for _, _, end, _ in results), default=start)
        timed = to_inbox(results)
        spent, _ = meter.stop()
        loops = [(end - begun) * 1000 for begun, _, end, _ in results]
        row = {"backend": backend, "rate": rate, "offered": len(results) + len(errors), "ok": len(results),
               "errors": len(errors), "achieved": len(results) / max(done - start, 1e-9),
               "loop": loops, "to_inbox": timed or [], "missing": 0 if timed is None else len(results) - len(timed),
               "cpu": {name: cpu * 1000 / max(1, len(results)) for name, cpu in spent.items()}}
        rows.append(row)
        latency = "" if timed is None else (
            f", referral → inbox p50/p95/p99 {percentile(timed, .5):.0f}/{percentile(timed, .95):.0f}/"
            f"{percentile(timed, .99):.0f} ms")
        say(f"    {rate} loops/s offered: {row['achieved']:.1f} achieved, loop p50 {percentile(loops, .5):.0f} ms"
            f"{latency}, CPU {sum(row['cpu'].values()):.1f} ms a loop"
            + (f", {len(errors)} errors ({errors[0]})" if errors else "")
            + (f", {row['missing']} not in the inbox within the wait" if row["missing"] else ""))
        if row["achieved"] < SATURATED * rate or errors:
            say(f"    saturated at {rate} loops/s: higher rates not tried")
            break
    return rows


# --- the partner loop through the SDK ---------------------------------------------------------------------------


class BenchPartner:
    """A partner association of the bench's own (random slug): broker user, keys, the SDK client."""

    def __init__(self, net):
        from urllib.parse import quote

        from harness import BROKER_HOST, add_partner_association

        from tansiq import sealing, signing
        from tansiq.broker_admin import BrokerAdmin
        from tansiq.partner import PartnerClient

        self.slug = f"bench-{net.id}"
        add_partner_association(net, self.slug)
        self.admin = BrokerAdmin(vhost=net.vhost)
        self.admin.declare_topology()
        password = self.admin.add_partner(self.slug)["password"]
        key, encryption_key = signing.generate_key(), sealing.generate_private_key()
        with net.rpc() as rpc:
            rpc.directory.set_public_key(self.slug, signing.public_key_b64(key))
            rpc.directory.set_encryption_key(self.slug, sealing.public_key_b64(encryption_key))
        uri = f"amqp://{self.slug}:{password}@{BROKER_HOST}:5672/{quote(net.vhost, safe='')}"
        self.client = PartnerClient(uri, self.slug, key, net.var / f"{self.slug}-outbox.sqlite3",
                                    encryption_key=encryption_key)

    def refer(self):
        """Send one referral to Marrakech through the SDK (stored, published, confirmed); its id."""
        referral_id = f"{self.slug}-{uuid.uuid4().hex[:12]}"
        self.client.send(REFERRAL_SENT, {
            "referral_id": referral_id, "from_association": self.slug, "to_association": TO,
            "service_category": "psychological_support", "urgency": "normal", "reason": "Suivi psychologique",
            "consent_id": "bench-consent", "shared": {"first_name": "Zineb", "language": "fr"}})
        return referral_id

    def close(self):
        self.admin.revoke_partner(self.slug)


def partner_rows(net, backend, rates, seconds):
    """Partner referrals sent through the SDK at fixed rates (one sender, as a partner's system would),
    each until Naima's inbox item is written."""
    say(f"  partner loop through the SDK, {backend}: rates {', '.join(map(str, rates))} referrals/s")
    partner, engine, rows = BenchPartner(net), notifications_engine(net), []
    try:
        partner.refer()  # warm-up, off the clock
        for rate in rates:
            count, sent = max(4, round(rate * seconds)), []
            start = time.time()
            for n in range(count):
                delay = start + n / rate - time.time()
                if delay > 0:
                    time.sleep(delay)
                begun = time.time()
                sent.append((begun, partner.refer(), time.time()))
            done = max(end for *_, end in sent)
            arrived = inbox_times(engine, [referral_id for _, referral_id, _ in sent], timeout=60 + count)
            to_inbox = [(arrived[ref] - begun) * 1000 for begun, ref, _ in sent if ref in arrived]
            row = {"backend": backend, "rate": rate, "ok": count, "errors": 0, "missing": count - len(to_inbox),
                   "achieved": count / max(done - start, 1e-9), "to_inbox": to_inbox,
                   "loop": [(end - begun) * 1000 for begun, _, end in sent]}
            rows.append(row)
            say(f"    {rate}/s offered: {row['achieved']:.1f} sent, referral → inbox p50/p95/p99 "
                f"{percentile(to_inbox, .5):.0f}/{percentile(to_inbox, .95):.0f}/{percentile(to_inbox, .99):.0f} ms"
                + (f", {row['missing']} not in the inbox within the wait" if row["missing"] else ""))
            if row["achieved"] < SATURATED * rate or row["missing"]:
                say(f"    saturated at {rate}/s: higher rates not tried")
                break
    finally:
        partner.close()
        engine.dispose()
    return rows


# --- the notifications backlog ---------------------------------------------------------------------------------


def sent_events(n):
    from tansiq import contracts

    example = contracts.get(REFERRAL_SENT).example
    return [contracts.make(REFERRAL_SENT, "amal-safi", {**example, "referral_id": f"r-bench-{n_}",
                                                           "from_association": "amal-safi", "to_association": TO})
            for n_ in range(n)]


def publish_backlog(uri, envelopes):
    from tansiq.bench import pika_pipelined
    from tansiq.messaging.topology import EVENTS_EXCHANGE

    pika_pipelined(uri, envelopes, EVENTS_EXCHANGE, REFERRAL_SENT)


def forget_deliveries(engine):
    """The backlog's emails are not part of what follows: left queued, the delivery timer would spend
    the next measurement's time sending thousands of them."""
    from sqlalchemy import delete

    from services.notifications.models import Delivery
    from tansiq.db import session_scope

    with session_scope(engine) as session:
        session.execute(delete(Delivery))


def inbox_count(engine):
    from sqlalchemy import func, select

    from services.notifications.models import InboxItem
    from tansiq.db import session_scope

    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(InboxItem))


DRAIN_VARIANTS = ((1, False), (100, False), (1, True), (100, True))  # (BATCH_SIZE, directory from a fixed copy)


SLOW_BACKLOG = 500  # the slowest variant (a unit of work per message, as deployed) drains this many at most


def drain_rows(net, backend, backlog, variants=DRAIN_VARIANTS):
    """Seconds for the notifications service to turn a backlog of referral.sent into inbox items, per variant.

    The backlog is published while the service is stopped (its queue keeps it), then the service starts;
    the rate is counted from the first inbox item written to the last, so start-up is not in it."""
    rows = []
    engine = notifications_engine(net)
    try:
        for batch_size, snapshot in variants:
            n = backlog if snapshot or batch_size > 1 else min(backlog, SLOW_BACKLOG)
            label = (f"BATCH_SIZE {batch_size}, directory "
                     + ("from a fixed copy taken at start" if snapshot else "from its read model (as deployed)"))
            say(f"  notifications backlog of {n}, {backend}, {label} …")
            net.env["TANSIQ_BATCH_SIZE"] = str(batch_size)
            service_class = SNAPSHOT_NOTIFICATIONS if snapshot else None
            net.start("notifications", service_class=service_class)
            net.kill("notifications", signal.SIGTERM)  # its queue and bindings stay: the backlog waits there
            before = inbox_count(engine)
            publish_backlog(net.amqp_uri, sent_events(n))
            net.start("notifications", service_class=service_class, wait=False)
            first, last_report = None, time.monotonic()
            deadline = time.monotonic() + 120 + n / 5
            while True:
                count = inbox_count(engine) - before
                now = time.monotonic()
                if count and first is None:
                    first = (now, count)
                if count >= n:
                    break
                if now > deadline:
                    raise RuntimeError(f"only {count}/{n} inbox items:\n{net.log('notifications')[-2000:]}")
                if now - last_report > 5:
                    say(f"    … {count}/{n}")
                    last_report = now
                time.sleep(0.05)
            net.kill("notifications", signal.SIGTERM)
            forget_deliveries(engine)
            seconds = now - first[0]
            rate = (n - first[1]) / seconds if seconds > 0 else float("nan")
            say(f"    {rate:,.0f} messages/s")
            rows.append({"backend": backend, "label": label, "n": n, "rate": rate, "seconds": seconds})
    finally:
        net.env.pop("TANSIQ_BATCH_SIZE", None)
        engine.dispose()
    return rows


# --- the report ------------------------------------------------------------------------------------------------


def loop_table(rows):
    lines = ["| database | offered loops/s | loops | achieved loops/s | loop p50 ms | referral → inbox p50 ms "
             "| p95 ms | p99 ms | errors |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(
            f"| {row['backend']} | {row['rate']} | {row['ok']} | {row['achieved']:.1f} | "
            f"{percentile(row['loop'], .5):.0f} | {percentile(row['to_inbox'], .5):.0f} | "
            f"{percentile(row['to_inbox'], .95):.0f} | {percentile(row['to_inbox'], .99):.0f} | "
            f"{row['errors'] + row['missing']} |")
    return "\n".join(lines)


def cpu_table(rows):
    """CPU milliseconds per loop of each process of a loop row, and in all."""
    names = list(rows[0]["cpu"]) if rows else []
    lines = ["| database | offered loops/s | CPU ms per loop | " + " | ".join(names) + " |",
             "|---|---:|---:|" + "---:|" * len(names)]
    for row in rows:
        cpu = row["cpu"]
        lines.append(f"| {row['backend']} | {row['rate']} | {sum(cpu.values()):.1f} | "
                     + " | ".join(f"{cpu[name]:.1f}" for name in names) + " |")
    return "\n".join(lines)


def drain_table(rows):
    lines = ["| database | consumer | messages | seconds | messages/s |", "|---|---|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['backend']} | {row['label']} | {row['n']} | {row['seconds']:.2f} | {row['rate']:,.0f} |")
    return "\n".join(lines)


def run(backends, rates, seconds, backlog, variants=DRAIN_VARIANTS):
    """{"loops", "hollow", "partners", "drains": rows} on each backend ("sqlite", "postgres"), one network each."""
    rows = {"loops": [], "hollow": [], "partners": [], "drains": []}
    for backend in backends:
        say(f"flows on {backend}: migrating and seeding a network of its own …")
        net = network(backend)
        try:
            net.start("directory")
            rows["drains"] += drain_rows(net, backend, backlog, variants)
            rows["loops"] += loop_rows(net, backend, rates, seconds)
            rows["partners"] += partner_rows(net, backend, rates, seconds)
            rows["hollow"] += hollow_rows(net, backend, rates, seconds)  # last: it replaces three services
        finally:
            net.close()
    return rows


def hollow_table(rows):
    lines = ["| database | offered loops/s | loops | achieved loops/s | loop p50 ms | errors |",
             "|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['backend']} | {row['rate']} | {row['ok']} | {row['achieved']:.1f} | "
                     f"{percentile(row['loop'], .5):.0f} | {row['errors']} |")
    return "\n".join(lines)


def section(rows, lists, floor, args):
    """The Markdown of the real flows, with the raw floor of the same run (`floor`: label -> msg/s)."""
    loops, partners, drains = rows["loops"], rows["partners"], rows["drains"]
    floor_rows = "\n".join(f"| {label} | {rate:,.0f} msg/s |" for label, rate in floor.items())
    parts = [
        "## 5. The real flows",
        "The same run as the raw floor above: real processes (`tansiq run …`) in a vhost and databases of "
        "their own, the demo network seeded. Reproduce with `make bench` (everything), or only some of it, "
        "e.g. `tansiq bench --flow-backends postgres --flow-rates 2,5,10,20,50 --backlog 2000 "
        "--list-notifications 1000000` (`tansiq bench --help`). Raw floor of this run, for comparison:",
        "| raw floor (sections 1 and 3) | |\n|---|---:|\n" + floor_rows,
        "### The referral loop through the HTTP API",
        f"Fatima (Safi) registers a woman, records her consent and refers her to Wafae (Marrakech) through "
        f"`POST /api/beneficiaries`, `/consents`, `/api/referrals`, each with its own Idempotency-Key as the web "
        f"app's forms send; loops start at a fixed offered rate for "
        f"{args.flow_seconds:g} s each ({LOOP_CLIENTS} HTTP clients, open loop: a slow answer does not slow the "
        f"offer). Referral → inbox: from the moment the referral is posted until the notifications service has "
        f"written Naima's inbox item (its `created_at`, read from its database). A rate is not tried once a lower "
        f"one achieved less than {SATURATED:.0%} of its offer.",
        loop_table(loops),
        "Where each loop's CPU went at each rate: user and system time from /proc of every process of the network, "
        "PostgreSQL and RabbitMQ by process name (so with anything else they did meanwhile) and this bench's "
        "client, from the first loop offered until every referral was in Naima's inbox and the loops' emails "
        f"were sent (the notifications service sends every {LOOP_DELIVERY_INTERVAL_S} s during these rows; "
        "deployed, every 15 s), divided by the loops. Two cores give 2,000 ms of CPU a second: 50 loops per "
        "second need less than 40 ms a loop, with nothing else running.",
        cpu_table(loops),
        "### The same loop's hops with nothing behind them",
        "The same loops, through the same gateway and directory, with intake, referrals and notifications "
        "replaced by hollow services (`tests/fixtures/hollow_network.py`): every HTTP request, sealed RPC and "
        "event of a loop, and the messaging kernel's work at each (the two events through an outbox, a relay "
        "and a batched consumer with its inbox), each RPC checking the staff member's signed assertion, but "
        "none of the services' own: no records, audit, encryption, "
        "command keys, inbox items or emails. Its CPU per loop is what the architecture costs before any work "
        "is done: what is left of the 40 ms a loop that 50 loops per second allow on two cores is all the "
        "services' own work may take.",
        hollow_table(rows["hollow"]),
        cpu_table(rows["hollow"]),
        "### The partner loop through the SDK",
        "A partner association integrating by queue (its own broker user and keys, a random slug) sends "
        "`referral.sent` to Wafae through `tansiq.partner.PartnerClient.send` (stored in its outbox, signed, "
        "sealed, published with a confirm) at fixed offered rates from one thread, as a partner's system would; "
        "referral → inbox from the call to `send` until Naima's inbox item is written. \"loop p50\" is the "
        "`send` call itself.",
        loop_table(partners),
        "### The notifications service draining a backlog",
        "N `referral.sent` events published while the service is stopped, then counted from its first inbox "
        "item to the last. BATCH_SIZE 1 is one unit of work per message (as before `@handles_batch`); "
        "\"from its read model\" is the service as deployed (the directory as its change feed told the "
        "process, `tansiq/readmodel.py`: no RPC per message); \"from a fixed copy\" answers from a copy taken "
        "at start (`tests/fixtures/bench_notifications.py`), for comparison.",
        drain_table(drains),
    ]
    if lists is not None:
        from tansiq.bench_lists import table as lists_table

        parts += [
            f"### Lists at size: {args.list_notifications:,} notifications, {args.list_referrals:,} referrals",
            "Rows loaded in bulk SQL (not through the API), then the domain call each RPC makes for one page of "
            f"50 timed {args.list_runs} times (`tansiq/bench_lists.py`; no RPC or HTTP hop). Half the inbox items "
            "are one staff member's; one in ten unread.",
            lists_table(lists),
        ]
    return "\n\n".join(parts)
