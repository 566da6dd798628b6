"""Bulk import of an association's calendar: real Google and Outlook files (Arabic titles, TZID
Africa/Casablanca across Ramadan 2027, Windows zone names, RRULE with EXDATE and RECURRENCE-ID
overrides), idempotent on UID, malformed VEVENTs reported by line, hostile URLs refused."""

import socket
import subprocess
import sys
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import eventlet
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from fixtures.events import daily_calendar, db  # noqa: F401 - fixture
from sqlalchemy import func, select

from services.events import imports, occurrences
from services.events.models import Base, Event, ImportJob
from tansiq.db import Sessions, make_engine
from tansiq.errors import DomainError, NotFound
from tansiq.messaging.store import messaging_metadata

UTC = timezone.utc
NOW = datetime(2027, 1, 4, 8, 0, tzinfo=UTC)
SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "ics"
ASSOCIATIONS = {"amal-safi", "wafae-agadir"}
GOOGLE = (SAMPLES / "google_amal_safi.ics").read_text(encoding="utf-8")
OUTLOOK = (SAMPLES / "outlook_wafae_agadir.ics").read_text(encoding="utf-8")




def run(db, text, association="amal-safi", city="Safi"):
    with db.session() as session:
        job_id = imports.start(session, NOW, association, "sample.ics").id
    return imports.run(db.session, lambda: NOW, job_id, text, ASSOCIATIONS, city)


def listed(db, start=datetime(2027, 1, 1, tzinfo=UTC), end=datetime(2027, 5, 1, tzinfo=UTC)):
    with db.session() as session:
        page = occurrences.page(session, start, end, limit=2000)
        assert page.next is None
        return [(o.title, o.start, o.end, o.moved) for o in page.items]


def test_a_google_calendar_is_imported_with_its_exceptions_and_its_errors_by_line(db):
    report = run(db, GOOGLE)
    assert report["status"] == "done" and report["processed"] == report["total"] == 4
    assert (report["created"], report["skipped"]) == (2, 1)  # the weekly training and the fair; the private one
    lines = {error["uid"] or "(none)": error["line"] for error in report["errors"]}
    text_lines = GOOGLE.splitlines()
    assert text_lines[lines["broken-date@google.com"] - 1] == "BEGIN:VEVENT"
    assert "2027-01-26 10h" in "\n".join(text_lines[lines["broken-date@google.com"]:][:2])
    assert set(lines) == {"broken-date@google.com", "every-minute@google.com", "(none)"}
    assert report["error_count"] == 3
    training = [(start, end, moved) for title, start, end, moved in listed(db) if title == "تكوين في الخياطة والطرز"]
    # Wednesdays 10:00 local from 20 January to 31 March 2027, less 3 February (EXDATE) and 3 March
    # (cancelled), 17 February moved to Friday 19th 15:00. Ramadan 2027 (about 8 February to
    # 8 March): Morocco is at UTC+0, so 10:00 local is 10:00 UTC then, 09:00 UTC otherwise.
    assert [(start.isoformat(), moved) for start, _, moved in training] == [
        ("2027-01-20T09:00:00+00:00", False), ("2027-01-27T09:00:00+00:00", False),
        ("2027-02-10T10:00:00+00:00", False), ("2027-02-19T15:00:00+00:00", True),
        ("2027-02-24T10:00:00+00:00", False), ("2027-03-10T10:00:00+00:00", False),
        ("2027-03-17T09:00:00+00:00", False), ("2027-03-24T09:00:00+00:00", False),
        ("2027-03-31T09:00:00+00:00", False)]
    with db.session() as session:
        fair = session.scalar(select(Event).where(Event.title == "Salon de l'artisanat"))
        assert (fair.all_day, fair.kind, fair.visibility, fair.organiser) == (True, "fair", "network", "amal-safi")
        assert session.scalar(select(func.count()).select_from(Event).where(Event.title.like("%Fatima%"))) == 0


