"""Bulk import of an association's existing calendar: an .ics file, or an http(s) URL it already
keeps in Google Calendar or Outlook, run as a job with progress.

Idempotent on UID: each VEVENT series becomes one event whose own UID is derived from the
association and the source's UID, so importing the same calendar again updates (or leaves
alone) what the first import made, never duplicates it. RECURRENCE-ID components become moved
occurrences, or cancelled ones (STATUS:CANCELLED); EXDATEs stay exdates.

Hostile input is expected: the text is bounded (MAX_BYTES, MAX_EVENTS), a URL must be http(s)
and resolve to public addresses only (no loopback, private, link-local... : SSRF), it is read
from the very address that was checked (no second resolution: DNS rebinding), with a timeout and
without following redirects blindly, recurrence rules go through the same
checks as the API's (recurrence.py), and a malformed VEVENT is reported with its line in the
job's result while the others are imported. Private events (CLASS:PRIVATE or CONFIDENTIAL)
are skipped: an association's own calendar may name the women it accompanies. Imported
events are visible to the network's staff only (visibility "network"), never public.
"""

import hashlib
import ipaddress
import socket
import time as clock_time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import certifi
import icalendar
import urllib3
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON
from sqlalchemy import func, select

from services.events import occurrences as stored
from services.events.models import DEFAULT_TZ, Event, ImportJob
from services.events.partners import set_moves
from services.events.recurrence import cooperate
from services.events.schemas import IMPORT_MAX_BYTES
from services.events.series import cancel_event, create_event, replace_overrides, spec_of, update_event
from services.events.timing import Timing, local_input, override_key
from services.events.validation import validate
from tansiq.contracts.events import EVENT_KINDS
from tansiq.errors import DomainError, NotFound

MAX_BYTES = IMPORT_MAX_BYTES  # 10 MB: a whole association's calendar for years is a few MB
MAX_EVENTS = 20_000  # VEVENT series in one import
MAX_REPORTED_ERRORS = 500  # per job: the rest are counted
FETCH_TIMEOUT = (5, 15)  # seconds to connect, and between two reads
FETCH_DEADLINE = 60  # seconds for the whole download
MAX_REDIRECTS = 3
BATCH = 100  # series per unit of work: progress is visible and no transaction holds the database long
PRIVATE_CLASSES = {"PRIVATE", "CONFIDENTIAL"}
# A job writes its heartbeat when it starts and after every batch; one silent longer than this was
# interrupted (its process died). More than the longest silence of a live job: the whole download
# (FETCH_DEADLINE) or one batch on a loaded database.
STALE_AFTER = timedelta(minutes=5)
INTERRUPTED = ("interrupted: the events service stopped during this import. Import the same calendar "
               "again to finish it: what was already imported is updated, never duplicated.")


# --- fetching a URL -------------------------------------------------------------------------
# The address a name resolves to is checked once and the connection goes to exactly that address
# (the name stays in the Host header and, for https, in SNI and the certificate check): a name
# that answers a public address to the check and 127.0.0.1 to the download (DNS rebinding) reaches
# nothing inside. urllib3 is used directly, without environment proxies, so nothing resolves the
# name again behind our back.

NAT64 = ipaddress.ip_network("64:ff9b::/96")


def is_public(ip):
    """Whether `ip` is an address of the public Internet: not private, loopback, link-local,
    multicast, reserved or unspecified; an IPv4 address carried in IPv6 (v4-mapped, 6to4, NAT64)
    is judged as itself."""
    embedded = getattr(ip, "ipv4_mapped", None) or getattr(ip, "sixtofour", None)
    if embedded is None and ip.version == 6 and ip in NAT64:
        embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if embedded is not None:
        return is_public(embedded)
    return ip.is_global and not ip.is_multicast and not ip.is_reserved


@dataclass(frozen=True)
class Target:
    """A checked URL and the one address it will be read from."""

    url: str
    scheme: str
    host: str  # the name, for SNI and the certificate
    netloc: str  # the Host header
    port: int
    address: str
    path: str


