"""Run real Tansiq services as separate processes against the real broker, for integration tests.

Each Network gets its own RabbitMQ vhost and its own databases (SQLite files in a
temporary folder, or fresh PostgreSQL databases), so tests never see each other's messages.
"""

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import requests
from kombu import Connection

from tansiq.broker_admin import BrokerAdmin, BrokerAdminError
from tansiq.identity import ActorSigner, load_or_create_signing_key

ROOT = Path(__file__).resolve().parent.parent
BROKER_HOST = os.environ.get("TANSIQ_TEST_BROKER_HOST", "127.0.0.1")
ADMIN_URL = os.environ.get("TANSIQ_TEST_ADMIN_URL", f"http://guest:guest@{BROKER_HOST}:15672")
PG_URL = os.environ.get("TANSIQ_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432")
DATA_SERVICES = ("directory", "intake", "referrals", "events", "notifications")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def admin(vhost="/"):
    return BrokerAdmin(ADMIN_URL, vhost=vhost)


def management_available():
    try:
        admin().overview()
        return True
    except (requests.RequestException, BrokerAdminError):
        return False


def create_vhost(name):
    vhost_admin = admin(name)
    vhost_admin.add_vhost()
    return vhost_admin.amqp_uri(BROKER_HOST)


def delete_vhost(name):
    admin(name).delete_vhost()


def postgres_available():
    try:
        import psycopg2

        psycopg2.connect(f"{PG_URL}/postgres", connect_timeout=3).close()
        return True
    except Exception:  # noqa: BLE001
        return False


