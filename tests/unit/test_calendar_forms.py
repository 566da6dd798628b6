"""The calendar's HTML forms: what they turn into (events API bodies, RRULEs), errors named after their
field and said in the page's language, and which form posts the gateway accepts without JavaScript."""

import pytest
from marshmallow import ValidationError
from werkzeug.datastructures import MultiDict

from services.gateway import event_forms as forms
from services.gateway import web
from services.gateway.api_calendar_pages import rule_text
from tansiq import i18n

TRAINING = [("title", "Formation couture"), ("kind", "training"), ("city", "Safi"), ("start_date", "2027-03-01"),
            ("start_time", "10:00"), ("end_time", "12:00"), ("visibility", "public")]


def posted(*extra, drop=()):
    return MultiDict([(k, v) for k, v in TRAINING if k not in drop] + list(extra))


def test_a_weekly_series_with_weekdays_a_count_and_a_skipped_date():
    body = forms.event_body_from_form(posted(("freq", "WEEKLY"), ("interval", "2"), ("byday", "WE"), ("byday", "MO"),
                                             ("ends", "count"), ("count", "6"), ("exdates", "2027-03-15\n\n")),
                                      organiser="amal-safi")
    assert body["rrule"] == "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE;COUNT=6"  # weekdays in week order
    assert body["start"] == "2027-03-01T10:00:00" and body["end"] == "2027-03-01T12:00:00"  # end date: the start's
    assert body["exdates"] == ["2027-03-15T10:00:00"]  # a skipped day is named by its session's start
    assert body["organiser"] == "amal-safi" and body["tz"] == "Africa/Casablanca" and body["status"] == "published"


def test_until_a_day_and_all_day_events_and_no_repetition():
    until = forms.event_body_from_form(posted(("freq", "DAILY"), ("ends", "until"), ("until", "2027-03-10")),
                                       "amal-safi")
    assert until["rrule"] == "FREQ=DAILY;UNTIL=20270310"
    all_day = forms.event_body_from_form(posted(("all_day", "on"), ("end_date", "2027-03-03"),
                                                ("freq", "MONTHLY"), ("exdates", "2027-04-01")), "amal-safi")
    assert all_day["all_day"] and all_day["start"] == "2027-03-01" and all_day["end"] == "2027-03-03"
    assert all_day["exdates"] == ["2027-04-01"]
    assert forms.event_body_from_form(posted(), "amal-safi")["rrule"] is None


def test_an_edit_has_no_organiser_and_a_venue_wins_over_the_free_place():
    body = forms.event_body_from_form(posted(("venue_id", "v-1"), ("place", "chez Amal")))
    assert "organiser" not in body and body["venue_id"] == "v-1" and body["place"] == ""


@pytest.mark.parametrize("extra, drop, field, key", [
    ((), ("title",), "title", "form.required"),
    ((), ("kind",), "kind", "form.required"),
    ((("kind", "picnic"),), ("kind",), "kind", "Must be one of: exhibition, festival, fair, training, campaign, "
                                               "meeting."),
    ((), ("start_time",), "start_time", "form.required"),
    ((("start_date", "01/03/2027"),), ("start_date",), "start_date", "form.invalid_date"),
    ((("end_time", "25:99"),), ("end_time",), "end_time", "form.invalid_time"),
    ((("freq", "HOURLY"),), (), "freq", "form.invalid_choice"),
    ((("freq", "DAILY"), ("byday", "MO")), (), "byday", "event.error.weekdays_daily"),
    ((("freq", "WEEKLY"), ("ends", "count")), (), "count", "form.required"),
    ((("freq", "WEEKLY"), ("ends", "count"), ("count", "-2")), (), "count", "form.whole_number"),
    ((("freq", "WEEKLY"), ("ends", "until"), ("until", "soon")), (), "until", "form.invalid_date"),
    ((("freq", "WEEKLY"), ("exdates", "lundi")), (), "exdates", "form.invalid_date"),
    ((("capacity", "0"),), (), "capacity", "form.whole_number"),
    ((), ("city",), "city", "event.error.city_or_venue"),
])
def test_each_mistake_is_named_after_its_field(extra, drop, field, key):
    with pytest.raises(forms.FormErrors) as caught:
        forms.event_body_from_form(posted(*extra, drop=drop), organiser="amal-safi")
    assert key in caught.value.errors[field]


def test_a_missing_start_is_said_once_at_the_start():
    with pytest.raises(forms.FormErrors) as caught:
        forms.event_body_from_form(posted(drop=("start_date",)), organiser="amal-safi")
    assert caught.value.errors == {"start_date": ["form.required"]}


