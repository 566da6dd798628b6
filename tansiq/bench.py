"""`tansiq bench` (`make bench`): the kernel's speed and memory next to the raw broker, in the same run.

Everything runs in a throwaway RabbitMQ vhost (created and deleted through the
management API) and throwaway databases, so a bench never touches real data.
Every publish goes to the same kind of queue the services use (quorum, persistent
messages), so the raw rows and the kernel rows differ only by the code path.
The report is Markdown (docs/benchmarks.md by default). Numbers, not assertions:
tests only check that the bench runs (tests/integration/test_bench_smoke.py).
"""

import argparse
import logging
import os
import platform
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from contextlib import closing, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

import pika

from tansiq import config as tansiq_config
from tansiq.broker_admin import BrokerAdmin
from tansiq.envelope import CONTENT_TYPE
from tansiq.messaging.relay import BATCH as RELAY_BATCH

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

ROOT = tansiq_config.ROOT
PROBE = "tests.fixtures.probe_service:ProbeService"
SINK = "bench.sink"              # bound to the events exchange like a service queue
RAW_CONSUMED = "bench.consumed"  # the raw consumer's queue
WINDOW = 256                     # unconfirmed messages in flight when pipelining
PREFETCH = 10                    # what nameko uses: prefetch = max_workers (10 in deploy/config/events.yaml)
PG_URL = os.environ.get("TANSIQ_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432")
MIB = 1024 * 1024
# Publishing rows keep the best of interleaved rounds (as timeit does): on a shared machine the
# fastest round is the one least disturbed by other work, and every row gets the same chances.
ROUNDS = 3
ROUNDS_BUDGET_SECONDS = 60  # no new round after this, so a loaded machine still finishes in ~3 minutes


def say(text):
    print(text, flush=True)


# --- broker administration -------------------------------------------------------------------


def broker_admin(amqp_uri, vhost="/"):
    """The management API of the broker at `amqp_uri` (same host and user, port 15672 unless
    TANSIQ_RABBIT_ADMIN_URL says otherwise)."""
    parts = urlsplit(amqp_uri)
    url = os.environ.get("TANSIQ_RABBIT_ADMIN_URL") or \
        f"http://{parts.username or 'guest'}:{parts.password or 'guest'}@{parts.hostname or '127.0.0.1'}:15672"
    return BrokerAdmin(url, vhost=vhost)


@contextmanager
def bench_vhost(amqp_uri):
    name = f"bench-{uuid.uuid4().hex[:10]}"
    admin = broker_admin(amqp_uri, vhost=name)
    admin.add_vhost()
    parts = urlsplit(amqp_uri)
    say(f"vhost {name} created")
    try:
        yield admin.amqp_uri(parts.hostname or "127.0.0.1", parts.port or 5672)
    finally:
        admin.delete_vhost()
        say(f"vhost {name} deleted")


@contextmanager
def pg_database():
    """A throwaway PostgreSQL database; yields its URL, or None when the server is not reachable."""
    import psycopg2

    name = f"tansiq_bench_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg2.connect(f"{PG_URL}/postgres", connect_timeout=3)
    except psycopg2.OperationalError as exc:
        say(f"PostgreSQL not reachable at {PG_URL} ({str(exc).strip().splitlines()[0]}); skipping its rows")
        yield None
        return
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_URL}/{name}"
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def declare_bench_queues(uri):
    from tansiq.messaging import broker, topology
    from tests.fixtures.probe_service import REGISTERED

    queues = [topology.Queue(SINK, dict(topology.QUORUM), [(topology.EVENTS_EXCHANGE, REGISTERED)]),
              topology.Queue(RAW_CONSUMED, dict(topology.QUORUM))]
    with broker.connect(uri) as connection:
        broker.declare(connection, queues)


@contextmanager
def pika_channel(uri):
    connection = pika.BlockingConnection(pika.URLParameters(uri))
    try:
        yield connection.channel()
    finally:
        if connection.is_open:
            connection.close()


def depth(uri, queue):
    with pika_channel(uri) as channel:
        return channel.queue_declare(queue, passive=True).method.message_count


def consumers(uri, queue):
    with pika_channel(uri) as channel:
        return channel.queue_declare(queue, passive=True).method.consumer_count


def purge(uri, queue):
    with pika_channel(uri) as channel:
        channel.queue_purge(queue)


def check_delivered(uri, queue, expected):
    found = depth(uri, queue)
    if found != expected:
        raise RuntimeError(f"{queue} holds {found} messages, expected {expected}")


# --- messages ----------------------------------------------------------------------------------