def create_pg_database(name):
    import psycopg2

    connection = psycopg2.connect(f"{PG_URL}/postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    connection.close()
    return f"{PG_URL}/{name}"


def drop_pg_database(name):
    import psycopg2

    connection = psycopg2.connect(f"{PG_URL}/postgres")
    connection.autocommit = True
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    connection.close()


# stage ("migrate", or "seed": migrated then the demo) -> a folder with the SQLite databases of a network at that
# stage, made once a test run by the real commands.
_SQLITE_TEMPLATES = {}


def sqlite_template(stage):
    """The folder of `stage`'s SQLite databases, made by `tansiq migrate` (and `tansiq demo`) the first time:
    each command is a Python start-up with every service's imports, and the demo hashes ten passwords with
    argon2, seconds a network; copying the files they wrote gives a network the same databases at once."""
    if stage not in _SQLITE_TEMPLATES:
        folder = Path(tempfile.mkdtemp(prefix=f"tansiq-template-{stage}-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        env = {key: value for key, value in os.environ.items() if not key.endswith("_DB_URI")}
        env["TANSIQ_VAR"] = str(folder)
        if stage == "seed":  # the demo over a copy of the migrated databases
            copy_databases(sqlite_template("migrate"), folder)
        subprocess.run([sys.executable, "-m", "tansiq.cli", "demo" if stage == "seed" else "migrate"], env=env,
                       cwd=ROOT, capture_output=True, text=True, timeout=120, check=True)
        _SQLITE_TEMPLATES[stage] = folder
    return _SQLITE_TEMPLATES[stage]


def copy_databases(source, target):
    for database in source.glob("*.sqlite3*"):
        shutil.copy2(database, target / database.name)  # its private mode (tansiq.db.make_private) too
    if (source / "keys").is_dir():  # none today; should the demo ever seal data, its keys must come along
        shutil.copytree(source / "keys", target / "keys", dirs_exist_ok=True)


class Network:
    """A set of running services with their own vhost, databases and logs."""

    def __init__(self, backend="sqlite", retry_delays_ms="200,400,800"):
        self.id = uuid.uuid4().hex[:10]
        self.vhost = f"test-{self.id}"
        self.var = Path(tempfile.mkdtemp(prefix=f"tansiq-{self.id}-"))
        self.amqp_uri = create_vhost(self.vhost)
        self.web_port = free_port()
        self.backend = backend
        self.pg_databases = []
        self.env = dict(os.environ, AMQP_URI=self.amqp_uri, TANSIQ_VAR=str(self.var), PYTHONUNBUFFERED="1",
                        TANSIQ_WEB_ADDRESS=f"127.0.0.1:{self.web_port}", TANSIQ_RETRY_DELAYS_MS=retry_delays_ms,
                        TANSIQ_LOG_LEVEL="INFO", TANSIQ_WEB_BASE_URL=f"http://127.0.0.1:{self.web_port}")
        if backend == "postgres":
            for service in DATA_SERVICES:
                name = f"tansiq_{service}_{self.id}"
                self.env[f"TANSIQ_{service.upper()}_DB_URI"] = create_pg_database(name)
                self.pg_databases.append(name)
        self.procs = {}
        self.rpc_names = {}
        self.copied = None  # (template stage, its databases' sizes and times) after a copy of a template
        # The gateway's actor-signing pair, made here (the configured default paths) so tests can sign too.
        self.signer = ActorSigner(load_or_create_signing_key(self.var / "keys" / "actor-signing.key",
                                                             self.var / "keys" / "actor-signing.pub"))

    @property
    def transport_key_file(self):
        return self.var / "keys" / "transport.keys"

    def assertion(self, staff, *audience):
        """What the gateway would sign for `staff` ({id, association, roles}) to call `audience`."""
        return self.signer.sign(staff, *(audience or ("intake", "referrals", "events", "notifications")))

    @property
    def web(self):
        return f"http://127.0.0.1:{self.web_port}"

    def tansiq(self, *args, check=True, timeout=120):
        return subprocess.run([sys.executable, "-m", "tansiq.cli", *args], env=self.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout, check=check)

    def migrate(self):
        if not self.copy_template("migrate", after=None):
            self.tansiq("migrate")

    def seed(self):
        if not self.copy_template("seed", after="migrate"):
            self.tansiq("demo")

    def copy_template(self, stage, after):
        """Its SQLite databases made the same as `stage`'s template, when they are exactly what the command
        would start from: nothing (migrate), or a copy of the migrate template that no service ran on (seed).
        False otherwise (PostgreSQL, a command run again, databases a test changed): run the command itself."""
        now = self.databases()
        unchanged = not now if after is None else self.copied == (after, now)
        if self.backend != "sqlite" or self.procs or not unchanged:
            return False
        for database in self.var.glob("*.sqlite3*"):
            database.unlink()
        copy_databases(sqlite_template(stage), self.var)
        self.copied = (stage, self.databases())
        return True

    def databases(self):
        """{file name: (size, modification time)} of its SQLite databases: a change shows."""
        return {path.name: (path.stat().st_size, path.stat().st_mtime_ns) for path in self.var.glob("*.sqlite3*")}

    def start(self, *services, service_class=None, rpc_name=None, wait=True):
        for service in services:
            self.rpc_names[service] = rpc_name or service
            log = open(self.var / f"{service}.log", "ab")
            command = [sys.executable, "-m", "tansiq.cli", "run", service]
            if service_class:
                command += ["--service-class", service_class]
            self.procs[service] = subprocess.Popen(command, env=self.env, cwd=ROOT, stdout=log,
                                                   stderr=subprocess.STDOUT)
        if wait:
            for service in services:
                self.wait_healthy(service)

    def wait_healthy(self, service, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs[service].poll() is not None:
                raise RuntimeError(f"{service} exited:\n{self.log(service)}")
            if service == "gateway":
                try:
                    if requests.get(f"{self.web}/healthz", timeout=2).ok:
                        return
                except requests.RequestException:
                    pass
            elif self.answers(self.rpc_names[service]):
                return
            time.sleep(0.3)
        raise TimeoutError(f"{service} not healthy after {timeout}s:\n{self.log(service)}")

    def answers(self, rpc_name):
        try:
            with self.rpc(timeout=2) as cluster:
                return getattr(cluster, rpc_name).health() == "ok"
        except Exception:  # noqa: BLE001 - not up yet
            return False

    def log(self, service):
        path = self.var / f"{service}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self, service, sig=signal.SIGKILL):
        proc = self.procs.pop(service)
        proc.send_signal(sig)
        proc.wait(timeout=30)

    def stop(self, graceful=True):
        """Every service stopped: SIGTERM, nameko finishing its workers (up to 15 s each); SIGKILL when not
        `graceful`."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM if graceful else signal.SIGKILL)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()

    def close(self):
        # Thrown away with its vhost and databases: a graceful stop, seconds a network, would check nothing.
        self.stop(graceful=False)
        delete_vhost(self.vhost)
        for name in self.pg_databases:
            drop_pg_database(name)
        shutil.rmtree(self.var, ignore_errors=True)

    @contextmanager
    def rpc(self, timeout=30):
        from tansiq.transport import cluster_rpc, use_key_file

        use_key_file(self.transport_key_file)  # the services' own transport keys

        import tansiq.errors  # noqa: F401 - registers our exceptions, so RPC errors come back typed

        with cluster_rpc({"AMQP_URI": self.amqp_uri}, timeout=timeout) as cluster:
            yield cluster

    def login(self, email, password="tansiq-demo"):
        session = requests.Session()
        response = session.post(f"{self.web}/api/login", json={"email": email, "password": password}, timeout=30)
        response.raise_for_status()
        session.headers["X-CSRF-Token"] = response.headers["X-CSRF-Token"]  # changes need it (cookie sessions)
        return session

    def connection(self):
        return Connection(self.amqp_uri)

    def queue_depth(self, queue):
        with Connection(self.amqp_uri) as connection:
            _, ready, _ = connection.default_channel.queue_declare(queue, passive=True)
            return ready


@contextmanager
def seeded_network(*services):
    """A Network of its own with the demo data (`tansiq demo`) and `services` started; closed after."""
    network = Network()
    try:
        network.migrate()
        network.seed()
        network.start(*services)
        yield network
    finally:
        network.close()


def add_partner_association(network, slug):
    """A partner association in the network's directory, under a slug of the test's own: broker users
    are global to the broker, so a test never provisions or revokes a real (demo) association's user."""
    from sqlalchemy import select

    from services.directory import domain
    from services.directory.models import Association
    from tansiq import config
    from tansiq.db import make_engine, session_scope

    engine = make_engine(config.load("directory", environ=network.env)["DB_URI"])
    with session_scope(engine) as session:
        domain.upsert_association(session, {
            "slug": slug, "name_ar": "جمعية نور", "name_fr": "Association Nour (partenaire)", "city": "Casablanca",
            "address": "Maarif, Casablanca", "phone": "+212522000099", "email": "contact@nour.example",
            "services": [{"name": "Orientation juridique", "category": "legal_orientation", "languages": ["ar", "fr"]},
                         {"name": "Soutien psychologique", "category": "psychological_support",
                          "languages": ["ar", "fr"]}]})
        assert session.scalar(select(Association.slug).where(Association.slug == slug)) == slug
    engine.dispose()


def add_staff(network, staff_id, email, roles, association="amal-safi", active=True, password="tansiq-demo"):
    """A staff member of the test's own in the network's directory (the demo's password unless told)."""
    from services.directory import domain
    from tansiq import config
    from tansiq.db import make_engine, session_scope

    engine = make_engine(config.load("directory", environ=network.env)["DB_URI"])
    try:
        with session_scope(engine) as session:
            domain.upsert_staff(session, {"id": staff_id, "association_slug": association, "name": staff_id,
                                          "email": email, "language": "fr", "roles": roles, "active": active},
                                password=password)
    finally:
        engine.dispose()


def referred_case(network, sender, to="wafae-marrakech", **person):
    """A woman registered by `sender` (a case worker), her consent to share her first name and needs with `to`,
    and a referral there for legal orientation, all through the JSON API: (beneficiary id, the referral as
    the API answered it)."""
    base, api = network.web, network.login(sender)
    registered = api.post(f"{base}/api/beneficiaries", json={
        "first_name": "Meriem", "phone": "0662000000", "city": "Safi", "needs": ["legal_orientation"], **person},
        timeout=30)
    assert registered.status_code == 201, registered.text
    beneficiary_id = registered.json()["id"]
    consent = api.post(f"{base}/api/beneficiaries/{beneficiary_id}/consents", json={
        "purpose": "legal_orientation", "fields": ["first_name", "needs"], "recipient_association": to}, timeout=30)
    assert consent.status_code == 201, consent.text
    referral = api.post(f"{base}/api/referrals", json={
        "beneficiary_id": beneficiary_id, "to_association": to, "service_category": "legal_orientation",
        "reason": "Besoin d'une avocate", "urgency": "high", "fields": ["first_name", "needs"]}, timeout=30)
    assert referral.status_code == 201, referral.text
    return beneficiary_id, referral.json()


def random_slug(prefix="p"):
    """A random partner slug: never the name of a real association."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def eventually(check, timeout=30, interval=0.2, message="condition not met"):
    """Poll `check()` until it returns a truthy value (no fixed sleeps in tests)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except AssertionError as exc:
            last = exc
        time.sleep(interval)
    raise AssertionError(f"{message} (last: {last!r})")