def check_url(url, allow=(), resolve=socket.getaddrinfo):
    """The Target of `url`: refused when it is not http(s), carries credentials, or its host
    resolves to any non-public address. `allow`: addresses tests may reach although they are not
    public (their server on this machine); nothing else."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DomainError("only http and https calendar URLs are imported", code="import_url_refused")
    if parts.username or parts.password:
        raise DomainError("a calendar URL carries no user name or password", code="import_url_refused")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        found = [info[4][0] for info in resolve(parts.hostname, port, proto=socket.IPPROTO_TCP)]
        addresses = [ipaddress.ip_address(address.split("%")[0]) for address in found]
    except (OSError, ValueError, UnicodeError):
        raise DomainError(f"cannot resolve {parts.hostname!r}", code="import_url_refused") from None
    if not addresses:
        raise DomainError(f"cannot resolve {parts.hostname!r}", code="import_url_refused")
    for ip in addresses:
        if not is_public(ip) and str(ip) not in allow:
            raise DomainError(f"{parts.hostname} is not a public address", code="import_url_refused")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(url, parts.scheme, parts.hostname, parts.netloc, port, str(addresses[0]), path)


def _open(target, timeout, ca_certs):
    """The response of GET `target`, from its checked address only (no redirect followed)."""
    options = {"timeout": urllib3.Timeout(connect=timeout[0], read=timeout[1]), "retries": False, "maxsize": 1}
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(target.address, target.port, cert_reqs="CERT_REQUIRED",
                                           ca_certs=ca_certs or certifi.where(), server_hostname=target.host,
                                           assert_hostname=target.host, **options)
    else:
        pool = urllib3.HTTPConnectionPool(target.address, target.port, **options)
    return pool.urlopen("GET", target.path, headers={"Host": target.netloc, "Accept": "text/calendar, */*;q=0.1"},
                        redirect=False, retries=False, preload_content=False, assert_same_host=False)


def fetch(url, allow=(), resolve=socket.getaddrinfo, max_bytes=MAX_BYTES, deadline=FETCH_DEADLINE,
          timeout=FETCH_TIMEOUT, ca_certs=None):
    """The calendar at `url` as text; every redirect target is resolved and checked like the URL
    itself (at most MAX_REDIRECTS), the size and the whole download's time are bounded. `ca_certs`:
    the file of the authorities an https server's certificate must come from (certifi's if None;
    tests pass their own); the certificate is always checked."""
    started = clock_time.monotonic()
    for _ in range(MAX_REDIRECTS + 1):
        target = check_url(url, allow, resolve)
        try:
            response = _open(target, timeout, ca_certs)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise DomainError(f"cannot read {url}: {type(exc).__name__}", code="import_fetch_failed") from None
        try:
            if response.status in (301, 302, 303, 307, 308):
                url = urljoin(url, response.headers.get("Location", ""))
                continue
            if response.status != 200:
                raise DomainError(f"{url} answered HTTP {response.status}", code="import_fetch_failed")
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise DomainError(f"the calendar is larger than {max_bytes} bytes", code="import_too_large")
            body = bytearray()
            try:
                for chunk in response.stream(64 * 1024):
                    body += chunk
                    if len(body) > max_bytes:
                        raise DomainError(f"the calendar is larger than {max_bytes} bytes", code="import_too_large")
                    if clock_time.monotonic() - started > deadline:
                        raise DomainError(f"reading {url} took more than {deadline} s", code="import_fetch_failed")
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                raise DomainError(f"cannot read {url}: {type(exc).__name__}", code="import_fetch_failed") from None
            return decode(bytes(body))
        finally:
            response.release_conn()
    raise DomainError(f"more than {MAX_REDIRECTS} redirects", code="import_fetch_failed")


def decode(data):
    if len(data) > MAX_BYTES:
        raise DomainError(f"the calendar is larger than {MAX_BYTES // (1024 * 1024)} MB", code="import_too_large")
    return data.decode("utf-8", errors="replace").lstrip("\ufeff")


# --- reading VEVENTs ------------------------------------------------------------------------

@dataclass
class Series:
    """One UID of the source: its master VEVENT (as an event spec) and its RECURRENCE-ID overrides."""

    uid: str
    line: int
    spec: dict | None = None
    private: bool = False
    cancelled: bool = False
    moves: list = field(default_factory=list)  # [(original start, new start, new end)] as read
    cancelled_occurrences: list = field(default_factory=list)  # original starts


def parse(text, association, city):
    """([Series], [error]) of a calendar's text; an error is {"line", "uid", "message"}."""
    try:
        calendar = icalendar.Calendar.from_ical(text)
    except Exception as exc:  # noqa: BLE001 - whatever the parser makes of hostile text
        raise DomainError(f"not an iCalendar file: {exc}", code="import_unreadable") from None
    lines = [number for number, line in enumerate(text.splitlines(), start=1)
             if line.strip().upper() == "BEGIN:VEVENT"]
    series, errors, failed = {}, [], set()
    for index, component in enumerate(calendar.walk("VEVENT")):
        line = lines[index] if index < len(lines) else 0
        uid = str(component.get("uid") or "").strip()
        try:
            if not uid:
                raise DomainError("a VEVENT without UID cannot be imported twice safely", code="import_no_uid")
            _read(component, series.setdefault(uid, Series(uid, line)), line, association, city)
        except Exception as exc:  # noqa: BLE001 - any malformed VEVENT is reported, the others imported
            errors.append({"line": line, "uid": uid, "message": str(exc) or type(exc).__name__})
            failed.add(uid)
        if len(series) > MAX_EVENTS:
            raise DomainError(f"more than {MAX_EVENTS} events in one import", code="import_too_large")
    found = []
    for item in series.values():
        if item.spec is None and not item.private:
            if item.uid in failed:
                continue  # reported above
            errors.append({"line": item.line, "uid": item.uid, "message": "RECURRENCE-ID without its series"})
        else:
            found.append(item)
    return found, errors