def envelopes(n):
    """`n` valid beneficiary.registered envelopes (what the probe service consumes)."""
    from tansiq import contracts
    from tests.fixtures.probe_service import REGISTERED, registered

    return [contracts.make(REGISTERED, "amal-safi", registered("Safi")) for _ in range(n)]


def properties(envelope):
    return pika.BasicProperties(message_id=envelope.id, delivery_mode=2, content_type=CONTENT_TYPE,
                                content_encoding="utf-8")


# --- raw broker (pika) -------------------------------------------------------------------------


def pika_confirm_each(uri, batch, exchange, routing_key):
    """One publish, one wait for its confirm: a broker round trip per message."""
    with pika_channel(uri) as channel:
        channel.confirm_delivery()
        first = envelopes(1)[0]  # the first message into a fresh queue is slower: keep it off the clock
        channel.basic_publish(exchange, routing_key, first.to_bytes(), properties(first), mandatory=True)
        start = time.perf_counter()
        for envelope in batch:  # raises UnroutableError / NackError
            channel.basic_publish(exchange, routing_key, envelope.to_bytes(), properties(envelope), mandatory=True)
        return time.perf_counter() - start


def pika_pipelined(uri, batch, exchange, routing_key, window=WINDOW):
    """Keep up to `window` messages unconfirmed; the broker acks them in batches (multiple=True)."""
    state = {"next": 0, "confirmed": 0, "unconfirmed": set(), "error": None, "start": None, "end": None}

    def pump(channel):
        if state["end"] is not None:  # closing already
            return
        while len(state["unconfirmed"]) < window and state["next"] < len(batch):
            envelope = batch[state["next"]]
            state["next"] += 1
            channel.basic_publish(exchange, routing_key, envelope.to_bytes(), properties(envelope), mandatory=True)
            state["unconfirmed"].add(state["next"])  # delivery tags count from 1
        if state["confirmed"] == len(batch) or state["error"]:
            state["end"] = time.perf_counter()
            channel.connection.close()

    def on_confirm(channel, frame):
        method = frame.method
        if isinstance(method, pika.spec.Basic.Nack):
            state["error"] = f"broker nacked delivery {method.delivery_tag}"
        if method.multiple:
            done = {tag for tag in state["unconfirmed"] if tag <= method.delivery_tag}
        else:
            done = {method.delivery_tag} & state["unconfirmed"]
        state["unconfirmed"] -= done
        state["confirmed"] += len(done)
        pump(channel)

    def on_return(channel, method, props, body):
        state["error"] = f"unroutable: {exchange}/{routing_key} ({props.message_id})"

    def on_channel(channel):
        channel.add_on_return_callback(on_return)
        state["start"] = time.perf_counter()
        channel.confirm_delivery(lambda frame: on_confirm(channel, frame), callback=lambda _: pump(channel))

    def on_failed(connection, exc):
        state["error"] = f"connection failed: {exc}"
        connection.ioloop.stop()

    connection = pika.SelectConnection(
        pika.URLParameters(uri), on_open_callback=lambda conn: conn.channel(on_open_callback=on_channel),
        on_open_error_callback=on_failed, on_close_callback=lambda conn, reason: conn.ioloop.stop())
    connection.ioloop.start()
    if state["error"] or state["end"] is None:
        raise RuntimeError(state["error"] or "pipelined publish did not finish")
    return state["end"] - state["start"]


def consume(channel, queue, n, handle=None):
    """Consume `n` messages with manual acks (prefetch as nameko); returns the time of the last ack."""
    channel.basic_qos(prefetch_count=PREFETCH)
    count = 0

    def on_message(channel, method, props, body):
        nonlocal count
        if handle:
            handle(body)
        channel.basic_ack(method.delivery_tag)
        count += 1
        if count >= n:
            channel.stop_consuming()

    channel.basic_consume(queue, on_message)
    return channel


def pika_drain(uri, queue, n):
    with pika_channel(uri) as channel:
        consume(channel, queue, n)
        start = time.perf_counter()
        channel.start_consuming()
        return time.perf_counter() - start


# --- the kernel's publishing path --------------------------------------------------------------


def warm_up(publisher):
    """One message off the clock, as for pika's baseline: the publisher connects lazily."""
    from tansiq.messaging.topology import EVENTS_EXCHANGE

    envelope = envelopes(1)[0]
    publisher.publish(envelope.to_bytes(), EVENTS_EXCHANGE, envelope.type, envelope.id)


def kombu_confirmed(uri, batch, exchange, routing_key):
    from tansiq.messaging.broker import ConfirmedPublisher

    publisher = ConfirmedPublisher(uri)
    try:
        warm_up(publisher)
        start = time.perf_counter()
        for envelope in batch:
            publisher.publish(envelope.to_bytes(), exchange, routing_key, envelope.id)
        return time.perf_counter() - start
    finally:
        publisher.close()


