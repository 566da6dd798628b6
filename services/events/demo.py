"""Demo calendar for `tansiq demo`: venues and events across the network, around today.

Call `seed(session, now, progress)` from tansiq/demo.py's STEPS. Dates are relative to
`now` so the calendar page shows something this month; wall times are local
(Africa/Casablanca), so they read right on both sides of the Ramadan clock change.
Seeding twice adds nothing.
"""

from datetime import datetime, time, timedelta

from sqlalchemy import select

from services.events import domain
from services.events.models import Event, Venue

VENUES = [
    {"venue_id": "v-safi-dar-sidi-bouzid", "name": "Dar Sidi Bouzid", "city": "Safi",
     "address": "Route de Sidi Bouzid, Safi", "latitude": 32.3203, "longitude": -9.2601},
    {"venue_id": "v-marrakech-dar-bellarj", "name": "Dar Bellarj", "city": "Marrakech",
     "address": "9 Toualate Zaouiate Lahdar, Médina, Marrakech", "latitude": 31.6325, "longitude": -7.9866},
    {"venue_id": "v-essaouira-bayt-dakira", "name": "Place Moulay Hassan", "city": "Essaouira",
     "address": "Place Moulay Hassan, Essaouira", "latitude": 31.5125, "longitude": -9.7700},
    {"venue_id": "v-casa-abattoirs", "name": "Les Anciens Abattoirs", "city": "Casablanca",
     "address": "Hay Mohammadi, Casablanca", "latitude": 33.5960, "longitude": -7.5500},
]


def _events(monday):
    """(spec, exceptions) pairs; `monday` is the Monday of the current week (local date)."""

    def at(days, hour, minute=0):
        return datetime.combine(monday + timedelta(days=days), time(hour, minute))

    return [
        ({"title": "Formation couture et broderie", "kind": "training", "organiser": "amal-safi",
          "venue_id": "v-safi-dar-sidi-bouzid", "start": at(0, 10), "end": at(0, 12), "capacity": 15,
          "rrule": "FREQ=WEEKLY;BYDAY=MO;COUNT=10", "exdates": [at(14, 10)], "visibility": "public",
          "description": "Dix séances pour les stagiaires du centre ; apportez vos tissus."},
         {"move": (at(21, 10), at(23, 15), at(23, 17))}),
        ({"title": "Salon de l'artisanat féminin", "kind": "exhibition", "organiser": "wafae-marrakech",
          "co_organisers": ["amal-safi"], "venue_id": "v-marrakech-dar-bellarj", "start": at(9, 10),
          "end": at(11, 18), "capacity": 30, "visibility": "public"}, {}),
        ({"title": "Festival des arts de Mogador", "kind": "festival", "organiser": "mogador-essaouira",
          "venue_id": "v-essaouira-bayt-dakira", "all_day": True, "start": at(17, 0).date(),
          "end": at(19, 0).date(), "visibility": "public"}, {}),
        ({"title": "Marché solidaire des coopératives", "kind": "fair", "organiser": "dar-noor-casablanca",
          "venue_id": "v-casa-abattoirs", "start": at(5, 9), "end": at(5, 18), "capacity": 40,
          "visibility": "public"}, {}),
        ({"title": "Campagne 16 jours contre la violence", "kind": "campaign", "organiser": "insaf-rabat",
          "city": "Rabat", "all_day": True, "start": at(3, 0).date(), "end": at(18, 0).date(),
          "visibility": "public"}, {}),
        ({"title": "Réunion de coordination du réseau", "kind": "meeting", "organiser": "amal-safi",
          "co_organisers": ["wafae-marrakech", "tifawin-agadir"], "city": "Safi", "start": at(2, 15),
          "end": at(2, 17), "visibility": "network"}, {}),
        ({"title": "Formation écoute active", "kind": "training", "organiser": "tifawin-agadir", "city": "Agadir",
          "start": at(1, 9, 30), "end": at(1, 12, 30), "rrule": "FREQ=WEEKLY;BYDAY=TU;COUNT=6",
          "visibility": "network", "capacity": 12}, {}),
    ]


def seed(session, now, known_associations, progress=print):
    if session.scalar(select(Event.id).limit(1)) is not None:
        return
    for venue in VENUES:
        if session.get(Venue, venue["venue_id"]) is None:
            progress(f"venue {venue['name']} ({venue['city']})")
            domain.create_venue(session, **venue)
    today = now.astimezone(domain.zone("Africa/Casablanca")).date()
    monday = today - timedelta(days=today.weekday())
    for spec, exceptions in _events(monday):
        progress(f"event {spec['title']}")
        event, _ = domain.create_event(session, now, {"status": "published", **spec}, known_associations,
                                       force=True)
        if "move" in exceptions:
            domain.move_occurrence(session, now, event.id, *exceptions["move"], force=True)