def _read(component, item, line, association, city):
    private = str(component.get("class") or "").upper() in PRIVATE_CLASSES
    if "recurrence-id" in component:
        original = _moment(component, "recurrence-id")
        if str(component.get("status") or "").upper() == "CANCELLED":
            item.cancelled_occurrences.append(original)
        else:
            item.moves.append((original, *_start_end(component)))
        return
    item.line = line
    item.private = private
    if private:
        return
    start, end = _start_end(component)
    tz = _zone_name(component)
    all_day = isinstance(start, date) and not isinstance(start, datetime)
    rrule = component.get("rrule")
    item.cancelled = str(component.get("status") or "").upper() == "CANCELLED"
    categories = {str(c).strip().lower() for prop in _as_list(component.get("categories")) for c in prop.cats}
    item.spec = {
        "title": str(component.get("summary") or "").strip() or "(sans titre)",
        "description": str(component.get("description") or "")[:5000],
        "kind": next((kind for kind in EVENT_KINDS if kind in categories), "meeting"),
        "organiser": association, "city": city, "place": str(component.get("location") or "").strip()[:200],
        "tz": tz, "all_day": all_day, "visibility": "network", "status": "published",
        "start": _wall(start, tz), "end": _wall(end, tz) - timedelta(days=1) if all_day else _wall(end, tz),
        "rrule": rrule.to_ical().decode("utf-8") if rrule is not None else None,
        "exdates": [_wall(value, tz) for prop in _as_list(component.get("exdate")) for value in
                    (v.dt for v in prop.dts)],
    }


def _as_list(value):
    return value if isinstance(value, list) else [] if value is None else [value]


def _moment(component, name):
    value = component.get(name)
    if value is None:
        raise DomainError(f"{name.upper()} is missing", code="import_invalid")
    return value.dt


def _start_end(component):
    start = _moment(component, "dtstart")
    if component.get("dtend") is not None:
        end = component.get("dtend").dt
    elif component.get("duration") is not None:
        end = start + component.get("duration").dt
    else:  # RFC 5545 3.6.1: a date lasts one day, a date-time no time at all (we give it one hour)
        end = start + (timedelta(days=1) if not isinstance(start, datetime) else timedelta(hours=1))
    if isinstance(start, datetime) != isinstance(end, datetime):
        raise DomainError("DTSTART and DTEND are not of the same type", code="import_invalid")
    return start, end