def test_importing_again_updates_and_never_duplicates(db):
    run(db, GOOGLE)
    first = listed(db)
    again = run(db, GOOGLE)
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 2)
    assert listed(db) == first
    changed = GOOGLE.replace("SUMMARY:Salon de l'artisanat", "SUMMARY:Salon de l'artisanat feminin").replace(
        "RECURRENCE-ID;TZID=Africa/Casablanca:20270303T100000\nSUMMARY:تكوين في الخياطة والطرز\nSTATUS:CANCELLED",
        "RECURRENCE-ID;TZID=Africa/Casablanca:20270303T100000\nSUMMARY:تكوين في الخياطة والطرز\nSTATUS:CONFIRMED")
    third = run(db, changed)
    assert (third["created"], third["updated"], third["unchanged"]) == (0, 2, 0)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 2
    titles = [title for title, *_ in listed(db)]
    assert "Salon de l'artisanat feminin" in titles and "Salon de l'artisanat" not in titles
    assert titles.count("تكوين في الخياطة والطرز") == 10  # 3 March is back


def test_an_outlook_calendar_with_windows_zone_names(db):
    report = run(db, OUTLOOK, association="wafae-agadir", city="Agadir")
    assert (report["status"], report["created"], report["error_count"]) == ("done", 2, 0)
    with db.session() as session:
        zones = dict(session.execute(select(Event.title, Event.tz)).all())
    assert zones == {"Permanence juridique": "Africa/Casablanca", "Réunion avec le réseau à Paris": "Europe/Paris"}
    starts = [start for title, start, *_ in listed(db) if title == "Permanence juridique"]
    assert len(starts) == 8 and starts[0] == datetime(2027, 2, 2, 13, 0, tzinfo=UTC)
    assert starts[1] == datetime(2027, 2, 9, 14, 0, tzinfo=UTC)  # Ramadan: 14:00 local is 14:00 UTC
    assert [start for title, start, *_ in listed(db) if "Paris" in title] == [datetime(2027, 3, 10, 8, 30, tzinfo=UTC)]


@pytest.mark.parametrize("text", ["", "not a calendar at all", "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\n", "\x00" * 100])
def test_unreadable_input_fails_the_job_and_nothing_else(db, text):
    report = run(db, text)
    assert report["status"] in ("failed", "done") and report["created"] == 0
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 0
        assert session.scalar(select(ImportJob.status)) == report["status"]


LOCAL = {"127.0.0.1"}  # the only address inside that the tests' fetches may reach: their own server


def fake_resolver(*answers):
    """A DNS double: each lookup answers the next address (the last one again once they are used up)."""
    asked = []

    def resolve(host, port, proto=0):
        address = answers[min(len(asked), len(answers) - 1)]
        asked.append(host)
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, proto, "", (address, port))]
    resolve.asked = asked
    return resolve


@pytest.mark.parametrize("url", [
    "file:///etc/passwd", "ftp://example.org/cal.ics", "gopher://example.org/", "http://127.0.0.1/cal.ics",
    "http://localhost:8000/cal.ics", "http://[::1]/cal.ics", "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.5/cal.ics", "http://192.168.1.1/cal.ics", "http://user:secret@example.org/cal.ics",
    "https://", "http://0.0.0.0/", "http://[::ffff:127.0.0.1]/", "http://[::ffff:10.0.0.1]/",
    "http://[64:ff9b::7f00:1]/", "http://[2002:7f00:1::1]/", "http://[fe80::1]/", "http://[fd00::1]/",
    "http://[ff02::1]/", "http://224.0.0.1/", "http://100.64.0.1/", "http://240.0.0.1/", "http://[::]/"])
def test_urls_that_reach_inside_are_refused(url):
    with pytest.raises(DomainError) as refused:
        imports.fetch(url)
    assert refused.value.code == "import_url_refused"


def test_a_public_name_that_resolves_inside_is_refused():
    with pytest.raises(DomainError) as refused:
        imports.check_url("https://calendar.example.org/a.ics", resolve=fake_resolver("10.1.2.3"))
    assert refused.value.code == "import_url_refused"
    assert imports.check_url("https://calendar.example.org/a.ics", resolve=fake_resolver("93.184.216.34"))
    mixed = lambda host, port, proto=0: [*fake_resolver("93.184.216.34")(host, port), *fake_resolver("::1")(host, port)]  # noqa: E731
    with pytest.raises(DomainError, match="not a public address"):  # one address inside is enough
        imports.check_url("https://calendar.example.org/a.ics", resolve=mixed)
    target = imports.check_url("https://[::ffff:93.184.216.34]:8443/a.ics?x=1")
    assert (target.address, target.port, target.netloc, target.path) == (
        "::ffff:5db8:d822", 8443, "[::ffff:93.184.216.34]:8443", "/a.ics?x=1")