def test_the_edit_form_shows_a_stored_event_in_its_own_zone():
    event = {"title": "T", "kind": "training", "city": "Safi", "tz": "Africa/Casablanca", "all_day": False,
             "start_local": "2027-04-05T10:00:00+01:00", "end_local": "2027-04-05T12:00:00+01:00",
             # UNTIL as stored: the last second of 30 April in Casablanca (UTC+1), in UTC
             "rrule": "FREQ=WEEKLY;UNTIL=20270430T225959Z;BYDAY=MO", "exdates": ["2027-04-12T09:00:00+00:00"],
             "capacity": None, "visibility": "public", "status": "published", "venue": None}
    values = forms.event_form_values(event)
    assert (values["start_date"], values["start_time"], values["end_time"]) == ("2027-04-05", "10:00", "12:00")
    assert (values["freq"], values["ends"], values["until"], values["byday"]) == ("WEEKLY", "until", "2027-04-30",
                                                                                  ["MO"])
    assert values["exdates"] == "2027-04-12" and values["capacity"] == ""
    again = forms.event_body_from_form(MultiDict([(k, v) for k, v in values.items() if k != "byday"]
                                                 + [("byday", "MO")]))
    assert again["rrule"] == "FREQ=WEEKLY;BYDAY=MO;UNTIL=20270430" and again["exdates"] == ["2027-04-12T10:00:00"]


def test_moving_one_date_and_registering_a_stand():
    moved = forms.move_body_from_form(MultiDict({"recurrence_id": "2027-04-12T09:00:00+00:00",
                                                 "start_date": "2027-04-13", "start_time": "15:00",
                                                 "end_time": "17:00"}))
    assert moved["start"] == "2027-04-13T15:00:00" and moved["end"] == "2027-04-13T17:00:00"
    with pytest.raises(forms.FormErrors) as caught:
        forms.move_body_from_form(MultiDict({"start_date": "2027-04-13", "start_time": "15:00", "end_time": "17"}))
    assert set(caught.value.errors) == {"end_time", "recurrence_id"}
    stand = forms.registration_body_from_form(MultiDict({"name": "Coopérative Amal", "kind": "stand",
                                                         "products": "Tapis\n\n Broderie "}), "amal-safi")
    assert stand["association"] == "amal-safi" and stand["products"] == ["Tapis", "Broderie"]
    with pytest.raises(forms.FormErrors) as caught:
        forms.registration_body_from_form(MultiDict({"name": ""}), "amal-safi")
    assert "name" in caught.value.errors


def test_errors_are_said_in_the_pages_language_never_in_raw_english():
    errors = {"kind": "not_one_of", "title": "too_long", "end_date": "event.error.end_before_start",
              "x": "invalid", "email": "invalid_email", "start_date": "form.invalid_date",
              "byday.1": "not_one_of"}
    for lang in ("ar", "fr", "en"):
        say = i18n.translations(lang).gettext
        shown = {name: web.field_message(errors, name, lang) for name in (*errors, "byday", "city")}
        assert shown["kind"] == say("field_error.not_one_of") and shown["x"] == say("field_error.invalid")
        assert shown["end_date"] == say("event.error.end_before_start")
        assert shown["start_date"] == say("form.invalid_date") and shown["email"] == say("field_error.invalid_email")
        assert shown["byday"] == say("field_error.not_one_of")  # a list's item is shown at the list
        assert shown["city"] == ""  # no error, no words
        assert all(not text.startswith(("field_error.", "form.", "event.")) for text in shown.values()), shown
    assert web.field_message(errors, "end_date", "ar") == "يجب أن تأتي النهاية بعد البداية."
    assert web.field_message(errors, "kind", "fr") == "Choisissez une valeur de la liste."
    assert web.field_code("form.invalid_date") == "form.invalid_date"  # a form's own key is its code
    assert web.field_code("form.no_such_key") == "invalid"  # ... when the catalogue has it: never a raw key
    assert web.field_code("Must be one of: a, b.") == "not_one_of"
    assert web.field_message_key("required") == "field_error.required"
    assert web.field_message_key("form.invalid_date") == "form.invalid_date"


def test_every_message_key_the_forms_use_is_in_the_three_catalogues():
    keys = {f"event.error.{code}" for code in forms.FIELD_OF_CODE}
    keys |= {"event.error.weekdays_daily", "event.error.invalid_window", "event.error.city_or_venue", "form.required",
             "form.whole_number", "form.invalid_date", "form.invalid_time", "form.invalid_choice", "form.too_many",
             "rule.interval", "rule.until"}
    keys |= {f"rule.{freq}" for freq in forms.FREQUENCIES} | {f"weekday.{day}" for day in forms.WEEKDAYS}
    for lang in ("ar", "fr", "en"):
        catalogue = i18n.read_catalogue(lang)
        assert {key for key in keys if not (catalogue.get(key) and catalogue.get(key).string)} == set(), lang


