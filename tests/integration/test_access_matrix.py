"""The access matrix, against the real services: every route of the OpenAPI document × every kind of caller.

Callers, all about the association amal-safi's data: a case worker, a coordinator, an events manager and an
admin of amal-safi (each with that role only), a case worker of another association, a deactivated account
and an anonymous caller. ALLOWED below is the one table of who may use which route; a route of the document
missing from it fails the test. Refused means 401, 403 or 404 (a referral of others does not exist for
you); anything else below 500 means the request reached the service's rules and passed the gate.

Also here: a raw RPC call with a made-up or tampered actor is refused by intake itself.
"""

import base64
import json
import re
from datetime import datetime, timedelta

import pytest
import requests
from harness import add_staff, eventually
from nameko.exceptions import RemoteError

from tansiq.errors import Forbidden, InvalidActor

SERVICES = ("directory", "intake", "referrals", "events", "notifications", "gateway")
PASSWORD = "tansiq-demo"
CALLERS = ("case_worker", "coordinator", "events_manager", "admin", "other_association", "deactivated", "anonymous")
# Demo accounts where the demo has one with exactly that role; the others are added to this test's own directory.
EMAILS = {"case_worker": "fatima@amal-safi.example", "events_manager": "youssef@amal-safi.example",
          "other_association": "karima@darnoor.example", "coordinator": "coord@amal-safi.test",
          "admin": "admin@amal-safi.test", "deactivated": "gone@amal-safi.test"}
TEST_STAFF = [("s-t-coord", "coord@amal-safi.test", ["coordinator"], True),
              ("s-t-admin", "admin@amal-safi.test", ["admin"], True),
              ("s-t-gone", "gone@amal-safi.test", ["case_worker"], False)]

EVERYONE = set(CALLERS)
SIGNED_IN = EVERYONE - {"deactivated", "anonymous"}
AMAL_STAFF = {"case_worker", "coordinator", "events_manager", "admin"}
CASE_WORKER = {"case_worker"}
# (METHOD, OpenAPI path) -> the callers who may use it (tansiq.contracts.actor MATRIX, as staff live it).
ALLOWED = {
    ("GET", "/healthz"): EVERYONE,
    ("GET", "/api/openapi.json"): EVERYONE,
    ("POST", "/api/login"): SIGNED_IN,  # the deactivated account and a stranger are refused
    ("POST", "/api/logout"): EVERYONE,
    ("GET", "/api/me"): SIGNED_IN,
    ("POST", "/api/password"): SIGNED_IN,  # asked with a too short new password: nobody's sessions end here
    ("POST", "/api/staff/{staff_id}/deactivate"): {"admin"},  # staff.manage; the target is already deactivated
    # a survivor's record: her association's case workers only
    ("POST", "/api/beneficiaries"): CASE_WORKER | {"other_association"},  # each registers in her own association
    ("GET", "/api/beneficiaries"): CASE_WORKER | {"other_association"},  # her own association's list
    ("GET", "/api/beneficiaries/{beneficiary_id}"): CASE_WORKER,
    ("DELETE", "/api/beneficiaries/{beneficiary_id}"): {"admin"},
    ("POST", "/api/beneficiaries/{beneficiary_id}/sessions"): CASE_WORKER,
    ("POST", "/api/beneficiaries/{beneficiary_id}/consents"): CASE_WORKER,
    ("GET", "/api/beneficiaries/{beneficiary_id}/audit"): CASE_WORKER,
    ("GET", "/api/beneficiaries/{beneficiary_id}/disclosures"): CASE_WORKER,
    ("POST", "/api/consents/{consent_id}/revoke"): CASE_WORKER,
    ("POST", "/api/duplicates/{flag_id}"): CASE_WORKER,
    ("GET", "/api/directory/services"): SIGNED_IN,
    # referrals sent and received: case workers; the holiday calendar: coordinators and admins
    ("GET", "/api/referrals"): CASE_WORKER | {"other_association"},  # her own association's list
    ("POST", "/api/referrals"): CASE_WORKER,
    ("GET", "/api/referrals/{referral_id}"): CASE_WORKER,
    ("POST", "/api/referrals/{referral_id}/{action}"): CASE_WORKER,
    ("POST", "/api/holidays"): {"coordinator", "admin"},
    # the calendar: everyone reads public events; coordinators and events managers edit their association's
    ("GET", "/api/events"): EVERYONE,
    ("GET", "/api/occurrences"): EVERYONE,  # public occurrences, plus network ones when signed in
    ("POST", "/api/events"): {"coordinator", "events_manager"},
    ("GET", "/api/events/{event_id}"): EVERYONE,
    ("PATCH", "/api/events/{event_id}"): {"coordinator", "events_manager"},
    ("POST", "/api/events/{event_id}/cancel"): {"coordinator", "events_manager"},
    ("POST", "/api/events/{event_id}/occurrences/move"): {"coordinator", "events_manager"},
    ("POST", "/api/events/{event_id}/occurrences/cancel"): {"coordinator", "events_manager"},
    ("POST", "/api/events/{event_id}/registrations"): AMAL_STAFF,  # for her own association only
    ("POST", "/api/calendar-imports"): {"coordinator", "events_manager"},  # her own association's calendar
    ("GET", "/api/calendar-imports/{import_id}"): {"coordinator", "events_manager"},
    ("GET", "/api/venues"): EVERYONE,
    ("GET", "/ical/network.ics"): EVERYONE,
    ("GET", "/ical/city/{city}.ics"): EVERYONE,
    ("GET", "/ical/association/{slug}.ics"): EVERYONE,
    ("GET", "/ical/event/{event_id}.ics"): EVERYONE,
    # one's own inbox and preferences; nobody marks another's item read
    ("GET", "/api/inbox"): SIGNED_IN,
    ("GET", "/api/inbox/unread-count"): SIGNED_IN,
    ("POST", "/api/inbox/{item_id}/read"): CASE_WORKER,  # the item is the case worker's
    ("GET", "/api/preferences"): SIGNED_IN,
    ("PUT", "/api/preferences"): SIGNED_IN,
}
REFUSED = (401, 403, 404)
IMPORT = {"association": "amal-safi", "name": "matrix.ics", "ics": "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\n"
          "UID:matrix@example.org\r\nDTSTART:20270601T100000Z\r\nDTEND:20270601T110000Z\r\nSUMMARY:Atelier\r\n"
          "END:VEVENT\r\nEND:VCALENDAR\r\n"}