def _zone_name(component):
    """The IANA zone of DTSTART: its TZID (IANA, or a Windows name as Outlook writes), else the default."""
    prop = component.get("dtstart")
    tzid = str(prop.params.get("TZID") or "").strip() if prop is not None else ""
    for name in (tzid, WINDOWS_TO_OLSON.get(tzid, "")):
        if name:
            try:
                return ZoneInfo(name).key
            except (ZoneInfoNotFoundError, ValueError):
                continue
    value = prop.dt if prop is not None else None
    key = getattr(getattr(value, "tzinfo", None), "key", None)
    return key or DEFAULT_TZ


def _wall(value, tz):
    """A DTSTART-like value as the domain takes it: a date, or a wall time in `tz` (naive)."""
    if isinstance(value, datetime):
        return value.astimezone(ZoneInfo(tz)).replace(tzinfo=None) if value.tzinfo else value
    return value


def import_uid(association, source_uid):
    """The UID an imported series keeps in Tansiq: the same for the same source UID, per association."""
    digest = hashlib.sha256(source_uid.encode("utf-8")).hexdigest()[:32]
    return f"{digest}@{association}.import.tansiq.ma"


# --- applying -------------------------------------------------------------------------------

def apply(session, now, association, item, known_associations):
    """Create, update or leave alone the event of one Series; returns created|updated|unchanged|skipped."""
    uid = import_uid(association, item.uid)
    event = session.scalar(select(Event).where(Event.uid == uid))
    if item.private or (item.cancelled and (event is None or event.status == "cancelled")):
        return "skipped"
    if event is not None and event.organiser != association:
        raise DomainError("this UID belongs to another association's event", code="import_invalid")
    if item.cancelled:
        cancel_event(session, now, event.id)
        return "updated"
    tz = item.spec["tz"]
    spec = {**item.spec, "exdates": [*item.spec["exdates"], *(_wall(o, tz) for o in item.cancelled_occurrences)]}
    moves = [{"recurrence_id": _wall(original, tz), "starts_at": _instant(start, tz), "ends_at": _instant(end, tz)}
             for original, start, end in item.moves]
    if event is None:
        event, _ = create_event(session, now, spec, known_associations, force=True)
        event.uid = uid
        outcome = "created"
    else:
        changes = {key: value for key, value in spec.items() if key not in ("organiser", "status")}
        if event.status == "postponed":
            changes["status"] = "published"
        if _unchanged(session, event, changes, moves, known_associations):
            return "unchanged"
        event, _ = update_event(session, now, event.id, changes, known_associations, force=True)
        outcome = "updated"
    if moves:
        set_moves(session, event, moves)
    elif event.overrides:  # the source has no moved occurrence any more
        replace_overrides(session, event, [], Timing.of(event))
    session.flush()
    stored.store(session, event, now)
    return outcome


def _instant(value, tz):
    """A moved occurrence's start or end as an aware instant (a date: its local midnight)."""
    if not isinstance(value, datetime):
        value = datetime.combine(value, time())
    return value if value.tzinfo else value.replace(tzinfo=ZoneInfo(tz))


def _unchanged(session, event, changes, moves, known_associations):
    """Whether importing the series again would change nothing (then nothing is written)."""
    values, timing, _, _ = validate(session, {**spec_of(event), **changes}, known_associations)
    if any(getattr(event, name) != value for name, value in values.items()):
        return False
    wanted = sorted((timing.key(local_input(m["recurrence_id"], timing, "recurrence_id")), m["starts_at"],
                     m["ends_at"]) for m in moves)
    current = sorted((override_key(o, timing), o.starts_at, o.ends_at) for o in event.overrides)
    return wanted == current


# --- the job ----------------------------------------------------------------------------------

def start(session, now, association, source, actor_id=None):
    """A queued job (run it with `run`)."""
    job = ImportJob(id=str(uuid.uuid4()), association=association, source=source[:500], status="queued",
                    actor_id=actor_id, created_at=now, errors=[])
    session.add(job)
    session.flush()
    return job


def get(session, job_id, association=None, lock=False):
    job = session.get(ImportJob, job_id, with_for_update=lock, populate_existing=lock)
    if job is None or (association is not None and job.association != association):
        raise NotFound(f"no import {job_id!r}", code="unknown_import")
    return job


