"""Finding events (the calendar's search page) and one event's occurrences (its own page), through the
events service's entrypoints on SQLite: words of the title, city, dates; drafts only for their own."""

import pytest
from test_events_service import AS_COORDINATOR, NOUR_STAFF, service  # noqa: F401 - fixture

from tansiq.errors import DomainError, NotFound

WINDOW = {"start": "2027-01-01T00:00:00+00:00", "end": "2027-12-31T00:00:00+00:00"}


def create(service, **values):
    body = {"title": "Formation couture", "kind": "training", "organiser": "amal-safi", "city": "Safi",
            "start": "2027-03-01T10:00", "end": "2027-03-01T12:00", "status": "published", "visibility": "public",
            **values}
    return service.create_event(body, actor=AS_COORDINATOR, force=True)["event"]


def titles(found):
    return [item["title"] for item in found]


def test_search_by_words_city_and_dates(service):
    weekly = create(service, title="Formation Couture avancée", rrule="FREQ=WEEKLY;COUNT=10")
    create(service, title="Salon 100% artisanat", kind="exhibition", start="2027-06-05T10:00",
           end="2027-06-05T18:00")
    create(service, title="Formation écoute", city="Marrakech", start="2027-04-01T09:00", end="2027-04-01T12:00")
    assert titles(service.search_events({"words": "couture", **WINDOW})) == ["Formation Couture avancée"]
    assert titles(service.search_events({"words": "formation", **WINDOW})) == ["Formation Couture avancée",
                                                                               "Formation écoute"]
    assert titles(service.search_events({"words": "formation", "city": "marrakech", **WINDOW})) == [
        "Formation écoute"]
    assert titles(service.search_events({"words": "100%", **WINDOW})) == ["Salon 100% artisanat"]
    assert service.search_events({"words": "salon_100", **WINDOW}) == []  # a wildcard is a character like any other
    # A series is found once, at its first session in the range.
    [found] = service.search_events({"words": "couture", "start": "2027-03-20T00:00:00+00:00",
                                     "end": "2027-04-01T00:00:00+00:00"})
    # 10:00 in Safi, after Ramadan (UTC+1 again): 09:00 UTC.
    assert found["event_id"] == weekly["id"] and found["first"] == "2027-03-22T09:00:00+00:00"
    assert found["first_local"] == "2027-03-22T10:00:00+01:00" and found["recurring"] is True
    assert service.search_events({"words": "salon", "start": "2027-01-01T00:00:00+00:00",
                                  "end": "2027-06-01T00:00:00+00:00"}) == []


def test_search_shows_the_public_public_events_and_drafts_only_to_their_organisers(service):
    create(service, title="Réunion interne", visibility="network")
    create(service, title="Réunion brouillon", status="draft")
    assert titles(service.search_events({"words": "réunion", **WINDOW})) == []
    assert titles(service.search_events({"words": "réunion", **WINDOW}, audience="network",
                                        actor=NOUR_STAFF)) == ["Réunion interne"]
    assert sorted(titles(service.search_events({"words": "réunion", **WINDOW}, audience="network",
                                               actor=AS_COORDINATOR))) == ["Réunion brouillon", "Réunion interne"]


def test_search_refuses_a_reversed_or_endless_range(service):
    with pytest.raises(DomainError) as caught:
        service.search_events({"start": "2027-05-01T00:00:00+00:00", "end": "2027-04-01T00:00:00+00:00"})
    assert caught.value.code == "invalid_window"
    with pytest.raises(DomainError):
        service.search_events({"start": "2027-01-01T00:00:00+00:00", "end": "2029-01-01T00:00:00+00:00"})


def test_one_events_occurrences_for_whoever_may_read_it(service):
    weekly = create(service, rrule="FREQ=WEEKLY;COUNT=4", exdates=["2027-03-08T10:00"])
    listed = service.event_occurrences(weekly["id"], "2027-03-01T00:00:00+00:00", "2027-04-01T00:00:00+00:00")
    assert [o["start_local"][:10] for o in listed] == ["2027-03-01", "2027-03-15", "2027-03-22"]
    assert len(service.event_occurrences(weekly["id"], "2027-03-01T00:00:00+00:00", "2027-04-01T00:00:00+00:00",
                                         limit=2)) == 2
    hidden = create(service, title="Réunion interne", visibility="network")
    with pytest.raises(NotFound):
        service.event_occurrences(hidden["id"], "2027-03-01T00:00:00+00:00", "2027-04-01T00:00:00+00:00")
    assert len(service.event_occurrences(hidden["id"], "2027-03-01T00:00:00+00:00", "2027-04-01T00:00:00+00:00",
                                         audience="network", actor=NOUR_STAFF)) == 1