def relay(uri, db_url, batch):
    """Write `batch` to an outbox with `outbox.add`, then time `relay_once` until the outbox is empty."""
    from tansiq.db import make_engine, session_scope
    from tansiq.messaging import outbox
    from tansiq.messaging.broker import ConfirmedPublisher
    from tansiq.messaging.relay import relay_once
    from tansiq.messaging.store import messaging_metadata

    engine = make_engine(db_url)
    publisher = ConfirmedPublisher(uri)
    try:
        warm_up(publisher)
        messaging_metadata.create_all(engine)
        with session_scope(engine) as session:
            for envelope in batch:
                outbox.add(session, envelope)
        sent, last_report = 0, time.perf_counter()
        start = time.perf_counter()
        while count := relay_once(engine, publisher):
            sent += count
            if time.perf_counter() - last_report > 2:
                say(f"    … {sent}/{len(batch)} relayed")
                last_report = time.perf_counter()
        seconds = time.perf_counter() - start
        if sent != len(batch):
            raise RuntimeError(f"relay sent {sent} of {len(batch)} rows")
        return seconds
    finally:
        publisher.close()
        engine.dispose()


# --- processes and memory ----------------------------------------------------------------------


def proc_status(pid):
    """VmRSS and VmHWM (peak) in bytes, and user+system CPU seconds, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024
    return {"rss": fields["VmRSS"], "peak": fields["VmHWM"], "cpu": cpu_seconds(pid)}


def cpu_seconds(pid):
    """User + system CPU seconds of `pid` so far, from /proc (OSError once it is gone)."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def read_line(proc, timeout):
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise TimeoutError(f"no answer from pid {proc.pid} within {timeout:.0f}s")
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"pid {proc.pid} exited ({proc.wait()})")
    return line.split()


def timeout_for(n):
    return 60 + n / 10  # generous: a stall fails the bench instead of hanging it


def raw_consumer_run(uri, n, db_dir=None):
    """The raw pika consumer as its own process: publish `n` to its queue, time until it acked them all."""
    command = [sys.executable, "-m", "tansiq.bench", "consume", uri, RAW_CONSUMED, str(n)]
    if db_dir:
        from tests.fixtures.probe_service import create_tables

        db_url = f"sqlite:///{db_dir}/raw-inbox.sqlite3"
        create_tables(db_url)
        command += ["--db", db_url]
    proc = subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        read_line(proc, 60)  # "ready"
        idle = proc_status(proc.pid)
        start = time.monotonic()
        publish_seconds = pika_pipelined(uri, envelopes(n), "", RAW_CONSUMED)
        _, done_at = read_line(proc, timeout_for(n))
        after = proc_status(proc.pid)
        proc.stdin.close()
        proc.wait(timeout=30)
        return {"seconds": float(done_at) - start, "publish": publish_seconds, "idle": idle, "after": after}
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def effects_count(sqlite_path):
    with closing(sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True, timeout=30)) as connection:
        return connection.execute("SELECT count(*) FROM probe_effects").fetchone()[0]


def service_run(uri, n, var):
    """The probe service as a real process (`tansiq run events --service-class …`), fed `n` envelopes."""
    from tansiq.messaging.topology import consumer_queue
    from tests.fixtures.probe_service import create_tables

    queue = consumer_queue("probe")
    db_path = var / "events.sqlite3"
    create_tables(f"sqlite:///{db_path}")
    env = {key: value for key, value in os.environ.items() if not key.startswith("TANSIQ_")}
    env.update(AMQP_URI=uri, TANSIQ_VAR=str(var), PYTHONUNBUFFERED="1")
    log_path = var / "events.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "tansiq.cli", "run", "events", "--service-class", PROBE],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:  # ready once its queue exists and has the service as consumer
            if proc.poll() is not None:
                raise RuntimeError(f"the probe service exited:\n{log_path.read_text(errors='replace')[-3000:]}")
            try:
                if consumers(uri, queue):
                    break
            except pika.exceptions.ChannelClosedByBroker:  # not declared yet
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the probe service is not consuming:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.2)
        time.sleep(1)  # let start-up settle before the idle reading
        idle = proc_status(proc.pid)
        batch = envelopes(n)
        start = time.monotonic()
        publish_seconds = pika_pipelined(uri, batch, "", queue)
        deadline, last_report, done = start + timeout_for(n), start, 0
        while done < n:
            time.sleep(0.05)
            done = effects_count(db_path)
            now = time.monotonic()
            if now - last_report > 3:
                say(f"    … {done}/{n} effects recorded")
                last_report = now
            if now > deadline or proc.poll() is not None:
                raise RuntimeError(f"only {done}/{n} effects recorded:\n"
                                   f"{log_path.read_text(errors='replace')[-3000:]}")
        seconds = time.monotonic() - start
        after = proc_status(proc.pid)
        return {"seconds": seconds, "publish": publish_seconds, "idle": idle, "after": after}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# --- the run -----------------------------------------------------------------------------------