def run(sessions, clock, job_id, text_or_url, known_associations, city, allow=(), progress=None):
    """Read the calendar (fetch it when given a URL), then import it BATCH series per unit of work,
    recording progress in the job (and telling `progress(job dict)` after each batch); never
    raises: a failure is the job's status and message."""
    with sessions() as session:
        job = get(session, job_id)
        job.status, job.started_at, job.heartbeat_at = "running", clock(), clock()
        association = job.association
    try:
        text = text_or_url
        if text_or_url.startswith(("http://", "https://")) and "\n" not in text_or_url:
            text = fetch(text_or_url.strip(), allow=allow)
        items, errors = parse(decode(text.encode("utf-8")) if isinstance(text, str) else decode(text),
                              association, city)
    except DomainError as exc:
        return _finish(sessions, clock, job_id, "failed", str(exc))
    with sessions() as session:
        job = get(session, job_id)
        if job.status != "running":  # declared interrupted meanwhile (fail_stale): its report stands
            return as_dict(job)
        job.total = len(items)
        job.errors = errors[:MAX_REPORTED_ERRORS]
        job.error_count = len(errors)
    for first in range(0, len(items), BATCH):
        with sessions() as session:
            # Locked for the batch (PostgreSQL): fail_stale skips a job while one of its batches runs.
            job = get(session, job_id, lock=True)
            if job.status != "running":  # declared interrupted meanwhile (fail_stale): its report stands
                return as_dict(job)
            counts, failures = {}, []
            for item in items[first:first + BATCH]:
                cooperate()
                try:
                    with session.begin_nested():  # a refused series leaves nothing behind
                        outcome = apply(session, clock(), association, item, known_associations)
                except Exception as exc:  # noqa: BLE001 - one refused series never stops the import
                    failures.append({"line": item.line, "uid": item.uid, "message": str(exc) or type(exc).__name__})
                    outcome = "failed"
                counts[outcome] = counts.get(outcome, 0) + 1
            job.heartbeat_at = clock()
            job.processed = (job.processed or 0) + len(items[first:first + BATCH])
            for outcome in ("created", "updated", "unchanged", "skipped"):
                setattr(job, outcome, (getattr(job, outcome) or 0) + counts.get(outcome, 0))
            job.error_count = (job.error_count or 0) + len(failures)
            job.errors = [*(job.errors or []), *failures][:MAX_REPORTED_ERRORS]
        if progress:  # once the batch is committed
            progress(as_dict(job))
    return _finish(sessions, clock, job_id, "done", "")


def _finish(sessions, clock, job_id, status, message):
    with sessions() as session:
        job = get(session, job_id, lock=True)
        if job.status == "running":  # not when declared interrupted meanwhile
            job.status, job.message, job.finished_at = status, message[:1000], clock()
        return as_dict(job)


def fail_stale(session, now, stale_after=STALE_AFTER):
    """Mark failed, with the reason its association sees, every queued or running job whose
    heartbeat is older than `stale_after`: its process died (a crash, SIGKILL, a lost machine).
    Returns their ids. Run when the service starts and then regularly, by every replica: a live
    job writes its heartbeat far more often, and stops at its next batch if it was declared dead."""
    stale = list(session.scalars(
        select(ImportJob).where(ImportJob.status.in_(("queued", "running")),
                                func.coalesce(ImportJob.heartbeat_at, ImportJob.created_at) < now - stale_after)
        .with_for_update(skip_locked=True)))
    for job in stale:
        job.status, job.message, job.finished_at = "failed", INTERRUPTED, now
    return [job.id for job in stale]


def as_dict(job):
    return {"id": job.id, "association": job.association, "source": job.source, "status": job.status,
            "total": job.total, "processed": job.processed or 0, "created": job.created or 0,
            "updated": job.updated or 0, "unchanged": job.unchanged or 0, "skipped": job.skipped or 0,
            "error_count": job.error_count or 0, "errors": list(job.errors or []), "message": job.message or "",
            "created_at": job.created_at.isoformat() if job.created_at else None,
            "started_at": job.started_at.isoformat() if job.started_at else None,
            "finished_at": job.finished_at.isoformat() if job.finished_at else None}
