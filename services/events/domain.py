"""Calendar rules in plain Python: events, recurrence, overlaps, registrations, reminders.

Every function takes a SQLAlchemy Session and `now` (aware UTC) and never reads the
clock. Each rule lives in its own module; this one gathers what the service, the
commands and the tests call, so they need one import:

- timing.py: zones, wall times, a series' Timing, RRULE normalisation;
- validation.py: checks of an event description before anything is written;
- series.py: an event's life (create, change, cancel, move or cancel one occurrence), its messages;
- overlaps.py: same city and same venue checks, read from stored occurrences;
- listing.py: occurrences as listings show them;
- venues.py, registrations.py (and reminders), partners.py (events of partner systems).
"""

from services.events.listing import MAX_WINDOW, Occurrence, list_occurrences, make_occurrence, occurrences_of
from services.events.overlaps import OVERLAP_HORIZON, SOURCE, event_spans
from services.events.partners import apply_partner_event, partner_uid
from services.events.registrations import PARTICIPANT_KINDS, STAND_KINDS, check_registrant, due_reminders, register
from services.events.series import (
                                           SIGNIFICANT,
                                           TRANSITIONS,
                                           cancel_event,
                                           cancel_occurrence,
                                           check_editor,
                                           create_event,
                                           event_data,
                                           get_event,
                                           load_events,
                                           move_occurrence,
                                           update_event,
)
from services.events.timing import MAX_OCCURRENCES, UTC, Timing, local_to_utc, normalise_rrule, override_key, zone
from services.events.validation import STATUSES, VISIBILITIES
from services.events.venues import create_venue, list_venues, venue_dict

__all__ = [
    "MAX_OCCURRENCES", "MAX_WINDOW", "OVERLAP_HORIZON", "PARTICIPANT_KINDS", "SIGNIFICANT", "SOURCE", "STAND_KINDS",
    "STATUSES", "TRANSITIONS", "UTC", "VISIBILITIES", "Occurrence", "Timing", "apply_partner_event",
    "cancel_event", "cancel_occurrence", "check_editor", "check_registrant", "create_event", "create_venue",
    "due_reminders", "event_data", "event_spans", "get_event", "list_occurrences", "list_venues", "load_events",
    "local_to_utc", "make_occurrence", "move_occurrence", "normalise_rrule", "occurrences_of", "override_key",
    "partner_uid", "register", "update_event", "venue_dict", "zone",
]