def machine(amqp_uri):
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())
    mem_kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))
    overview = broker_admin(amqp_uri).overview()
    rabbit, erlang = overview.get("rabbitmq_version", "?"), overview.get("erlang_version", "?")
    try:
        import psycopg2

        connection = psycopg2.connect(f"{PG_URL}/postgres", connect_timeout=3)
        with closing(connection), connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            postgres = cursor.fetchone()[0]
    except Exception:  # noqa: BLE001 - reported as missing
        postgres = "not reachable"
    return {
        "CPU": f"{cpu}, {os.cpu_count()} cores",
        "RAM": f"{mem_kib / 1024 / 1024:.1f} GiB",
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "RabbitMQ": f"{rabbit} (Erlang {erlang})",
        "PostgreSQL": postgres,
    }


CONFIRM_EACH = "pika, confirm per message (1 round trip each)"


def row(label, n, runs, baseline=None):
    """A table row from one or more timings (seconds, the best counts). `baseline`: None for the reference row itself,
    False when nothing in its table compares, else the reference seconds."""
    seconds = min(runs)
    return {"label": label, "n": n, "runs": runs, "seconds": seconds, "rate": n / seconds, "baseline": baseline}


def publishing_steps(uri, n, tmp, pg_url):
    """(section, label, measure, messages left in the sink, compares to the raw baseline)."""
    from tansiq.messaging.topology import EVENTS_EXCHANGE
    from tests.fixtures.probe_service import REGISTERED

    sink = (EVENTS_EXCHANGE, REGISTERED)

    def drain():
        pika_pipelined(uri, envelopes(n), *sink)  # fill, off the clock
        return pika_drain(uri, SINK, n)

    # Messages left behind: N, plus one warm-up message for the publishers that connect lazily.
    steps = [
        ("raw", CONFIRM_EACH, lambda: pika_confirm_each(uri, envelopes(n), *sink), n + 1, None),
        ("raw", f"pika, pipelined confirms (window {WINDOW})", lambda: pika_pipelined(uri, envelopes(n), *sink), n,
         True),
        ("raw", f"pika consumer, manual acks (prefetch {PREFETCH}), queue preloaded", drain, 0, False),
        ("publish", "ConfirmedPublisher (kombu/py-amqp, confirm per message, mandatory)",
         lambda: kombu_confirmed(uri, envelopes(n), *sink), n + 1, True),
        ("publish", "outbox relay, SQLite (relay_once until empty)",
         lambda: relay(uri, f"sqlite:///{tmp}/outbox.sqlite3", envelopes(n)), n + 1, True),
    ]
    if pg_url:
        steps.append(("publish", "outbox relay, PostgreSQL (relay_once until empty)",
                      lambda: relay(uri, pg_url, envelopes(n)), n + 1, True))
    return steps


