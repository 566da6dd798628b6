"""The gateway's calendar routes over a real events worker (SQLite); only the RPC hop and the
session cookie are replaced."""

import json

import pytest
from actors import SIGNER, verifier  # tests/actors.py
from nameko.testing.services import worker_factory
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from services.events.models import Base
from services.events.service import EventsService
from services.gateway import web
from services.gateway.api_events import EventsApi
from tansiq.db import Sessions, make_engine
from tansiq.errors import NotFound
from tansiq.messaging.store import messaging_metadata

COORDINATOR = {"id": "s-1", "association": "amal-safi", "roles": ["coordinator"], "language": "fr", "name": "K"}
ASSOCIATIONS = [{"slug": "amal-safi", "name_fr": "Amal", "name_ar": "أمل", "city": "Safi"}]


class Directory:
    def get_association(self, slug):
        if slug != "amal-safi":
            raise NotFound(f"no association {slug}")
        return ASSOCIATIONS[0]

    def list_associations(self, city=None, category=None):
        return ASSOCIATIONS

    def slugs(self, integration=None):
        return {a["slug"] for a in ASSOCIATIONS if integration is None or a.get("integration") == integration}


class BearerSessions:
    """Signed in when a bearer token is present (the real Fernet sessions are the gateway's test)."""

    def staff(self, request):
        if not request.headers.get("Authorization"):
            raise web.Unauthorized("sign in first")
        return COORDINATOR


class Gateway(EventsApi):
    name = "gateway"
    identity = SIGNER


@pytest.fixture
def gateway(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'events.db'}")
    Base.metadata.create_all(engine)
    messaging_metadata.create_all(engine)
    events = worker_factory(EventsService, db=Sessions(engine), directory=Directory(), identity=verifier("events"))
    saved, web._active[0] = web._active[0], BearerSessions()
    yield worker_factory(Gateway, events_rpc=events, directory=Directory())
    web._active[0] = saved
    engine.dispose()


def request(method="GET", path="/", body=None, signed_in=True, **query):
    headers = {"Authorization": "Bearer t"} if signed_in else {}
    return Request(EnvironBuilder(method=method, path=path, query_string=query, headers=headers,
                                  data=json.dumps(body) if body is not None else None).get_environ())


EVENT = {"title": "Formation couture", "kind": "training", "organiser": "amal-safi", "city": "Safi",
         "start": "2027-01-25T10:00", "end": "2027-01-25T12:00", "rrule": "FREQ=WEEKLY;COUNT=8",
         "exdates": ["2027-02-08T10:00"], "status": "published", "visibility": "public"}


def test_create_list_and_feed_over_http(gateway):
    created = gateway.events_create(request("POST", body=EVENT))
    assert created.status_code == 201
    event_id = json.loads(created.get_data())["event"]["id"]
    move = gateway.events_move_occurrence(request("POST", body={"recurrence_id": "2027-02-15T10:00",
                                                                "start": "2027-02-16T15:00"}), event_id)
    assert move.status_code == 200
    listed = json.loads(gateway.events_list(request(signed_in=False, start="2027-01-01", end="2027-04-01",
                                                    city="Safi")).get_data())
    starts = [o["start_local"] for o in listed]
    assert len(starts) == 7 and "2027-02-16T15:00:00+00:00" in starts
    assert not any(s.startswith("2027-02-08") or s.startswith("2027-02-15") for s in starts)
    feed = gateway.ical_event(request(signed_in=False), event_id)
    assert feed.mimetype == "text/calendar"
    text = feed.get_data(as_text=True).replace("\r\n ", "")
    assert "EXDATE;TZID=Africa/Casablanca:20270208T100000" in text
    assert "RECURRENCE-ID;TZID=Africa/Casablanca:20270215T100000" in text


def test_bad_body_is_422_before_any_rpc_and_writes_need_a_session(gateway):
    from marshmallow import ValidationError

    with pytest.raises(ValidationError):
        gateway.events_create(request("POST", body={**EVENT, "start": "demain"}))
    assert web.response_for(ValidationError({"start": ["bad"]})).status_code == 422
    with pytest.raises(web.Unauthorized):
        gateway.events_create(request("POST", body=EVENT, signed_in=False))


def test_calendar_page_renders_each_language(gateway):
    for lang, direction in (("ar", "rtl"), ("fr", "ltr"), ("en", "ltr")):
        html = gateway.calendar_page(request(signed_in=False, lang=lang)).get_data(as_text=True)
        assert f'dir="{direction}"' in html and 'id="calendar"' in html
        assert "/static/vendor/fullcalendar/index.global.min.js" in html


def test_paged_listing_and_conditional_feeds_over_http(gateway):
    gateway.events_create(request("POST", body=EVENT))
    pages, cursor = [], None
    while True:
        query = {"start": "2027-01-01", "end": "2027-04-01", "limit": "3", **({"cursor": cursor} if cursor else {})}
        page = json.loads(gateway.occurrences_page(request(signed_in=False, **query)).get_data())
        assert page["truncated"] is False
        pages.append(page["items"])
        cursor = page["next"]
        if cursor is None:
            break
    assert [len(items) for items in pages] == [3, 3, 1]  # 8 weekly, one exdate
    whole = json.loads(gateway.events_list(request(signed_in=False, start="2027-01-01", end="2027-04-01")).get_data())
    assert [o for items in pages for o in items] == whole
    feed = gateway.ical_network(request(signed_in=False))
    assert feed.status_code == 200 and feed.headers["ETag"] and feed.headers["Last-Modified"]
    again = gateway.ical_network(Request(EnvironBuilder(path="/ical/network.ics", headers={
        "If-None-Match": feed.headers["ETag"]}).get_environ()))
    assert again.status_code == 304 and again.get_data() == b"" and again.headers["ETag"] == feed.headers["ETag"]
    since = gateway.ical_network(Request(EnvironBuilder(path="/ical/network.ics", headers={
        "If-Modified-Since": feed.headers["Last-Modified"]}).get_environ()))
    assert since.status_code == 304
    later = gateway.ical_network(request(signed_in=False, **{"from": "2028-01-01", "to": "2029-01-01"}))
    assert later.status_code == 200 and "BEGIN:VEVENT" not in later.get_data(as_text=True)
    assert later.headers["ETag"] != feed.headers["ETag"]
