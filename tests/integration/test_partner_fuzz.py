"""Property-based fuzz of the partner ingress, against the real broker and the real services.

Hypothesis generates partner messages over every family of hostile input (body, envelope
attributes, schema fields, numbers, Unicode, nesting, signatures, identity, replays, id reuse,
unknown and receive-only types, recurrence rules); they are published pipelined on one pika
channel as a provisioned partner would. Then, for every message: applied exactly once, or
answered `message.rejected.v1` with a reason on the partner's queue AND kept in a dead-letter
queue; none without an answer; every service alive and still applying a valid message.

TANSIQ_FUZZ_MESSAGES sets the number of generated messages (default 1,000, sized for CI).
TANSIQ_FUZZ_HOSTILE_RRULES=1 adds the recurrence rules that need bounded expansion
(INTERVAL=0, no-end SECONDLY, COUNT=1000000).
"""

import base64
import json
import os
import sqlite3
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import quote

import pika
import pytest
from harness import BROKER_HOST, add_partner_association, eventually, random_slug
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tansiq import config, contracts, ops, signing
from tansiq.broker_admin import BrokerAdmin
from tansiq.envelope import MAX_BODY_BYTES, parse
from tansiq.errors import REASON_CODES
from tansiq.messaging import topology

MESSAGES = int(os.environ.get("TANSIQ_FUZZ_MESSAGES", "1000"))
HOSTILE_RRULES = os.environ.get("TANSIQ_FUZZ_HOSTILE_RRULES") == "1"
SERVICES = ("directory", "referrals", "events")
SENT = "ma.tansiq.referral.sent.v1"
PUBLISHED = "ma.tansiq.event.published.v1"
REJECTED = "ma.tansiq.message.rejected.v1"
RECIPIENT = "wafae-marrakech"  # a demo association using the app: a partner may refer to it
PARTNER_QUEUES = (topology.partner_inbound_queue("referrals"), topology.partner_inbound_queue("events"),
                  topology.PARTNERS_UNHANDLED)  # their dead-letter queues keep every refusal
NOT_FOR_PARTNERS = sorted(t for t, c in contracts.all_contracts().items() if c.partners not in ("send", "both"))
SAFE_RRULES = ["FREQ=WEEKLY;COUNT=4", "FREQ=DAILY;COUNT=3", "FREQ=MONTHLY;INTERVAL=2;COUNT=5",
               "FREQ=WEEKLY;BYDAY=SA;UNTIL=20270601T000000Z", "FREQ=YEARLY;COUNT=2", "RRULE:FREQ=WEEKLY;COUNT=2",
               "FREQ=DAILY;COUNT=2;UNTIL=20270601T000000Z", "FREQ=FORTNIGHTLY", "COUNT=3", "FREQ=WEEKLY;BYDAY=XX",
               "FREQ=DAILY;INTERVAL=-1;COUNT=2", "FREQ=WEEKLY;UNTIL=notadate", ""]
HOSTILE = ["FREQ=DAILY;INTERVAL=0", "FREQ=SECONDLY", "FREQ=MINUTELY", "FREQ=YEARLY;COUNT=1000000"]

# --- what hypothesis generates: a family and its parameters; the bytes are built at publish time ---------------

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                         st.text(max_size=30))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                                 st.dictionaries(st.text(max_size=8), inner,
                                                                                 max_size=4)), max_leaves=12)
ATTRIBUTES = ["specversion", "id", "source", "type", "time", "datacontenttype", "dataschema", "correlationid"]
REFERRAL_FIELDS = ["from_association", "to_association", "service_category", "urgency", "reason", "shared",
                   "consent_id", "ack_due", "response_due", "rerouted_from"]
EVENT_FIELDS = ["organiser", "co_organisers", "title", "kind", "city", "venue", "starts_at", "ends_at", "tz",
                "all_day", "rrule", "sequence", "status", "visibility", "exdates", "moved"]
TEXT_FIELDS = {SENT: ["reason", "service_category"], PUBLISHED: ["title", "city", "venue", "tz"]}
numbers = st.one_of(st.integers(min_value=-2**70, max_value=2**70), st.floats(allow_nan=False, allow_infinity=False),
                    st.integers(0, 3000).map(str), st.booleans(), st.just(1e308),
                    st.sampled_from([-1, 0, 2**31, 2**63]))