def run(amqp_uri, n):
    results, memory, timings = {}, [], {}
    var = tansiq_config.var_dir()  # the disk the services' SQLite files live on
    var.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="bench-", dir=var))
    try:
        with bench_vhost(amqp_uri) as uri, pg_database() as pg_url:
            declare_bench_queues(uri)
            steps = publishing_steps(uri, n, tmp, pg_url)
            say(f"1-2. publishing, raw and kernel, to a quorum queue: up to {ROUNDS} interleaved rounds")
            phase_start = time.monotonic()
            for round_ in range(1, ROUNDS + 1):
                if round_ > 1 and time.monotonic() - phase_start > ROUNDS_BUDGET_SECONDS:
                    say(f"  stopping after {round_ - 1} rounds ({ROUNDS_BUDGET_SECONDS}s budget spent)")
                    break
                say(f"  round {round_} of {ROUNDS}")
                for _section, label, measure, left, _ in steps:
                    seconds = measure()
                    check_delivered(uri, SINK, left)
                    purge(uri, SINK)
                    timings.setdefault(label, []).append(seconds)
                    say(f"    {label}: {n} in {seconds:.2f}s = {n / seconds:,.0f} msg/s")
            reference = min(timings[CONFIRM_EACH])
            for section, label, _, _, compares in steps:
                baseline = reference if compares else compares
                results.setdefault(section, []).append(row(label, n, timings[label], baseline))

            say("3. consuming end to end: publish N (pipelined) → handled and acked")
            runs = [
                ("raw pika consumer, ack only", "raw pika consumer, ack only",
                 lambda: raw_consumer_run(uri, n)),
                ("raw pika consumer + validate + inbox/effect rows (SQLite)", "raw pika consumer + SQLite inbox",
                 lambda: raw_consumer_run(uri, n, db_dir=tmp)),
                ("kernel: probe service, @handles + inbox + effect (SQLite)", "probe service (nameko + kernel)",
                 lambda: service_run(uri, n, tmp / "probe")),
            ]
            baseline = None
            for label, process, measure in runs:
                say(f"  {label} (its own process) …")
                measured = measure()
                results.setdefault("consume", []).append(row(label, n, [measured["seconds"]], baseline))
                memory.append((process, measured))
                baseline = baseline or measured["seconds"]
                say(f"    {n} in {measured['seconds']:.2f}s = {n / measured['seconds']:,.0f} msg/s, "
                    f"RSS {measured['after']['rss'] / MIB:.0f} MiB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results, memory


# --- the report --------------------------------------------------------------------------------


def table(rows):
    lines = ["| measurement | messages | seconds | msg/s | relative to raw | runs (s) |",
             "|---|---:|---:|---:|---:|---:|"]
    for item in rows:
        if item["baseline"] is None:
            relative = "baseline"
        elif item["baseline"] is False:  # nothing comparable in its table
            relative = "—"
        else:
            relative = f"{item['baseline'] / item['seconds']:.2f}×"
        runs = " / ".join(f"{seconds:.2f}" for seconds in item["runs"])
        lines.append(f"| {item['label']} | {item['n']} | {item['seconds']:.2f} | {item['rate']:,.0f} | {relative} "
                     f"| {runs} |")
    return "\n".join(lines)


def memory_table(memory, n):
    lines = ["| process | RSS idle (MiB) | RSS after (MiB) | peak RSS (MiB) | CPU seconds for the run "
             "| CPU ms per message |",
             "|---|---:|---:|---:|---:|---:|"]
    for label, measured in memory:
        idle, after = measured["idle"], measured["after"]
        cpu = after["cpu"] - idle["cpu"]
        lines.append(f"| {label} | {idle['rss'] / MIB:.1f} | {after['rss'] / MIB:.1f} | {after['peak'] / MIB:.1f} | "
                     f"{cpu:.2f} | {cpu / n * 1000:.2f} |")
    return "\n".join(lines)


def rate(results, section, prefix):
    return next((item["rate"] for item in results.get(section, []) if item["label"].startswith(prefix)), None)


def meaning(results, memory, n):
    """The 'what this means' paragraphs; every comparison is computed from this run's numbers."""
    each = rate(results, "raw", "pika, confirm per message")
    pipelined = rate(results, "raw", "pika, pipelined")
    drain = rate(results, "raw", "pika consumer")
    kombu = rate(results, "publish", "ConfirmedPublisher")
    relay_sqlite = rate(results, "publish", "outbox relay, SQLite")
    relay_pg = rate(results, "publish", "outbox relay, PostgreSQL")
    raw_ack = rate(results, "consume", "raw pika consumer, ack only")
    raw_db = rate(results, "consume", "raw pika consumer +")
    kernel = rate(results, "consume", "kernel")
    ms = lambda per_second: 1000 / per_second  # noqa: E731 - per-message cost

    overhead = ms(kombu) - ms(each)
    publishing = (
        f"**Publishing.** A publisher confirm per message costs a broker round trip (on a quorum queue, a "
        f"replicated log write) for every message: pika does {each:,.0f} msg/s that way ({ms(each):.2f} ms per "
        f"message) and {pipelined:,.0f} msg/s with up to {WINDOW} confirms in flight ({pipelined / each:.1f}× "
        f"more). The kernel's ConfirmedPublisher also waits for each confirm: {kombu:,.0f} msg/s, "
        f"{ms(kombu):.2f} ms per message, {overhead:+.2f} ms against pika's round trip")
    publishing += (", so the round trip, not kombu/py-amqp, sets its pace." if kombu >= 0.7 * each else
                   f"; kombu/py-amqp cost noticeably more than the round trip here ({kombu / each:.2f}×).")

    slowest_relay = min(rate for rate in (relay_sqlite, relay_pg) if rate)
    relays = f"{relay_sqlite:,.0f} msg/s on SQLite ({ms(relay_sqlite):.2f} ms a row)"
    if relay_pg:
        relays += f" and {relay_pg:,.0f} msg/s on PostgreSQL ({ms(relay_pg):.2f} ms a row)"
    relaying = (
        f"**Outbox relay.** `relay_once` takes a batch of up to {RELAY_BATCH} pending rows, publishes them with "
        f"their confirms in flight (`ConfirmedPublisher.publish_many`: one wait for the batch, not a round trip "
        f"each), then marks the confirmed rows sent in one commit: {relays}, against {pipelined:,.0f} msg/s for "
        f"pika's own pipelined publishing and {kombu:,.0f} msg/s for a confirm per message. The price of "
        f"batching is what a crash between the confirms and the commit re-sends: up to a whole batch, which "
        f"the consumers' inbox absorbs. The network's own traffic (intakes, referrals, calendar changes at "
        f"human pace) is orders of magnitude below {slowest_relay:,.0f} msg/s; the batch matters when a "
        f"backlog drains, e.g. after a broker outage or a bulk import.")

    consuming = (
        f"**Consuming.** End to end, the raw pika consumer that only acks handles {raw_ack:,.0f} msg/s "
        f"({ms(raw_ack):.2f} ms per message)")
    if drain and drain > raw_ack:
        consuming += (f"; draining an already full queue it does {drain:,.0f} msg/s (end to end, the publisher, "
                      f"the broker and the consumer share {os.cpu_count()} cores)")
    consuming += (
        f". Doing a service's durable work by hand (validate the envelope, inbox and effect rows in one "
        f"SQLite transaction, then ack) brings it to {raw_db:,.0f} msg/s: that work costs "
        f"{ms(raw_db) - ms(raw_ack):.2f} ms per message. The real service process does {kernel:,.0f} msg/s "
        f"({kernel / raw_ack:.2f}× the ack-only consumer, {kernel / raw_db:.2f}× the one doing the same inbox "
        f"write): the remaining {ms(kernel) - ms(raw_db):.2f} ms per message is a nameko worker per message "
        f"under eventlet, the kernel's routing and contract validation, and the probe's extra transaction "
        f"(it records each attempt in its own commit before the effect).")
    usage = dict(memory)
    service, raw_db_usage = usage.get("probe service (nameko + kernel)"), usage.get("raw pika consumer + SQLite inbox")
    if service and raw_db_usage:
        cpu = lambda measured: (measured["after"]["cpu"] - measured["idle"]["cpu"]) / n * 1000  # noqa: E731
        consuming += (f" In CPU time: {cpu(service):.2f} ms per message in the service process against "
                      f"{cpu(raw_db_usage):.2f} ms in the raw consumer with the inbox write")
        if cpu(service) > 0.6 * ms(kernel):
            consuming += (f" (the service process is busy on CPU for {cpu(service) / ms(kernel):.0%} of its "
                          f"{ms(kernel):.2f} ms per message: one service process keeps about one core busy at "
                          f"full load)")
        if cpu(raw_db_usage) < ms(raw_db):
            consuming += (f"; the raw consumer with the inbox write waits {ms(raw_db) - cpu(raw_db_usage):.2f} ms "
                          f"of its {ms(raw_db):.2f} ms per message (the disk, the broker)")
        consuming += "."

    text = [publishing, relaying, consuming]
    raw_usage = usage.get("raw pika consumer, ack only")
    if service and raw_usage:
        processes = len(tansiq_config.SERVICES)
        text.append(
            f"**Memory.** A service process uses {service['idle']['rss'] / MIB:.0f} MiB RSS once consuming "
            f"(Python, nameko, eventlet, SQLAlchemy, the contracts) and {service['after']['rss'] / MIB:.0f} MiB "
            f"after {n} messages, against {raw_usage['idle']['rss'] / MIB:.0f} MiB for a bare pika consumer. The "
            f"probe loads only the kernel and real services load more code, so counting each of the {processes} "
            f"processes of `tansiq up` at the probe's size gives a floor, "
            f"~{processes * service['after']['rss'] / MIB:.0f} MiB for the whole network on one machine, plus "
            f"RabbitMQ and PostgreSQL.")
    return "\n\n".join(text)


def run_flows(args, results):
    """Section 5: the real flows through real processes, beside this run's raw floor (tansiq/bench_flows.py)."""
    from tansiq import bench_flows, bench_lists

    tests = str(ROOT / "tests")
    if tests not in sys.path:  # the flows run networks with tests/harness.py
        sys.path.insert(0, tests)
    backends = [name.strip() for name in args.flow_backends.split(",") if name.strip()]
    rates = [float(rate) if "." in rate else int(rate) for rate in args.flow_rates.split(",") if rate.strip()]
    say("5. the real flows: notifications backlog, referral loop through the API, lists at size")
    variants = bench_flows.DRAIN_VARIANTS if args.drain == "all" else ((100, False),)
    rows = bench_flows.run(backends, rates, args.flow_seconds, args.backlog, variants)
    lists = None
    if args.list_notifications:
        sizes = bench_lists.arguments(["--notifications", str(args.list_notifications), "--referrals",
                                       str(args.list_referrals), "--runs", str(args.list_runs)])
        with pg_database() as pg_url:
            lists = bench_lists.measure(sizes, pg_url if "postgres" in backends else None, say)
    floor = {label: rate(results, section, label) for section, label in (
        ("raw", f"pika, pipelined confirms (window {WINDOW})"), ("raw", CONFIRM_EACH),
        ("consume", "raw pika consumer, ack only"), ("consume", "kernel: probe service"))}
    return bench_flows.section(rows, lists, {k: v for k, v in floor.items() if v}, args)


def report(n, info, results, memory, elapsed, busy=False, flows=""):
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    size = len(envelopes(1)[0].to_bytes())
    machine_rows = "\n".join(f"| {key} | {value} |" for key, value in info.items())
    sections = [
        "# Benchmarks",
        f"Written by `tansiq bench --messages {n}` (`make bench`) on {now}; the whole run took {elapsed:.0f} s. "
        "Every row times N messages on this machine, raw broker and kernel side by side in the same run, "
        f"in a throwaway vhost. Messages are real `ma.tansiq.beneficiary.registered.v1` envelopes ({size} bytes), "
        "persistent, into quorum queues like the services' own; SQLite files sit in a temporary folder under "
        "`var/`, on the services' own disk. These are figures to compare, not guarantees: "
        "rerun `make bench` on the target machine."
        + (" Other work was running on this machine during the run (load average above the core count, see "
           "below): compare rows within a table rather than with another run." if busy else ""),
        "## Machine",
        "| | |\n|---|---|\n" + machine_rows,
        "## 1. Raw broker baseline (pika)",
        "Publishing through the `tansiq.events` topic exchange with `mandatory`; the consumer row drains the "
        f"queue a pipelined publish filled, acking each message (prefetch {PREFETCH}, as a nameko service); "
        "consumers are compared end to end in section 3. Sections 1 and 2 run as "
        f"{ROUNDS} interleaved rounds (each round runs every row once; fewer when the rounds took over "
        f"{ROUNDS_BUDGET_SECONDS} s); seconds is the best round (the one least disturbed by other work, as "
        "`timeit` does), the last column lists every round.",
        table(results["raw"]),
        "## 2. The kernel's publishing path",
        "`tansiq.messaging.broker.ConfirmedPublisher` (kombu/py-amqp, a confirm per message, `mandatory`), then "
        "the outbox relay: N rows written with `tansiq.messaging.outbox.add` in one transaction (not timed), "
        "then `tansiq.messaging.relay.relay_once(engine, publisher)` timed until the outbox is empty. "
        "Relative to the raw confirm-per-message row.",
        table(results["publish"]),
        "## 3. The kernel's consuming path, end to end",
        "From the first publish (pipelined, straight to the consumer's queue) until the last message is handled: "
        "for the raw consumers, the time of their last ack; for the probe service "
        "(`tests/fixtures/probe_service.py` run as `tansiq run events --service-class …`), the moment its "
        "SQLite file holds N effect rows. One run each; relative to the raw ack-only consumer.",
        table(results["consume"]),
        "## 4. Memory and CPU",
        "RSS from `/proc/<pid>/status` (VmRSS; peak is VmHWM) once the process is consuming (idle) and after "
        "the N messages of section 3; CPU is user + system time spent during the run.",
        memory_table(memory, n),
        *([flows] if flows else []),
        "## What this means",
        meaning(results, memory, n),
    ]
    return "\n\n".join(sections) + "\n"


CALENDAR_MARK = "<!-- calendar bench: tansiq bench --calendar-events N -->"
# What follows this mark (the reading of the figures, written by hand) is kept when the rows are rewritten.
CALENDAR_END_MARK = "<!-- end of the calendar bench's rows: what follows is written by hand -->"
FINDINGS_MARK = "<!-- written by hand, kept by tansiq bench: what the profiles found -->"


def calendar_main(args):
    """Only the calendar rows: measured on PostgreSQL, spliced into the output after CALENDAR_MARK."""
    from tansiq import bench_calendar

    for path in (str(ROOT), str(ROOT / "tests")):  # the API row runs a network with tests/harness.py
        if path not in sys.path:
            sys.path.insert(0, path)
    say(f"tansiq bench: the calendar at {args.calendar_events} events (PostgreSQL)")
    with pg_database() as pg_url:
        if pg_url is None:
            return 1
        measured = bench_calendar.run(args.calendar_events, pg_url, creates=args.calendar_creates,
                                      through_api=args.calendar_api)
        text = bench_calendar.section(args.calendar_events, *measured)
    output = Path(args.output)
    before = output.read_text(encoding="utf-8") if output.exists() else ""
    output.write_text(splice_calendar(before, text), encoding="utf-8")
    say(f"wrote the calendar rows to {output}")
    return 0


def splice_calendar(document, rows):
    """`document` with the text between CALENDAR_MARK and CALENDAR_END_MARK replaced by `rows` (added at
    its end when it has none); what precedes and follows the pair is kept as it is."""
    head, mark, rest = document.partition(CALENDAR_MARK)
    tail = rest.partition(CALENDAR_END_MARK)[2] if CALENDAR_END_MARK in rest else "\n"  # none: all rows
    if not mark:
        head = head.rstrip("\n") + "\n\n" if head.strip() else ""
    return f"{head}{CALENDAR_MARK}\n{rows}\n{CALENDAR_END_MARK}{tail}"


def main(args):
    if getattr(args, "calendar_events", 0):
        return calendar_main(args)
    logging.getLogger("pika").setLevel(logging.ERROR)
    if str(ROOT) not in sys.path:  # the probe service lives in tests/fixtures
        sys.path.insert(0, str(ROOT))
    n = args.messages
    amqp_uri = tansiq_config.amqp_uri()
    started = time.monotonic()
    say(f"tansiq bench: {n} messages per measurement, broker {urlsplit(amqp_uri).hostname}")
    info = machine(amqp_uri)
    load_before = os.getloadavg()
    results, memory = run(amqp_uri, n)
    flows = run_flows(args, results) if getattr(args, "flows", False) else ""
    load_after = os.getloadavg()
    info["Load average (1, 5, 15 min)"] = (f"{' / '.join(f'{x:.2f}' for x in load_before)} at the start, "
                                           f"{' / '.join(f'{x:.2f}' for x in load_after)} at the end")
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    busy = max(load_before[0], load_after[0]) > (os.cpu_count() or 1)
    previous = output.read_text(encoding="utf-8") if output.exists() else ""
    calendar = CALENDAR_MARK + previous.split(CALENDAR_MARK, 1)[1] if CALENDAR_MARK in previous else ""
    before_calendar = previous.split(CALENDAR_MARK, 1)[0]
    findings = (FINDINGS_MARK + before_calendar.split(FINDINGS_MARK, 1)[1].rstrip("\n") + "\n"
                if FINDINGS_MARK in before_calendar else "")
    output.write_text(report(n, info, results, memory, time.monotonic() - started, busy, flows)
                      + "".join(f"\n{kept}" for kept in (findings, calendar) if kept),
                      encoding="utf-8")  # the written findings and the calendar rows stay
    say(f"wrote {output} ({time.monotonic() - started:.0f}s)")
    return 0


def consumer_main(argv):
    """`python -m tansiq.bench consume URI QUEUE N [--db URL]`: the raw consumer, run as its own process.

    Prints "ready" once consuming, "done <monotonic time of the last ack>" after N,
    then waits for stdin to close so the parent can read its /proc figures.
    """
    parser = argparse.ArgumentParser(prog="tansiq.bench consume")
    parser.add_argument("uri")
    parser.add_argument("queue")
    parser.add_argument("n", type=int)
    parser.add_argument("--db")
    args = parser.parse_args(argv)
    handle = None
    if args.db:
        from tansiq import contracts
        from tansiq.db import make_engine, session_scope
        from tansiq.envelope import parse
        from tansiq.messaging import inbox
        from tests.fixtures.probe_service import Effect

        engine = make_engine(args.db)

        def handle(body):
            envelope = contracts.validate(parse(body))
            with session_scope(engine) as session:
                if inbox.first_time(session, "bench", envelope):
                    session.add(Effect(message_id=envelope.id, city=envelope.data["city"]))

    with pika_channel(args.uri) as channel:
        consume(channel, args.queue, args.n, handle)
        print("ready", flush=True)
        channel.start_consuming()
        print("done", time.monotonic(), flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "consume":
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        consumer_main(sys.argv[2:])
    else:
        from tansiq.cli import main as cli_main

        sys.exit(cli_main(["bench", *sys.argv[1:]]))