@contextmanager
def serving(*certificate):
    """The port of the sample calendar served from a process of its own (tests/fixtures/ics_server.py):
    over HTTP, or over https with `certificate` (its certificate and key files)."""
    script, sample = SAMPLES.parent / "ics_server.py", SAMPLES / "google_amal_safi.ics"
    process = subprocess.Popen([sys.executable, str(script), str(sample), *map(str, certificate)],
                               stdout=subprocess.PIPE, text=True)
    try:
        yield int(process.stdout.readline())
    finally:
        process.kill()
        process.wait()


@pytest.fixture
def server():
    with serving() as port:
        yield f"http://127.0.0.1:{port}"


def test_fetching_is_bounded_in_size_redirects_and_time(server, db):
    assert imports.fetch(f"{server}/cal.ics", allow=LOCAL).replace("\r\n", "\n") == GOOGLE
    with pytest.raises(DomainError, match="larger"):
        imports.fetch(f"{server}/big", allow=LOCAL, max_bytes=1000)
    with pytest.raises(DomainError, match="redirects"):
        imports.fetch(f"{server}/loop", allow=LOCAL)
    with pytest.raises(DomainError, match="took more than"):
        imports.fetch(f"{server}/slow", allow=LOCAL, deadline=1)
    # Redirects are resolved and checked like the URL: one to another address inside is refused.
    for inside in ("http://127.0.0.2:1/cal.ics", "http://[::1]:1/cal.ics", "http://10.0.0.1/cal.ics"):
        with pytest.raises(DomainError) as refused:
            imports.fetch(f"{server}/to?{inside}", allow=LOCAL)
        assert refused.value.code == "import_url_refused"
    # Without the test's permission, the same server is inside: refused, and the job says why.
    with db.session() as session:
        job_id = imports.start(session, NOW, "amal-safi", f"{server}/cal.ics").id
    report = imports.run(db.session, lambda: NOW, job_id, f"{server}/cal.ics", ASSOCIATIONS, "Safi")
    assert report["status"] == "failed" and "not a public address" in report["message"]


def test_the_checked_address_is_the_one_read_from(server):
    """DNS rebinding: the name answers a public address first, then 127.0.0.1. The download goes to
    the address that was checked (unreachable here) and never to the server inside; and a name is
    read from the address it resolved to, with its own name in the Host header."""
    port = int(server.rsplit(":", 1)[1])
    rebinding = fake_resolver("93.184.216.34", "127.0.0.1")
    with pytest.raises(DomainError) as failed:
        imports.fetch(f"http://calendar.example.org:{port}/cal.ics", resolve=rebinding, timeout=(0.5, 0.5))
    assert failed.value.code == "import_fetch_failed"
    assert rebinding.asked == ["calendar.example.org"]  # resolved once
    pinned = fake_resolver("127.0.0.1")
    text = imports.fetch(f"http://calendar.example.org:{port}/cal.ics", resolve=pinned, allow=LOCAL)
    assert text.replace("\r\n", "\n") == GOOGLE
    assert imports.fetch(f"{server}/seen", allow=LOCAL).splitlines() == [f"calendar.example.org:{port}"]


class Authority:
    """A certificate authority made for one test, and the server certificates it signs, as PEM files."""

    def __init__(self, folder):
        self.folder = folder
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Autorite de test Tansiq")])
        usage = x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                              data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                              encipher_only=False, decipher_only=False)
        self.certificate = (self._builder(name, self.key.public_key())
                            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                            .add_extension(usage, critical=True)
                            .sign(self.key, hashes.SHA256()))
        self.file = folder / "ca.pem"
        self.file.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def _builder(self, subject, public_key):
        now = datetime.now(UTC)  # a certificate is valid around the real clock that checks it
        issuer = self.certificate.subject if hasattr(self, "certificate") else subject
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))

    def issue(self, host):
        """(certificate file, key file) of a server certificate for `host`."""
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = (self._builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]), key.public_key())
                       .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
                       .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                       .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                       .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                                      critical=False)
                       .sign(self.key, hashes.SHA256()))
        files = self.folder / f"{host}.pem", self.folder / f"{host}.key"
        files[0].write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        files[1].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return files


