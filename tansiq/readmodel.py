"""Local read models of the directory: no user request waits on the directory for what it already said.

    class ReferralsService:
        directory = DirectoryView()          # instead of RpcProxy("directory")
        ...
        details = self.directory.get_association(slug)   # same answer as the RPC, read from memory

`DirectoryView` answers the directory's read RPCs (get_association, list_associations, find_services,
list_staff, get_staff) from a `DirectoryModel` every worker of the process shares, and the gateway's
session checks (`session(token_hash, …)`). The model is fed by `DirectoryFeed`:

- at start it binds an exclusive queue of its own (`<service>.readmodel.<random>`) to the directory's
  change types on the events exchange, *then* asks the directory once for a snapshot (RPC `snapshot`),
  *then* consumes: a change made while the snapshot was taken is in the queue, none is missed;
- every change carries the record's whole state and its version; the model keeps the newest version
  and ignores older or repeated ones, so order and duplicates do not matter;
- the queue is the process's own (each replica of a service sees every change) and lives as long as its
  connection: after a lost connection the feed binds a new queue and takes a new snapshot (the gap is
  closed by the snapshot; sessions missing from it are ended). So does a change it cannot read.
  Versions are per record and each change carries the whole record, so a skipped version is no gap
  (the newer state holds it): the only way to miss a change is to lose the queue, and that is exactly
  when the snapshot is taken again.

Why in memory: the directory of a network is small (associations, their services and staff: a few MB
at the most), a process rebuilds it in one snapshot, and it needs no migration, no inbox table and no
sharing between replicas. Requests wait for the first snapshot (`wait_ready`), never for the directory.
"""

import base64
import hashlib
import hmac
import logging
import time
import uuid

import eventlet
from eventlet.event import Event
from kombu import Consumer, binding
from kombu import Queue as KombuQueue
from nameko.extensions import DependencyProvider, SharedExtension

from tansiq import contracts
from tansiq.envelope import parse
from tansiq.errors import NotFound, NotReady
from tansiq.messaging import topology
from tansiq.messaging.broker import connect, declare, kombu_exchange

log = logging.getLogger(__name__)

ASSOCIATION_CHANGED, SESSION_OPENED, SESSIONS_REVOKED, STAFF_CHANGED = topology.DIRECTORY_CHANGES
READY_TIMEOUT_S = 60
SNAPSHOT_TIMEOUT_S = 10
BACKOFF_MAX_S = 10
LIVE, ENDED, UNKNOWN = "live", "ended", "unknown"