RULE_COUNTS = {  # a recurrence's number of sessions, in each language's own plural forms (ar: six)
    "ar": {0: "0 مرة", 1: "مرة واحدة", 2: "مرتان", 3: "3 مرات", 11: "11 مرة", 100: "100 مرة"},
    "fr": {0: "0 fois", 1: "1 fois", 2: "2 fois", 3: "3 fois", 11: "11 fois", 100: "100 fois"},
    "en": {0: "0 times", 1: "once", 2: "2 times", 3: "3 times", 11: "11 times", 100: "100 times"},
}


@pytest.mark.parametrize("lang", RULE_COUNTS)
def test_a_recurrence_count_is_a_plural_message(lang):
    for count, words in RULE_COUNTS[lang].items():
        assert i18n.translate_plural(lang, "rule.count", "rule.count.plural", count) == words, (lang, count)
        if count:  # a stored rule has one session at least
            said = rule_text(f"FREQ=WEEKLY;COUNT={count}", "Africa/Casablanca", lang)
            assert said.endswith(f" · {words}"), said


def test_the_rule_in_words():
    assert rule_text("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE;COUNT=6", "Africa/Casablanca", "fr") == (
        "Chaque semaine · une fois sur 2 · lundi, mercredi · 6 fois")
    assert rule_text(None, "Africa/Casablanca", "ar") == ""


# --- the forms as their routes' bodies -------------------------------------------------------------

CALENDAR_FORMS = {("POST", "/calendar/new"), ("POST", "/calendar/events/<string:event_id>/edit"),
                  ("POST", "/calendar/events/<string:event_id>/cancel"),
                  ("POST", "/calendar/events/<string:event_id>/occurrences/cancel"),
                  ("POST", "/calendar/events/<string:event_id>/occurrences/move"),
                  ("POST", "/calendar/events/<string:event_id>/register")}


def test_every_calendar_form_is_a_declared_form_route_of_a_calendar_editor_or_staff():
    """Origin, urlencoded body and the CSRF field are webfound's form mechanism (tests/unit/
    test_forms_without_script.py, test_gateway_security.py): the calendar's forms only declare it."""
    from services.gateway.routes import declared_routes
    from services.gateway.service import GatewayService

    declared = {(d.method, d.url): d for d in declared_routes(GatewayService)}
    for key in CALENDAR_FORMS:
        assert declared[key].form and declared[key].page, key
        assert declared[key].auth == ("signed_in" if key[1].endswith("/register") else "calendar.edit"), key


def test_a_form_body_loads_into_the_events_api_body_or_its_errors_at_their_fields():
    loaded = forms.NewEventForm().load({**dict(TRAINING), "freq": "WEEKLY", "byday": ["WE", "MO"],
                                        "idempotency_key": "k" * 32})
    assert loaded["api"]["rrule"] == "FREQ=WEEKLY;BYDAY=MO,WE" and "organiser" not in loaded["api"]
    assert forms.NewEventForm().dump(loaded) == loaded  # what the route hands the handler
    assert forms.NewEventForm().load({**dict(TRAINING), "byday": "MO", "freq": "WEEKLY"})["api"]["rrule"] == (
        "FREQ=WEEKLY;BYDAY=MO")  # a single checkbox arrives as a string
    with pytest.raises(ValidationError) as caught:
        forms.NewEventForm().load({**dict(TRAINING), "kind": "picnic", "start_time": "", "city": ""})
    assert web.field_codes(caught.value.messages) == {"kind": "not_one_of", "start_time": "form.required",
                                                      "city": "event.error.city_or_venue"}
    with pytest.raises(ValidationError) as caught:
        forms.RegistrationForm().load({"name": ""})
    assert web.field_codes(caught.value.messages) == {"name": "length"}
    stand = forms.RegistrationForm().load({"name": "Amal", "kind": "stand", "products": "Tapis"})["api"]
    assert (stand["name"], stand["kind"], stand["products"]) == ("Amal", "stand", ["Tapis"])
    assert "association" not in stand  # her association: the handler adds it from her session
    assert forms.OccurrenceForm().load({"recurrence_id": "2027-04-12T09:00", "idempotency_key": "k"})
    with pytest.raises(ValidationError):
        forms.OccurrenceForm().load({"idempotency_key": "k"})