def test_https_is_read_from_the_checked_address_under_the_name(tmp_path):
    """An https calendar is read from the address its name resolved to, while the TLS handshake names
    the host (SNI) and its certificate is checked against that name: a certificate for another name,
    or from an authority the fetch does not trust, is refused."""
    authority = Authority(tmp_path)
    with serving(*authority.issue("calendar.example.org")) as port:
        pinned = fake_resolver("127.0.0.1")  # the name is not in any DNS: only the checked address reaches it
        url = f"https://calendar.example.org:{port}/cal.ics"
        text = imports.fetch(url, resolve=pinned, allow=LOCAL, ca_certs=authority.file)
        assert text.replace("\r\n", "\n") == GOOGLE
        assert pinned.asked == ["calendar.example.org"]
        with pytest.raises(DomainError) as untrusted:  # the usual authorities (certifi) do not know this one
            imports.fetch(url, resolve=fake_resolver("127.0.0.1"), allow=LOCAL)
        assert untrusted.value.code == "import_fetch_failed"

        def seen(path):
            return imports.fetch(f"https://calendar.example.org:{port}/{path}", resolve=fake_resolver("127.0.0.1"),
                                 allow=LOCAL, ca_certs=authority.file).splitlines()
        assert seen("seen") == [f"calendar.example.org:{port}"]  # the Host header of the one read that passed
        assert seen("sni") == ["calendar.example.org"] * 4  # each handshake, the refused one too, named the host
    with serving(*authority.issue("other.example.org")) as port:
        with pytest.raises(DomainError) as wrong_name:
            imports.fetch(f"https://calendar.example.org:{port}/cal.ics", resolve=fake_resolver("127.0.0.1"),
                          allow=LOCAL, ca_certs=authority.file)
        assert wrong_name.value.code == "import_fetch_failed"
        # The same server under its own name is read: the refusal was the name's.
        assert imports.fetch(f"https://other.example.org:{port}/cal.ics", resolve=fake_resolver("127.0.0.1"),
                             allow=LOCAL, ca_certs=authority.file).replace("\r\n", "\n") == GOOGLE


class FakeDirectory:
    def list_associations(self):
        return [{"slug": "amal-safi", "city": "Safi"}, {"slug": "wafae-agadir", "city": "Agadir"}]

    def slugs(self, integration=None):
        return set() if integration else {"amal-safi", "wafae-agadir"}


def test_the_service_runs_the_job_for_the_association_s_own_editors(tmp_path):
    from actors import signed, verifier  # tests/actors.py
    from nameko.testing.services import worker_factory

    from services.events.service import EventsService
    from tansiq.errors import Forbidden

    engine = make_engine(f"sqlite:///{tmp_path / 'events.db'}")
    Base.metadata.create_all(engine)
    messaging_metadata.create_all(engine)
    service = worker_factory(EventsService, db=Sessions(engine), directory=FakeDirectory(), identity=verifier("events"))
    coordinator = signed({"id": "s-1", "association": "amal-safi", "roles": ["coordinator"]}, "events")
    other = signed({"id": "s-2", "association": "wafae-agadir", "roles": ["coordinator"]}, "events")
    case_worker = signed({"id": "s-3", "association": "amal-safi", "roles": ["case_worker"]}, "events")
    body = {"association": "amal-safi", "ics": GOOGLE, "name": "google.ics"}
    for refused in (other, case_worker):
        with pytest.raises(Forbidden):
            service.start_import(body, actor=refused)
    with pytest.raises(DomainError) as inside:
        service.start_import({"association": "amal-safi", "url": "http://127.0.0.1/cal.ics"}, actor=coordinator)
    assert inside.value.code == "import_url_refused"
    job = service.start_import(body, actor=coordinator)
    assert (job["status"], job["source"]) == ("queued", "google.ics")
    for _ in range(1000):  # the job runs in its own green thread: let it
        eventlet.sleep(0.01)
        report = service.import_status(job["id"], actor=coordinator)
        if report["status"] in ("done", "failed"):
            break
    assert (report["status"], report["created"], report["error_count"]) == ("done", 2, 3)
    with pytest.raises(NotFound):
        service.import_status(job["id"], actor=other)
    engine.dispose()


