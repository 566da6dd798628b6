"""Venues: named places in a city that events may book (and be refused when double-booked)."""

import uuid

from sqlalchemy import func, select

from services.events.models import Venue
from tansiq.errors import DomainError


def create_venue(session, *, name, city, address="", latitude=None, longitude=None, venue_id=None):
    if not (name or "").strip() or not (city or "").strip():
        raise DomainError("a venue needs a name and a city", code="invalid_venue")
    if latitude is not None and not -90 <= latitude <= 90 or longitude is not None and not -180 <= longitude <= 180:
        raise DomainError("coordinates out of range", code="invalid_venue")
    venue = Venue(id=venue_id or f"v-{uuid.uuid4().hex[:12]}", name=name.strip(), city=city.strip(),
                  address=address or "", latitude=latitude, longitude=longitude)
    session.add(venue)
    session.flush()
    return venue


def list_venues(session, city=None):
    query = select(Venue).order_by(Venue.city, Venue.name)
    if city:
        query = query.where(func.lower(Venue.city) == city.lower())
    return list(session.scalars(query))


def venue_dict(venue, place=""):
    """A venue (or an object with its attributes; None: the free-text `place`) as listings show it."""
    if venue is None:
        return {"id": None, "name": place, "city": None, "address": "", "latitude": None,
                "longitude": None} if place else None
    return {"id": venue.id, "name": venue.name, "city": venue.city, "address": venue.address,
            "latitude": venue.latitude, "longitude": venue.longitude}