def digest(token):
    """SHA-256 (hex) of a session token: what the directory keeps and its change feed carries, never the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_for(token):
    """The CSRF token of a session, derived from its token: whoever can check the session can check the
    CSRF token without it being stored or sent anywhere, and a page of another site knows neither."""
    mac = hmac.new(token.encode(), b"tansiq-csrf", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


class DirectoryModel:
    """The directory as this process knows it: the newest version of each record it was told about."""

    def __init__(self):
        self.associations = {}  # slug -> state (with "services" and "version")
        self.staff = {}         # id -> state (with "active" and "version")
        self.sessions = {}      # token_hash -> {staff_id, created_at, last_seen, ended}
        self._awaited = {}      # token_hash -> [Event, waiters]: requests waiting for a session to be announced

    # --- feeding ---

    def apply(self, type_, data, now=None):
        """Apply one change; True if it changed the model (False: an older or repeated version)."""
        if type_ == ASSOCIATION_CHANGED:
            changed = _newer(self.associations, data["slug"], data)
        elif type_ == STAFF_CHANGED:
            changed = _newer(self.staff, data["id"], data)
        elif type_ == SESSION_OPENED:
            changed = self._session_opened(data, now or time.time())
        elif type_ == SESSIONS_REVOKED:
            changed = self.end_sessions(data["token_hashes"])
        else:
            raise ValueError(f"not a directory change: {type_}")
        return changed

    def load(self, snapshot, now=None):
        """Merge a snapshot (the directory's `snapshot` RPC): newer versions win, as for changes.

        With sessions: a session this model holds as live, opened before the snapshot was taken and absent
        from it, has ended meanwhile (a change lost with a connection): it is ended here too."""
        now = now or time.time()
        for state in snapshot.get("associations", ()):
            _newer(self.associations, state["slug"], state)
        for state in snapshot.get("staff", ()):
            _newer(self.staff, state["id"], state)
        if "sessions" in snapshot:
            listed = {row["token_hash"] for row in snapshot["sessions"]}
            taken_at = _epoch(snapshot["taken_at"])
            self.end_sessions([token_hash for token_hash, row in self.sessions.items()
                               if not row["ended"] and token_hash not in listed and row["created_at"] < taken_at])
            for row in snapshot["sessions"]:
                # The idle clock restarts at load: the directory's last_seen_at is not kept fresh (docs/security.md).
                self._session_opened(row, now)

    # --- the directory's read RPCs, same answers ---

    def get_association(self, slug):
        association = self.associations.get(slug)
        if association is None:
            raise NotFound(f"no association {slug!r} in the directory")
        return _public(association)

    def list_associations(self, city=None, category=None):
        found = [association for association in self.associations.values()
                 if (not city or association["city"] == city)
                 and (not category or any(s["category"] == category for s in association["services"]))]
        return [_public(association) for association in sorted(found, key=lambda a: (a["city"], a["slug"]))]

    def slugs(self, integration=None):
        """The associations' slugs (those integrating by `integration` if given), without copying their
        records: what a command checks on each call."""
        return {slug for slug, association in self.associations.items()
                if integration is None or association.get("integration") == integration}

    def find_services(self, category, city=None):
        """Active services of `category` (each with its association's city), as the directory orders them."""
        found = []
        for association in sorted(self.associations.values(), key=lambda a: (a["city"], a["slug"])):
            if city and association["city"] != city:
                continue
            found += [dict(_copied(s), city=association["city"]) for s in association["services"]
                      if s["category"] == category and s["status"] == "active"]
        return found

    def list_staff(self, association, role=None):
        self.get_association(association)
        return [_public(member) for _, member in sorted(self.staff.items())
                if member["association"] == association and member["active"]
                and (role is None or role in member["roles"])]

    def get_staff(self, staff_id):
        member = self.staff.get(staff_id)
        if member is None:
            raise NotFound(f"no staff member {staff_id!r}")
        return _public(member)

    def public_key(self, slug):
        """An association's Ed25519 signing key (base64), None if unknown or unpublished (partner checks)."""
        return (self.associations.get(slug) or {}).get("public_key")

    def staff_active(self, staff_id):
        member = self.staff.get(staff_id)
        return bool(member and member["active"])

    # --- sessions of the web app (the gateway's model only) ---

    def open_session(self, token_hash, staff, created_at, now=None):
        """A session this gateway opened itself (sign-in): known at once, before the directory's change arrives.
        `staff` (the directory's answer) is taken only if the model does not know her yet (version 0)."""
        self.staff.setdefault(staff["id"], {**_copied(staff), "active": True, "version": 0})
        self._session_opened({"token_hash": token_hash, "staff_id": staff["id"], "created_at": created_at},
                             now or time.time())

    def session(self, token_hash, now, idle_s, absolute_s):
        """(LIVE, staff), (ENDED, None) or (UNKNOWN, None); a live one is touched (its idle clock restarts)."""
        row = self.sessions.get(token_hash)
        if row is None:
            return UNKNOWN, None
        if not row["ended"] and (now - row["last_seen"] > idle_s or now - row["created_at"] > absolute_s):
            row["ended"] = True  # the directory ends it too when asked; a new sign-in is needed either way
        if row["ended"] or not self.staff_active(row["staff_id"]):
            return ENDED, None
        row["last_seen"] = now
        return LIVE, _public(self.staff[row["staff_id"]])

    def deactivate(self, staff_id):
        """She was deactivated by this process's own request: refused now, before the directory's change arrives."""
        if staff_id in self.staff:
            self.staff[staff_id]["active"] = False
        self.end_sessions(staff_id=staff_id)

    def end_sessions(self, token_hashes=(), staff_id=None):
        """End these sessions (or all of `staff_id`'s) at once; kept as ended so a late `opened` cannot revive one."""
        ended = 0
        for token_hash in token_hashes:
            row = self.sessions.setdefault(token_hash, {"staff_id": staff_id, "created_at": time.time(),
                                                        "last_seen": 0.0, "ended": False})
            ended += not row["ended"]
            row["ended"] = True
        if staff_id is not None:
            for row in self.sessions.values():
                if row["staff_id"] == staff_id and not row["ended"]:
                    row["ended"], ended = True, ended + 1
        return ended > 0

    def await_session(self, token_hash, timeout):
        """Wait up to `timeout` seconds for the feed to announce this session (one opened on another gateway a
        moment ago); True if it did. Only a green thread waits: nothing is asked of the directory."""
        if token_hash in self.sessions:
            return True
        waiting = self._awaited.setdefault(token_hash, [Event(), 0])
        waiting[1] += 1
        try:
            with eventlet.Timeout(timeout, False):
                waiting[0].wait()
        finally:
            waiting[1] -= 1
            if not waiting[1] and self._awaited.get(token_hash) is waiting:
                del self._awaited[token_hash]
        return token_hash in self.sessions

    def awaiting(self):
        """How many requests are waiting for a session to be announced (the gateway bounds it)."""
        return sum(count for _, count in self._awaited.values())

    def forget_ended(self, now, absolute_s):
        """Drop sessions past their absolute lifetime (nothing can revive them); keeps the model bounded."""
        for token_hash in [h for h, row in self.sessions.items() if now - row["created_at"] > absolute_s]:
            del self.sessions[token_hash]

    def _session_opened(self, data, now):
        if data["token_hash"] in self.sessions:  # repeated, or ended already (revoked before we heard it opened)
            return False
        created_at = _epoch(data["created_at"])
        self.sessions[data["token_hash"]] = {"staff_id": data["staff_id"], "created_at": created_at,
                                             "last_seen": max(created_at, now), "ended": False}
        waiting = self._awaited.get(data["token_hash"])
        if waiting and not waiting[0].ready():
            waiting[0].send(True)
        return True


def _newer(table, key, state):
    held = table.get(key)
    if held is not None and held["version"] >= state["version"]:
        return False
    table[key] = _copied(state)
    return True


def _public(state):
    """A record as the directory's RPC answers it (without the feed's bookkeeping), the caller's to change."""
    return {key: _copied(value) for key, value in state.items() if key not in ("version", "active")}


def _copied(value):
    """A copy of a value as the feed carries it (JSON: dicts, lists, strings, numbers). copy.deepcopy did the
    same four times slower (a memo and a dispatch per object), on every read of the model."""
    if isinstance(value, dict):
        return {key: _copied(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_copied(item) for item in value)
    return value


def _epoch(value):
    if isinstance(value, (int, float)):
        return float(value)
    from datetime import datetime

    return (value if isinstance(value, datetime) else datetime.fromisoformat(value)).timestamp()


class DirectoryNotLoaded(NotReady):
    """The first snapshot has not arrived (the directory is not up yet): a message waits for it."""


class DirectoryFeed(SharedExtension):
    """One per process: binds its queue, takes the snapshot, applies the directory's changes (module doc)."""

    # Set to True by a provider that needs the sessions (the gateway's) in its own setup. Never reset in
    # this setup: nameko sets extensions up in no fixed order, and a reset after the provider's would
    # leave the gateway without sessions from its snapshot and its feed.
    with_sessions = False

    def setup(self):
        self.model = DirectoryModel()
        self.config = self.container.config
        self.ready = Event()
        self.snapshots = 0
        self._running = self._resync = False
        with connect(self.config["AMQP_URI"]) as connection:  # the events exchange before binding to it
            declare(connection)

    def start(self):
        self._running = True
        self.container.spawn_managed_thread(self._run, identifier="directory-feed")

    def stop(self):
        self._running = False

    def kill(self):
        self._running = False

    def wait_ready(self, timeout=READY_TIMEOUT_S):
        if not self.ready.ready():
            with eventlet.Timeout(timeout, DirectoryNotLoaded("the directory's snapshot has not arrived yet")):
                self.ready.wait()
        return self.model

    def queue(self):
        exchange = kombu_exchange(next(e for e in topology.exchanges() if e.name == topology.EVENTS_EXCHANGE))
        name = topology.read_model_queue_prefix(self.container.service_name) + uuid.uuid4().hex
        return KombuQueue(name, bindings=[binding(exchange, routing_key=type_) for type_ in self.types()],
                          exclusive=True, auto_delete=True, durable=False)

    def types(self):
        """The changes this process needs: sessions only where they are checked (the gateway)."""
        return topology.DIRECTORY_CHANGES if self.with_sessions else (ASSOCIATION_CHANGED, STAFF_CHANGED)

    def _run(self):
        backoff = 0.5
        while self._running:
            try:
                with connect(self.config["AMQP_URI"]) as connection:
                    channel = connection.channel()
                    queue = self.queue()(channel)
                    queue.declare()  # bound first: a change made while the snapshot is taken waits in it
                    snapshot = self._snapshot()
                    self.model.load(snapshot, time.time())
                    self.snapshots += 1
                    log.info("directory read model: snapshot %d loaded (%d associations, %d staff%s)", self.snapshots,
                             len(snapshot["associations"]), len(snapshot["staff"]),
                             f", {len(snapshot['sessions'])} sessions" if "sessions" in snapshot else "")
                    if not self.ready.ready():
                        self.ready.send(True)
                    backoff = 0.5
                    self._resync = False
                    with Consumer(channel, queues=[queue], on_message=self._on_message, no_ack=True):
                        while self._running and not self._resync:
                            try:
                                connection.drain_events(timeout=1)
                            except TimeoutError:
                                pass
                            connection.heartbeat_check()
            except Exception as exc:  # noqa: BLE001 - broker or directory away: retry, then a new snapshot
                if not self._running:
                    return
                log.warning("directory read model: %s (retrying in %.1f s)", exc, backoff)
                eventlet.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)

    def _snapshot(self):
        from nameko.standalone.rpc import ClusterRpcProxy

        config = {key: self.config[key] for key in ("AMQP_URI", "AMQP_SSL") if key in self.config}
        with ClusterRpcProxy(config, timeout=SNAPSHOT_TIMEOUT_S) as cluster:
            return cluster.directory.snapshot(sessions=self.with_sessions)

    def _on_message(self, message):
        try:
            envelope = contracts.validate(parse(message.body))
            if envelope.type in self.types():
                self.model.apply(envelope.type, envelope.data)
        except Exception:  # noqa: BLE001 - a change we cannot read: logged, and a new queue and snapshot repair it
            log.exception("directory read model: could not apply message %s; taking a new snapshot",
                          message.properties.get("message_id"))
            self._resync = True


class DirectoryView(DependencyProvider):
    """`self.directory`: the process's read model of the directory (answers like the directory's read RPCs)."""

    feed = DirectoryFeed()
    target_service = "directory"  # `tansiq run` waits for it and its broker user may ask the snapshot

    def __init__(self, sessions=False, **kwargs):
        self.sessions = sessions
        super().__init__(**kwargs)

    def setup(self):
        if self.sessions:
            self.feed.with_sessions = True

    def get_dependency(self, worker_ctx):
        return WhenLoaded(self.feed)


class WhenLoaded:
    """The model, once the first snapshot is in: a worker that never reads it (a health check) never waits."""

    def __init__(self, feed):
        self._feed = feed

    def __getattr__(self, name):
        return getattr(self._feed.wait_ready(), name)