kinds = st.sampled_from([SENT, PUBLISHED])

FAMILIES = {
    "valid": st.tuples(kinds),
    "body": st.one_of(st.tuples(st.just("empty")), st.tuples(st.just("broken"), st.binary(max_size=200)),
                      st.tuples(st.just("huge"), st.integers(1, 4096)),
                      st.tuples(st.just("encoding"), st.sampled_from(["utf-16", "utf-32", "latin-1", "utf-8-sig"]))),
    "envelope": st.tuples(kinds, st.sampled_from(ATTRIBUTES + ["extension", "drop"]), st.sampled_from(ATTRIBUTES),
                          json_values, st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", max_size=25)),
    "schema": st.one_of(
        st.tuples(st.just(SENT), st.sampled_from(REFERRAL_FIELDS), json_values, st.booleans()),
        st.tuples(st.just(PUBLISHED), st.sampled_from(EVENT_FIELDS), json_values, st.booleans())),
    "numbers": st.tuples(st.sampled_from(["sequence", "birth_year", "year"]), numbers),
    "unicode": st.tuples(kinds, st.text(min_size=0, max_size=300), st.booleans()),
    "nesting": st.tuples(kinds, st.integers(1, 2000), st.booleans()),
    "signatures": st.one_of(st.tuples(st.just("value"), json_values),
                            st.tuples(st.just("short"), st.binary(min_size=0, max_size=100)),
                            st.tuples(st.just("kind"),
                                      st.sampled_from(["missing", "other_key", "tampered", "random"]))),
    "identity": st.tuples(st.sampled_from(["other_source", "no_user_id", "type_mismatch", "deep_key",
                                           "kernel_headers"]), kinds),
    "replay": st.tuples(st.integers(0, 10**6)),
    "id_reuse": st.tuples(st.integers(0, 10**6)),
    "unknown_type": st.tuples(st.one_of(st.sampled_from(NOT_FOR_PARTNERS),
                                        st.from_regex(r"\Ama\.tansiq\.[a-z_]{1,12}\.[a-z_]{1,12}\.v[0-9]\Z")),
                              json_values),
    "recurrence": st.tuples(st.one_of(st.sampled_from(SAFE_RRULES + (HOSTILE if HOSTILE_RRULES else [])),
                                      st.text(max_size=60),
                                      st.builds("FREQ={};INTERVAL={};COUNT={}".format,
                                                st.sampled_from(["DAILY", "WEEKLY", "MONTHLY", "YEARLY"]),
                                                st.integers(1, 9), st.integers(1, 30)))),
}
# Valid messages weigh more: replays and id reuse draw on them. The salt keeps small families from being
# exhausted (hypothesis does not repeat an example).
WEIGHTS = {"valid": 3, "identity": 2, "replay": 2, "id_reuse": 2}
specs = st.sampled_from([family for family in sorted(FAMILIES) for _ in range(WEIGHTS.get(family, 1))]).flatmap(
    lambda family: st.tuples(st.just(family), FAMILIES[family], st.integers(0, 2**32)))


# --- the partner side --------------------------------------------------------------------------------------------

@dataclass
class Case:
    family: str
    message_id: str             # AMQP message_id (unique): the answer's rejected_id when the body is unreadable
    envelope_id: str | None     # the envelope id, when the body has a readable one
    resource: tuple | None      # ("referral"|"event", id) a successful apply creates
    must_reject: bool = False
    reason: str | None = None   # the one reason that must come back, when it is certain
    group: str | None = None    # id reuse: the messages sharing one envelope id
    body: bytes = b""
    routing_key: str = ""
    properties: dict = field(default_factory=dict)


class FuzzPartner:
    def __init__(self, network, slug, key, uri):
        self.network, self.slug, self.key, self.uri = network, slug, key, uri
        self.connection = pika.BlockingConnection(pika.URLParameters(uri))
        self.channel = self.connection.channel()
        self.returned = []
        self.channel.add_on_return_callback(lambda *args: self.returned.append(args[2].message_id))
        self.cases, self.valid = [], []
        self.counter = 0

    # envelopes
    def next_id(self, family):
        self.counter += 1
        return f"fz-{family}-{self.counter}-{uuid.uuid4().hex[:6]}"

    def data(self, kind, resource_id):
        if kind == SENT:
            return {"referral_id": resource_id, "from_association": self.slug, "to_association": RECIPIENT,
                    "service_category": "legal_orientation", "urgency": "normal", "reason": "Orientation",
                    "shared": {"first_name": "Loubna", "birth_year": 1990}}
        day = 1 + self.counter % 27
        return {"event_id": resource_id, "organiser": self.slug, "title": "Foire", "kind": "fair",
                "city": "Casablanca", "starts_at": f"2027-05-{day:02d}T09:00:00+00:00",
                "ends_at": f"2027-05-{day:02d}T17:00:00+00:00", "visibility": "public", "status": "published"}

    def envelope(self, kind, message_id, data):
        return {"specversion": "1.0", "id": message_id, "source": self.slug, "type": kind,
                "time": "2026-11-30T10:00:00.000+00:00", "datacontenttype": "application/json",
                "dataschema": f"urn:tansiq:contract:{kind}", "data": data}

    def sign(self, raw, key=None):
        unsigned = {k: v for k, v in raw.items() if k != "signature"}
        canonical = json.dumps(unsigned, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode(
            "utf-8", "surrogatepass")
        return {**raw, "signature": base64.b64encode((key or self.key).sign(canonical)).decode()}

    def resource(self, kind, resource_id):
        return ("referral" if kind == SENT else "event", resource_id)

    def base(self, family, kind=SENT):
        message_id = self.next_id(family)
        resource_id = message_id[:60]
        return message_id, self.envelope(kind, message_id, self.data(kind, resource_id)), \
            self.resource(kind, resource_id)

    # one case per generated spec
    def build(self, family, params):  # noqa: C901 - one branch per family, read as a table
        kind = params[0] if params and params[0] in (SENT, PUBLISHED) else SENT
        message_id, raw, resource = self.base(family, kind)
        case = Case(family, message_id, message_id, resource, routing_key=f"{self.slug}.{kind}")
        body = None
        if family == "valid":
            self.valid.append(case)
        elif family == "body":
            case.must_reject, case.resource, case.envelope_id = True, None, None
            shape = params[0]
            if shape == "empty":
                body = b""
            elif shape == "broken":
                body = b"{" + params[1]
            elif shape == "huge":
                raw["data"]["reason"] = "x" * (MAX_BODY_BYTES + params[1])
                body, case.reason = json.dumps(self.sign(raw)).encode(), "oversized"
            else:
                raw["data"]["reason"] = "Orientation juridique à Salé"
                body = json.dumps(self.sign(raw), ensure_ascii=False).encode(params[1])  # BOM: not plain JSON
        elif family == "envelope":
            _, change, attribute, value, name = params
            if change == "drop":
                raw.pop(attribute, None)
            elif change == "extension":
                raw["x" + name] = value  # never one of the known attributes
            else:
                raw[change] = value
                if change == "id":
                    case.envelope_id = value if isinstance(value, str) else None
                    if isinstance(value, str) and value:
                        raw["id"] = case.envelope_id = f"{message_id}{value}"  # unique, may still be refused
            raw = self.sign(raw)
        elif family == "schema":
            _, name, value, drop = params
            if drop:
                raw["data"].pop(name, None)
            else:
                raw["data"][name] = value
            raw = self.sign(raw)
        elif family == "numbers":
            name, value = params
            if name == "sequence":
                message_id, raw, resource = self.base(family, PUBLISHED)
                raw["data"]["sequence"] = value
            elif name == "birth_year":
                raw["data"]["shared"]["birth_year"] = value
            else:
                message_id, raw, resource = self.base(family, PUBLISHED)
                raw["data"]["starts_at"] = f"{value}-05-01T09:00:00+00:00"
            case = Case(family, message_id, message_id, resource, routing_key=f"{self.slug}.{raw['type']}")
            raw = self.sign(raw)
        elif family == "unicode":
            _, text, lone_surrogate = params
            for name in TEXT_FIELDS[kind]:
                raw["data"][name] = text
            raw = self.sign(raw)
            body = json.dumps(raw).encode()  # ASCII with \\u escapes
            if lone_surrogate:
                body = body.replace(b'"Foire"' if kind == PUBLISHED else b'"Orientation"', b'"\\ud800x"')
                body = body.replace(b'"data": {', b'"data": {"note": "\\udc00", ', 1)
        elif family == "nesting":
            _, depth, as_object = params
            nested = b"[" * depth + b"]" * depth if not as_object else b'{"a":' * depth + b"1" + b"}" * depth
            raw["data"]["extra"] = "__NESTED__"
            raw = self.sign(raw)  # the signature is over the placeholder: deep and shallow are refused or ignored
            body = json.dumps(raw).encode().replace(b'"__NESTED__"', nested)
            if depth > 32:
                case.reason = "malformed_json"
            case.must_reject = True  # the signature no longer matches the body: never applied
        elif family == "signatures":
            case.must_reject = True
            shape = params[0]
            if shape == "value":
                raw["signature"] = params[1]
            elif shape == "short":
                raw["signature"] = base64.b64encode(params[1]).decode()
            elif params[1] == "missing":
                pass
            elif params[1] == "other_key":
                raw = self.sign(raw, signing.generate_key())
            elif params[1] == "tampered":
                raw = self.sign(raw)
                raw["data"]["urgency" if kind == SENT else "title"] = "low" if kind == SENT else "Autre"
            else:
                raw["signature"] = base64.b64encode(os.urandom(64)).decode()
        elif family == "identity":
            shape = params[0]
            case.must_reject = shape != "kernel_headers"
            if shape == "other_source":
                raw["source"] = "amal-safi"
                case.reason = "forged_sender"
            elif shape == "no_user_id":
                case.properties["user_id"] = None
                case.reason = "forged_sender"
            elif shape == "type_mismatch":
                case.routing_key = f"{self.slug}.{PUBLISHED if kind == SENT else SENT}"
            elif shape == "deep_key":
                case.routing_key = f"{self.slug}.x.{kind}"
            else:  # a partner setting the kernel's own headers: stripped at ingress, the message still applies
                case.properties["headers"] = {"x-tansiq-sender": "amal-safi", "x-tansiq-attempts": "many",
                                              "x-tansiq-routing-key": "amal-safi.x"}
                self.valid.append(case)
            raw = self.sign(raw)
        elif family == "replay":
            if not self.valid:
                return self.build("valid", (kind,))
            original = self.valid[params[0] % len(self.valid)]
            return Case(family, original.message_id, original.envelope_id, None, body=original.body,
                        routing_key=original.routing_key, properties=dict(original.properties),
                        group="replay")
        elif family == "id_reuse":
            if not self.valid:
                return self.build("valid", (kind,))
            original = self.valid[params[0] % len(self.valid)]
            if original.group is None:
                original.group = original.envelope_id
            raw = self.sign({**raw, "id": original.envelope_id, "type": original.routing_key.split(".", 1)[1],
                             "data": self.data(original.routing_key.split(".", 1)[1], message_id[:60])})
            case = Case(family, message_id, original.envelope_id,
                        self.resource(raw["type"], message_id[:60]), group=original.envelope_id,
                        routing_key=original.routing_key)
        elif family == "unknown_type":
            type_, value = params
            raw = self.sign({**raw, "type": type_, "data": value if isinstance(value, dict) else {"value": value}})
            case = Case(family, message_id, message_id, None, must_reject=True, reason="unknown_type",
                        routing_key=f"{self.slug}.{type_}")
        elif family == "recurrence":
            message_id, raw, resource = self.base(family, PUBLISHED)
            raw["data"]["rrule"] = params[0]
            raw = self.sign(raw)
            case = Case(family, message_id, message_id, resource, routing_key=f"{self.slug}.{PUBLISHED}")
        case.body = body if body is not None else json.dumps(raw if "signature" in raw or family in (
            "signatures", "body") else self.sign(raw), ensure_ascii=False).encode("utf-8", "surrogatepass")
        return case

    def publish(self, case):
        properties = {"user_id": self.slug, "delivery_mode": 2, "message_id": case.message_id,
                      "content_type": "application/cloudevents+json", **case.properties}
        self.channel.basic_publish(topology.PARTNERS_INBOUND, case.routing_key, case.body,
                                   pika.BasicProperties(**properties), mandatory=True)
        self.cases.append(case)

    def answers(self, into):
        while True:
            method, _, body = self.channel.basic_get(topology.partner_queue(self.slug), auto_ack=True)
            if method is None:
                return into
            envelope = parse(body)
            if envelope.type == REJECTED:  # the network's calendar changes come here too
                into.append(envelope.data)

    def broker_refuses(self, user_id=None, routing_key=None):
        """Identity the broker itself refuses (another user_id, another partner's routing key): the
        channel is closed and nothing reaches Tansiq."""
        channel = self.connection.channel()
        try:
            channel.basic_publish(topology.PARTNERS_INBOUND, routing_key or f"{self.slug}.{SENT}", b"{}",
                                  pika.BasicProperties(user_id=user_id or self.slug, message_id=self.next_id("x")))
            channel.basic_qos(prefetch_count=1)  # a round trip: the refusal arrives before its answer
        except pika.exceptions.ChannelClosedByBroker as closed:
            return closed.reply_code
        finally:
            if channel.is_open:
                channel.close()
        return None


# --- the test ----------------------------------------------------------------------------------------------------

@pytest.fixture
def fuzz_network(network_factory):
    network = network_factory()
    network.migrate()
    network.seed()
    slug = random_slug("fuzz")
    add_partner_association(network, slug)
    admin = BrokerAdmin(vhost=network.vhost)
    admin.declare_topology()
    password = admin.add_partner(slug)["password"]
    key = signing.generate_key()
    network.start("directory")
    with network.rpc() as rpc:
        rpc.directory.set_public_key(slug, signing.public_key_b64(key))
    network.start("intake", "referrals", "events")  # referrals waits for intake, which it calls
    partner = FuzzPartner(network, slug, key, f"amqp://{slug}:{quote(password, safe='')}@{BROKER_HOST}:5672/"
                                              f"{quote(network.vhost, safe='')}")
    yield network, partner
    try:
        partner.connection.close()
    finally:
        admin.revoke_partner(slug)


def applied(network, cases, slug):
    """{("referral"|"event", id)} of the cases' resources that exist, read from the services' databases."""
    def rows(service, query, ids):
        path = config.load(service, environ=network.env)["DB_URI"].removeprefix("sqlite:///")
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as db:
            return {row[0] for chunk in range(0, len(ids), 500)
                    for row in db.execute(query.format(",".join("?" * len(ids[chunk:chunk + 500]))),
                                          ids[chunk:chunk + 500])}

    referrals = [r[1] for r in (c.resource for c in cases) if r and r[0] == "referral"]
    events = [r[1] for r in (c.resource for c in cases) if r and r[0] == "event"]
    found = {("referral", i) for i in rows("referrals", "select id from referrals where id in ({})", referrals)}
    uids = {f"{i}@{slug}.partner.tansiq.ma": i for i in events}
    found |= {("event", uids[u]) for u in rows("events", "select uid from events where uid in ({})", list(uids))}
    return found


def send_counts(network, referral_ids):
    path = config.load("referrals", environ=network.env)["DB_URI"].removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as db:
        return Counter(row[0] for row in db.execute(
            "select referral_id from referral_history where action = 'send'") if row[0] in referral_ids)


def test_hostile_partner_input_never_stops_the_network_and_every_message_is_answered(fuzz_network):
    network, partner = fuzz_network
    started = time.monotonic()

    @settings(max_examples=MESSAGES, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(spec=specs)
    def publish(spec):
        family, params, _salt = spec
        partner.publish(partner.build(family, params))

    while len(partner.cases) < MESSAGES:
        publish()
    broker_refused = [partner.broker_refuses(user_id="amal-safi") for _ in range(3)] + [
        partner.broker_refuses(routing_key=f"amal-safi.{SENT}") for _ in range(3)]
    published_in = time.monotonic() - started
    cases = partner.cases
    assert not partner.returned, "the catch-all binding takes every partner message"
    assert all(code in (403, 406) for code in broker_refused), broker_refused

    # Wait until every message is settled: applied, or answered.
    answers = []
    unique = [c for c in cases if c.group != "replay"]
    by_answer_id = {}
    for case in unique:
        for key in {case.message_id, (case.envelope_id or "")[:200]} - {""}:
            by_answer_id.setdefault(key, []).append(case)

    def unsettled():
        """Messages with neither an effect nor an answer (in an id-reuse group: fewer outcomes than members)."""
        partner.answers(answers)
        answered = Counter(a["rejected_id"] for a in answers)
        done = applied(network, unique, partner.slug)
        groups = Counter(c.group for c in unique if c.group)
        outcomes = Counter(c.group for c in unique if c.group and c.resource in done)
        return [c for c in unique if (
            outcomes[c.group] + answered[c.group] < groups[c.group] if c.group else
            c.resource not in done and not (answered.keys() & {c.message_id, (c.envelope_id or "")[:200]}))]

    eventually(lambda: not unsettled(), timeout=240, interval=1,
               message=f"messages with no effect and no answer: {[(c.family, c.message_id) for c in unsettled()][:10]}")
    settled_in = time.monotonic() - started
    done = applied(network, unique, partner.slug)

    # Every service is alive and still applies a valid message.
    assert all(network.procs[service].poll() is None for service in SERVICES)
    control = [partner.build("valid", (kind,)) for kind in (SENT, PUBLISHED)]
    for case in control:
        partner.publish(case)
    eventually(lambda: {c.resource for c in control} <= applied(network, control, partner.slug), timeout=60,
               message="a valid message after the fuzz")

    # Each message: applied exactly once, or rejected with a reason on the sender's queue and in a DLQ.
    reasons = Counter()
    rejected_ids = {}
    for answer in answers:
        assert answer["reason"] in REASON_CODES
        rejected_ids.setdefault(answer["rejected_id"], set()).add(answer["reason"])
    letters = {}
    for queue in PARTNER_QUEUES:
        for letter in ops.dead_letters(network.amqp_uri, queue, limit=100_000):
            assert letter["reason"] in REASON_CODES
            letters.setdefault(letter["message_id"], set()).add(letter["reason"])
    groups = {}
    for case in unique:
        answered = rejected_ids.get(case.message_id, set()) | rejected_ids.get((case.envelope_id or "")[:200], set())
        if case.group:
            groups.setdefault(case.group, []).append(case)
            continue
        is_applied = case.resource in done
        assert not (is_applied and answered), f"{case.family} {case.message_id}: applied and rejected"
        assert is_applied or answered, f"{case.family} {case.message_id}: no answer"
        if case.must_reject:
            assert not is_applied, f"{case.family} {case.message_id}: applied though it must be refused"
        if case.reason and answered:
            assert case.reason in answered, f"{case.family} {case.message_id}: {answered}, not {case.reason}"
        if answered:
            assert case.message_id in letters, f"{case.family} {case.message_id}: answered but not dead-lettered"
            reasons.update(answered)
    for envelope_id, members in groups.items():  # one envelope id, several contents: one applied, others refused
        assert sum(member.resource in done for member in members) == 1, envelope_id
        if len(members) > 1:
            assert "duplicate_id" in rejected_ids.get(envelope_id, set()), (envelope_id, rejected_ids.get(envelope_id))
    # Replays of applied messages had no second effect.
    referral_ids = {c.resource[1] for c in partner.valid if c.resource and c.resource[0] == "referral"}
    assert all(count == 1 for count in send_counts(network, referral_ids).values())

    families = Counter(case.family for case in cases)
    outcome = Counter((case.family, "applied" if case.resource in done else "rejected") for case in unique)
    print(f"\nfuzz: {len(cases)} messages published in {published_in:.1f}s, all settled after {settled_in:.1f}s; "
          f"{len(answers)} rejections, {sum(len(v) for v in letters.values())} dead-letter reasons")
    for family in sorted(families):
        print(f"  {family:<14} {families[family]:>5}   applied {outcome[(family, 'applied')]:>4}"
              f"   rejected {outcome[(family, 'rejected')]:>4}")
    print(f"  broker-refused identity (other user_id / routing key): {len(broker_refused)}")
    print("  reasons: " + ", ".join(f"{reason} {count}" for reason, count in reasons.most_common()))
    for answer in answers:
        if answer["reason"] == "handler_failed":  # not a refusal by a rule: worth reading
            sent = by_answer_id.get(answer["rejected_id"], [None])[0]
            print(f"  handler_failed {answer['rejected_type']}: {answer['detail'][:300]}\n    "
                  f"{sent.family if sent else '?'}: {sent.body[:600] if sent else ''}")
    assert len(cases) >= MESSAGES
