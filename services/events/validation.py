"""Checks of an event description (see schemas.CreateEvent), before anything is written.

`validate` reads a spec field group by field group, each in its own small function, and
returns normalised column values; any refusal is a DomainError (or NotFound) raised before
the session is touched, so a refused request leaves nothing behind.
"""

from datetime import datetime, time, timedelta

from services.events import recurrence
from services.events.models import DEFAULT_TZ, Venue
from services.events.timing import (
    Timing,
    as_datetime,
    bad_rrule,
    local_input,
    local_to_utc,
    normalise_rrule,
    remap,
    zone,
)
from tansiq.contracts.events import EVENT_KINDS
from tansiq.errors import DomainError, NotFound

STATUSES = ("draft", "published", "postponed", "cancelled")
VISIBILITIES = ("network", "public")


def exists_check(known_associations):
    """The domain is told which slugs exist: a callable slug -> bool, or a collection of slugs."""
    if callable(known_associations):
        return known_associations
    return lambda slug: slug in known_associations


def validate(session, spec, known_associations, carried=None):
    """Checks every field of an event description and returns (column values, Timing,
    overrides carried over, warnings).

    `carried`: (old Timing, exdate keys, overrides) of an existing event, re-attached to
    the occurrences on the same local dates when the series changes.
    Raises DomainError before anything is written.
    """
    out = _plain_fields(spec)
    out.update(_organisers(spec, known_associations))
    out.update(_place(session, spec))
    timing = _timing(spec)
    out.update(starts_at=timing.starts_at, ends_at=timing.ends_at, tz=timing.tz.key, all_day=timing.all_day,
               rrule=timing.rrule)
    exdates = [_exdate_key(value, timing) for value in spec.get("exdates") or []]
    overrides, warnings = [], []
    if carried:
        exdates, overrides, warnings = _carry(carried, timing, exdates)
    out["exdates"] = sorted(set(exdates))
    if len(out["exdates"]) and not timing.rrule:
        raise DomainError("exdates only apply to a recurring event", code="invalid_exdate")
    return out, timing, overrides, warnings


def _plain_fields(spec):
    title = (spec.get("title") or "").strip()
    if not title:
        raise DomainError("a title is required", code="invalid_event")
    _one_of(spec.get("kind"), EVENT_KINDS, "kind")
    visibility = _one_of(spec.get("visibility", "network"), VISIBILITIES, "visibility")
    status = _one_of(spec.get("status", "draft"), STATUSES, "status")
    capacity = spec.get("capacity")
    if capacity is not None and (not isinstance(capacity, int) or capacity < 1):
        raise DomainError("capacity must be a positive whole number", code="invalid_event")
    return {"title": title[:200], "description": spec.get("description") or "", "kind": spec["kind"],
            "visibility": visibility, "status": status, "capacity": capacity}


def _one_of(value, allowed, what):
    if value not in allowed:
        raise DomainError(f"{what} must be one of {', '.join(allowed)}", code="invalid_event")
    return value


def _organisers(spec, known_associations):
    exists = exists_check(known_associations)
    organiser = spec.get("organiser")
    co_organisers = list(dict.fromkeys(spec.get("co_organisers") or []))
    unknown = [slug for slug in [organiser, *co_organisers] if not slug or not exists(slug)]
    if unknown:
        raise NotFound(f"unknown association {', '.join(map(repr, unknown))}", code="unknown_association")
    return {"organiser": organiser, "co_organisers": [slug for slug in co_organisers if slug != organiser]}


def _place(session, spec):
    """city, venue_id and free-text place: a venue, if named, must exist and be in the city."""
    venue = None
    if spec.get("venue_id"):
        venue = session.get(Venue, spec["venue_id"])
        if venue is None:
            raise NotFound(f"unknown venue {spec['venue_id']!r}", code="unknown_venue")
    city = (spec.get("city") or (venue.city if venue else "")).strip()
    if not city:
        raise DomainError("a city (or a venue) is required", code="invalid_event")
    if venue and venue.city.casefold() != city.casefold():
        raise DomainError(f"venue {venue.name!r} is in {venue.city}, not {city}", code="invalid_event")
    return {"city": venue.city if venue else city, "venue_id": venue.id if venue else None,
            "place": "" if venue else (spec.get("place") or "").strip()[:200]}


def _timing(spec):
    """Start, end, zone, all-day flag and rule, checked against each other."""
    tz = zone(spec.get("tz") or DEFAULT_TZ)
    all_day = bool(spec.get("all_day"))
    start = as_datetime(spec.get("start"), "start")
    end = as_datetime(spec.get("end") if spec.get("end") is not None else spec.get("start"), "end")
    if all_day:
        # All-day: whole local days; `end` is the last day, inclusive (stored exclusive).
        start = datetime.combine((start.astimezone(tz) if start.tzinfo else start).date(), time())
        end = datetime.combine((end.astimezone(tz) if end.tzinfo else end).date(), time()) + timedelta(days=1)
    starts_at, ends_at = local_to_utc(start, tz), local_to_utc(end, tz)
    if ends_at <= starts_at:
        raise DomainError(f"the end ({end.isoformat()}) must be after the start ({start.isoformat()})",
                          code="end_before_start")
    rrule = normalise_rrule(spec.get("rrule"), tz, all_day)
    timing = Timing(starts_at, ends_at, tz, all_day, rrule)
    if rrule:
        _check_first_occurrence(timing, spec.get("rrule"))
    return timing


def _check_first_occurrence(timing, text):
    try:
        first = recurrence.first_occurrence(recurrence.build(timing.rrule, timing.local_start))
    except recurrence.RuleError as exc:
        raise bad_rrule(text, str(exc)) from None
    if first != timing.local_start:
        # RFC 5545 counts DTSTART as the first instance, dateutil does not: insist they agree.
        raise bad_rrule(text, "the start must itself be an occurrence of the rule")


def _exdate_key(value, timing):
    local = local_input(value, timing, "exdate")
    if not timing.is_occurrence(local):
        raise DomainError(f"exdate {value} is not an occurrence of the event", code="invalid_exdate")
    return timing.key(local)


def _carry(carried, timing, exdates):
    """An existing event's exdates and moves re-attached to the changed series, with a warning
    for each that has no occurrence left on its local date."""
    old, old_exdates, old_overrides = carried
    exdates, overrides, warnings = list(exdates), [], []
    for key in old_exdates:
        moved = remap(key, old, timing)
        if moved is None:
            warnings.append({"code": "exdate_dropped", "message": f"no occurrence left on {key[:10]}"})
        else:
            exdates.append(moved)
    for recurrence_id, o_start, o_end in old_overrides:
        moved = remap(recurrence_id, old, timing)
        if moved is None:
            warnings.append({"code": "override_dropped", "message": f"no occurrence left on {recurrence_id[:10]}"})
        else:
            overrides.append((moved, o_start, o_end))
    return exdates, overrides, warnings