def test_the_command_imports_a_file_and_again_changes_nothing(tmp_path, monkeypatch, capsys):
    from services.directory import domain as directory
    from services.directory.models import Base as DirectoryBase
    from tansiq import cli
    from tansiq.db import session_scope

    for service in ("DIRECTORY", "EVENTS"):
        monkeypatch.setenv(f"TANSIQ_{service}_DB_URI", f"sqlite:///{tmp_path / service.lower()}.sqlite3")
    directory_engine = make_engine(f"sqlite:///{tmp_path / 'directory.sqlite3'}")
    DirectoryBase.metadata.create_all(directory_engine)
    messaging_metadata.create_all(directory_engine)
    with session_scope(directory_engine) as session:
        directory.upsert_association(session, {"slug": "amal-safi", "name_fr": "Amal", "name_ar": "أمل",
                                               "city": "Safi"})
    directory_engine.dispose()
    events_engine = make_engine(f"sqlite:///{tmp_path / 'events.sqlite3'}")
    Base.metadata.create_all(events_engine)
    messaging_metadata.create_all(events_engine)
    sample = str(SAMPLES / "google_amal_safi.ics")
    assert cli.main(["events", "import", sample, "--association", "amal-safi"]) == 0
    first = capsys.readouterr().out
    assert "2 created" in first and "line " in first
    assert cli.main(["events", "import", sample, "--association", "amal-safi"]) == 0
    assert "0 created, 0 updated, 2 unchanged" in capsys.readouterr().out
    assert cli.main(["events", "import", sample, "--association", "nobody"]) == 1
    assert cli.main(["events", "import", "http://127.0.0.1/x.ics", "--association", "amal-safi"]) == 1
    with Sessions(events_engine).session() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 2
        assert session.scalar(select(Event.city).limit(1)) == "Safi"
    events_engine.dispose()


def test_a_job_whose_heartbeat_stopped_is_failed_with_the_reason(db):
    with db.session() as session:
        jobs = {name: imports.start(session, NOW, "amal-safi", f"{name}.ics").id
                for name in ("dead", "alive", "queued-dead", "done")}
        for name, beat in (("dead", NOW - timedelta(minutes=6)), ("alive", NOW - timedelta(minutes=4))):
            job = session.get(ImportJob, jobs[name])
            job.status, job.heartbeat_at = "running", beat
        session.get(ImportJob, jobs["done"]).status = "done"
    with db.session() as session:
        assert imports.fail_stale(session, NOW) == [jobs["dead"]]  # silent for 6 minutes; the others not 5
        session.get(ImportJob, jobs["alive"]).heartbeat_at = NOW + timedelta(minutes=1)  # its next batch
    later = NOW + timedelta(minutes=5, seconds=1)
    with db.session() as session:
        assert imports.fail_stale(session, later) == [jobs["queued-dead"]]  # queued 5 minutes ago, never started
    with db.session() as session:
        report = {name: imports.as_dict(imports.get(session, job_id)) for name, job_id in jobs.items()}
    assert {name: r["status"] for name, r in report.items()} == {
        "dead": "failed", "alive": "running", "queued-dead": "failed", "done": "done"}
    assert report["dead"]["message"] == imports.INTERRUPTED and report["dead"]["finished_at"] == NOW.isoformat()
    assert report["queued-dead"]["finished_at"] == later.isoformat()


def test_a_live_job_declared_interrupted_stops_and_keeps_that_report(db):
    """A job that was only slow (declared dead while it was still running) stops at its next batch
    and does not write "done" over the failure its association was shown."""
    moments = iter(NOW + timedelta(seconds=second) for second in range(10_000))
    declared = []

    def progress(job):  # after the first batch, another replica sees its heartbeat as too old
        if not declared:
            with db.session() as session:
                declared.extend(imports.fail_stale(session, NOW + timedelta(hours=1)))

    with db.session() as session:
        job_id = imports.start(session, NOW, "amal-safi", "many.ics").id
    report = imports.run(db.session, lambda: next(moments), job_id, daily_calendar(imports.BATCH * 3),
                         ASSOCIATIONS, "Safi", progress=progress)
    assert declared == [job_id]
    assert (report["status"], report["message"], report["processed"]) == ("failed", imports.INTERRUPTED, imports.BATCH)
    with db.session() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == imports.BATCH  # the second batch rolled back
    again = run(db, daily_calendar(imports.BATCH * 3))  # importing again finishes it, without duplicates
    assert (again["status"], again["created"], again["unchanged"]) == ("done", imports.BATCH * 2, imports.BATCH)