FIRST_OCCURRENCE = datetime(2027, 3, 20, 10, 0)  # of the weekly event the routes move and cancel occurrences of


def add_test_staff(network):
    for staff_id, email, roles, active in TEST_STAFF:
        add_staff(network, staff_id, email, roles, active=active, password=PASSWORD)


def login(network, email):
    response = requests.post(f"{network.web}/api/login", json={"email": email, "password": PASSWORD}, timeout=30)
    return response.cookies.get("tansiq_session") if response.ok else None


class Caller:
    """One caller's requests, stateless: the session token travels as a bearer token (nothing in a cookie jar)."""

    def __init__(self, network, token):
        self.web, self.token = network.web, token

    def __call__(self, method, path, body=None, **query):
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return requests.request(method, f"{self.web}{path}", json=body, params=query, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def world(request):
    from harness import Network

    network = Network()
    try:
        network.migrate()
        network.seed()
        add_test_staff(network)
        network.start(*SERVICES)
        tokens = {name: login(network, email) for name, email in EMAILS.items()}
        assert tokens["deactivated"] is None and all(tokens[name] for name in SIGNED_IN)
        callers = {name: Caller(network, tokens.get(name)) for name in CALLERS}
        yield network, callers, setup_data(network, callers)
    finally:
        network.close()


def setup_data(network, callers):
    """What the routes act on: records of amal-safi, a referral it received, events it organises."""
    fatima, naima = callers["case_worker"], Caller(network, login(network, "naima@wafae.example"))
    youssef = callers["events_manager"]

    def created(response):
        assert response.status_code in (200, 201, 202), response.text
        return response.json()

    survivor = {"kind": "survivor", "first_name": "Khadija", "last_name": "Canary", "phone": "0612340000",
                "city": "Safi", "needs": ["legal_orientation"], "notes": "canary-notes"}
    beneficiary = created(fatima("POST", "/api/beneficiaries", survivor))["id"]
    created(fatima("POST", "/api/beneficiaries", {**survivor, "first_name": "Khadija B."}))  # a possible duplicate
    to_erase = created(fatima("POST", "/api/beneficiaries", {"first_name": "Erasable", "needs": ["literacy"]}))["id"]
    record = created(fatima("GET", f"/api/beneficiaries/{beneficiary}"))
    consent = {"purpose": "legal_orientation", "fields": ["first_name"], "recipient_association": "wafae-marrakech"}
    revocable = created(fatima("POST", f"/api/beneficiaries/{beneficiary}/consents", consent))["id"]
    created(fatima("POST", f"/api/beneficiaries/{beneficiary}/consents", consent))  # the one referrals use
    # A referral amal-safi received, from Marrakech.
    theirs = created(naima("POST", "/api/beneficiaries", {"first_name": "Salma", "needs": ["literacy"]}))["id"]
    created(naima("POST", f"/api/beneficiaries/{theirs}/consents", {
        "purpose": "literacy", "fields": ["first_name"], "recipient_association": "amal-safi"}))
    received = created(naima("POST", "/api/referrals", {
        "beneficiary_id": theirs, "to_association": "amal-safi", "service_category": "literacy",
        "reason": "canary-reason", "urgency": "normal", "fields": ["first_name"]}))["id"]
    event = {"title": "Salon", "kind": "exhibition", "organiser": "amal-safi", "city": "Safi",
             "start": "2027-03-20T10:00", "end": "2027-03-20T12:00", "status": "published", "visibility": "public",
             "rrule": "FREQ=WEEKLY;COUNT=20"}
    events = [created(youssef("POST", "/api/events", event))["event"]["id"] for _ in range(2)]
    item = eventually(lambda: fatima("GET", "/api/inbox").json()["items"], message="fatima's inbox item")[0]["id"]
    imported = created(youssef("POST", "/api/calendar-imports", IMPORT))["id"]
    return {"beneficiary": beneficiary, "to_erase": to_erase, "flag": record["possible_duplicates"][0]["id"],
            "consent": revocable, "referral": received, "event": events[0], "event_to_cancel": events[1],
            "item": item, "import": imported}


def request_for(method, path, data, caller):
    """The concrete request of a documented route: its path parameters and a valid body."""
    values = {"beneficiary_id": data["to_erase"] if method == "DELETE" else data["beneficiary"],
              "consent_id": data["consent"], "flag_id": data["flag"], "referral_id": data["referral"],
              "action": "acknowledge", "event_id": data["event_to_cancel"] if path.endswith("/cancel") and
              "occurrences" not in path else data["event"], "item_id": data["item"], "city": "Safi",
              "slug": "amal-safi", "staff_id": "s-t-gone", "import_id": data["import"]}
    url = re.sub(r"\{(\w+)\}", lambda match: str(values[match[1]]), path)
    # A week of the weekly event per caller and per route, so no attempt finds it already moved or cancelled.
    week = CALLERS.index(caller) + (len(CALLERS) if path.endswith("occurrences/cancel") else 0)
    occurrence = (FIRST_OCCURRENCE + timedelta(weeks=week)).strftime("%Y-%m-%dT%H:%M")
    bodies = {
        ("POST", "/api/beneficiaries"): {"first_name": "Amina", "needs": ["literacy"]},
        ("POST", "/api/beneficiaries/{beneficiary_id}/sessions"): {"needs": ["shelter"]},
        ("POST", "/api/beneficiaries/{beneficiary_id}/consents"): {
            "purpose": "shelter", "fields": ["first_name"], "recipient_association": "dar-noor-casablanca"},
        ("POST", "/api/duplicates/{flag_id}"): {"decision": "distinct"},
        ("POST", "/api/referrals"): {
            "beneficiary_id": data["beneficiary"], "to_association": "wafae-marrakech",
            "service_category": "legal_orientation", "reason": "canary-reason", "urgency": "normal",
            "fields": ["first_name"]},
        ("POST", "/api/referrals/{referral_id}/{action}"): {},
        ("POST", "/api/holidays"): {"day": "2027-03-03", "is_holiday": False},
        ("POST", "/api/events"): {"title": "Atelier", "kind": "training", "organiser": "amal-safi", "city": "Safi",
                                  "start": "2027-05-02T10:00", "end": "2027-05-02T12:00", "status": "published",
                                  "visibility": "public"},
        ("PATCH", "/api/events/{event_id}"): {"title": "Salon d'hiver"},
        ("POST", "/api/events/{event_id}/occurrences/move"): {"recurrence_id": occurrence,
                                                              "start": occurrence.replace("T10", "T15")},
        ("POST", "/api/events/{event_id}/occurrences/cancel"): {"recurrence_id": occurrence},
        ("POST", "/api/events/{event_id}/registrations"): {"association": "amal-safi", "name": "Stand"},
        ("PUT", "/api/preferences"): {"digest": False},
        ("POST", "/api/calendar-imports"): IMPORT,
        ("POST", "/api/password"): {"current_password": PASSWORD, "new_password": "short"},
    }
    query = {"GET /api/directory/services": {"category": "legal_orientation"},
             "GET /api/referrals": {"direction": "received"}}.get(f"{method} {path}", {})
    return url, bodies.get((method, path)), query


def test_every_route_for_every_caller_follows_the_one_table(world):
    network, callers, data = world
    document = requests.get(f"{network.web}/api/openapi.json", timeout=30).json()
    routes = sorted((method.upper(), path) for path, operations in document["paths"].items() for method in operations)
    assert set(routes) == set(ALLOWED), "the table and the OpenAPI document disagree: add or remove rows"
    mismatches = []
    for method, path in routes:
        for name in CALLERS:
            if (method, path) == ("POST", "/api/login"):
                email = EMAILS.get(name, "nobody@nowhere.example")
                answer = requests.post(f"{network.web}/api/login", json={"email": email, "password": PASSWORD},
                                       timeout=30)
            elif (method, path) == ("POST", "/api/logout") and name in SIGNED_IN:
                answer = Caller(network, login(network, EMAILS[name]))(method, path)  # not the token used below
            else:
                url, body, query = request_for(method, path, data, name)
                answer = callers[name](method, url, body, **query)
            assert answer.status_code < 500, (method, path, name, answer.text)
            allowed = answer.status_code not in REFUSED
            if allowed != (name in ALLOWED[(method, path)]):
                mismatches.append((method, path, name, answer.status_code, answer.text[:200]))
    assert mismatches == []


# The role each kind of caller holds (other_association: a case worker of another association).
CALLER_ROLES = {"case_worker": "case_worker", "other_association": "case_worker", "coordinator": "coordinator",
                "events_manager": "events_manager", "admin": "admin"}


def test_the_table_agrees_with_the_roles_the_routes_declare():
    """The gate is read from each route's one declaration (services.gateway.routes): every caller the table
    lets in holds one of the declared roles, and a route that needs a session lets no anonymous caller in."""
    from services.gateway.api_openapi import gateway_routes, openapi_path

    declared_routes = gateway_routes()
    assert {(d.method, openapi_path(d.url)[0]) for d in declared_routes} == set(ALLOWED)
    for declared in declared_routes:
        callers = ALLOWED[(declared.method, openapi_path(declared.url)[0])]
        if declared.auth == "public":
            continue
        assert {CALLER_ROLES[c] for c in callers if c in CALLER_ROLES} <= declared.roles(), declared.name
        if declared.needs_session:
            assert not callers & {"anonymous", "deactivated"}, declared.name


def test_the_events_manager_reads_nothing_of_a_survivor(world):
    """youssef@amal-safi.example: no record, audit, disclosures, consents or received referrals — and no name."""
    network, callers, data = world
    youssef = callers["events_manager"]
    beneficiary = data["beneficiary"]
    answers = [youssef("GET", f"/api/beneficiaries/{beneficiary}"),
               youssef("GET", f"/api/beneficiaries/{beneficiary}/audit"),
               youssef("GET", f"/api/beneficiaries/{beneficiary}/disclosures"),
               youssef("POST", f"/api/consents/{data['consent']}/revoke"),
               youssef("GET", "/api/referrals", direction="received"),
               youssef("GET", f"/api/referrals/{data['referral']}"),
               youssef("GET", f"/beneficiaries/{beneficiary}"), youssef("GET", "/referrals")]
    assert [answer.status_code for answer in answers] == [403] * len(answers)
    for answer in answers:
        assert "Khadija" not in answer.text and "Salma" not in answer.text and "canary" not in answer.text


def test_a_made_up_or_tampered_actor_on_rpc_is_refused_by_intake(world):
    """Any broker client can call intake.get_beneficiary; only the gateway's signature is believed."""
    network, _, data = world
    fatima = {"id": "s-safi-1", "association": "amal-safi", "roles": ["case_worker"]}
    genuine = network.assertion(fatima, "intake")
    version, body, signature = genuine.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    tampered = ".".join((version, base64.urlsafe_b64encode(json.dumps(
        {**claims, "id": "s-t-coord", "roles": ["case_worker", "admin"]}).encode()).rstrip(b"=").decode(), signature))
    with network.rpc() as cluster:
        for forged in ({"association": "amal-safi", "roles": []}, fatima, tampered,
                       network.assertion(fatima, "referrals")):  # signed, but not for intake
            with pytest.raises((InvalidActor, RemoteError)) as refused:
                cluster.intake.get_beneficiary(data["beneficiary"], forged)
            assert getattr(refused.value, "code", None) == "unauthorized" or "InvalidActor" in str(refused.value)
        assert cluster.intake.get_beneficiary(data["beneficiary"], genuine)["last_name"] == "Canary"
        # A genuine assertion of the events manager: intake itself refuses her (not only the gateway).
        youssef = network.assertion({"id": "s-safi-3", "association": "amal-safi", "roles": ["events_manager"]})
        for call in (cluster.intake.get_beneficiary, cluster.intake.audit_trail, cluster.intake.list_disclosures):
            with pytest.raises(Forbidden):
                call(data["beneficiary"], youssef)
        with pytest.raises(Forbidden):
            cluster.referrals.get_referral(data["referral"], youssef)
