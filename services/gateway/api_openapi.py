"""OpenAPI 3.1 description of the gateway's HTTP API (GET /api/openapi.json, and docs/openapi.json).

    python -m services.gateway.api_openapi --write     # after adding or changing a route

The routes come from walking GatewayService's nameko `ApiHandler` entrypoints (method, url),
so none can be left out; ROUTES adds what the code does not say (summary, body and answer
schemas, query parameters, whether a session is needed). Shapes are the marshmallow schemas
of services/*/schemas.py, converted by apispec's MarshmallowPlugin.
tests/unit/test_openapi.py regenerates the document and compares it with the committed file.
"""

import inspect
import json
import re
from pathlib import Path

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from services.directory.schemas import OfferedServiceSchema, StaffSchema
from services.events.schemas import (
    CancelOccurrence,
    CreateEvent,
    EventSchema,
    ImportJobSchema,
    ImportRequest,
    MoveOccurrence,
    OccurrencePageSchema,
    OccurrenceSchema,
    RegistrationSchema,
    UpdateEvent,
    VenueSchema,
    WallTime,
)
from services.gateway import schemas as gateway
from services.gateway.calls import DEFAULT_TIMEOUT_S, IDEMPOTENCY_HEADER
from services.gateway.web import (
    CSRF_HEADER,
    ERROR_STATUS,
    SESSION_COOKIE,
    ApiHandler,
    api,
    json_response,
)
from services.intake.schemas import (
    BeneficiaryListQuerySchema,
    BeneficiarySchema,
    ConsentSchema,
    DuplicateDecisionSchema,
    SessionSchema,
)
from services.notifications.schemas import PreferencesSchema
from services.referrals.domain import ACTIONS
from services.referrals.schemas import (
    CreateReferralSchema,
    HolidaySchema,
    ListQuerySchema,
    ReferralSchema,
    RerouteSchema,
    TransitionSchema,
)
from tansiq import generated, paging
from tansiq.commands import KEY_MAX_LENGTH
from tansiq.contracts.actor import roles_with
from tansiq.contracts.events import EVENT_KINDS

OUTPUT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
DOCUMENTED = re.compile(r"^/(api/|ical/|healthz$)")  # the HTML pages and static files are not an API
JSON = "application/json"
CALENDAR = "text/calendar"
STAFF, OPTIONAL, PUBLIC = "staff", "optional", "public"

# Component name -> schema. Names are chosen here: several services have a "StaffSchema".
# Nested ones come before the schemas that nest them (else apispec names them itself).
COMPONENTS = {
    "Staff": StaffSchema, "LoginRequest": gateway.LoginSchema, "LoginResult": gateway.LoginResultSchema,
    "PasswordChange": gateway.PasswordChangeSchema,
    "SessionClaims": gateway.SessionClaimsSchema, "Error": gateway.ErrorSchema, "OfferedService": OfferedServiceSchema,
    "BeneficiaryRegistration": BeneficiarySchema, "Registered": gateway.RegisteredSchema,
    "ListeningSession": SessionSchema, "Consent": ConsentSchema, "DuplicateDecision": DuplicateDecisionSchema,
    "CreateReferral": CreateReferralSchema, "Referral": ReferralSchema, "Transition": TransitionSchema,
    "Reroute": RerouteSchema, "Holiday": HolidaySchema,
    "Venue": VenueSchema, "Registration": RegistrationSchema, "CreateEvent": CreateEvent,
    "UpdateEvent": UpdateEvent(partial=True), "Event": EventSchema, "EventResult": gateway.EventResultSchema,
    "Occurrence": OccurrenceSchema, "OccurrencePage": OccurrencePageSchema, "MoveOccurrence": MoveOccurrence,
    "CancelOccurrence": CancelOccurrence, "ImportRequest": ImportRequest, "ImportJob": ImportJobSchema,
    "InboxEntry": gateway.InboxEntrySchema, "InboxList": gateway.InboxListSchema,
    "ReferralPage": gateway.ReferralPageSchema, "BeneficiaryPage": gateway.BeneficiaryPageSchema,
    "UnreadCount": gateway.UnreadCountSchema, "Preferences": PreferencesSchema,
}
OBJECT = {"type": "object"}


def query(name, schema, description=""):
    return {"in": "query", "name": name, "required": False, "schema": schema, "description": description}


def page_of(item):
    """The answer of a paged list whose items have no named schema."""
    return {"type": "object", "properties": {
        "items": {"type": "array", "items": item},
        "next": {"type": ["string", "null"], "description": "cursor of the following page; null on the last"}}}


FORCE = query("force", {"type": "string", "enum": ["1", "true", "yes"]}, "save despite venue/time clash warnings")
WINDOW = [query("start", {"type": "string", "format": "date-time"}, "default: 7 days ago"),
          query("end", {"type": "string", "format": "date-time"}, "default: in 62 days"),
          query("city", {"type": "string"}), query("kind", {"type": "string", "enum": list(EVENT_KINDS)}),
          query("association", {"type": "string"}, "organiser or co-organiser slug")]
FEED = [query("from", {"type": "string", "format": "date-time"}, "window start; default: 3 months before this month"),
        query("to", {"type": "string", "format": "date-time"}, "window end; default: 18 months after this month "
              "(at most 5 years in all)")]
PAGING = [query("cursor", {"type": "string"}, "the `next` of the page before; absent for the first page"),
          query("limit", {"type": "integer", "minimum": 1, "maximum": 2000, "default": 200}, "occurrences per page")]


def described(tag, summary, answer=(200, OBJECT), auth=STAFF, body=None, query=None, params=None, command=False):
    """What a route's code does not say.

    answer: (status, component name | [component name] for an array | JSON schema | CALENDAR);
    auth: STAFF (a session is needed), OPTIONAL (signed in sees more) or PUBLIC;
    body: component name, or a list of them (one of); query: a marshmallow schema or parameter list;
    params: extra JSON schema per path parameter (e.g. an enum);
    command: it changes something, and takes an `Idempotency-Key` (tansiq.commands).
    """
    return {"tag": tag, "summary": summary, "answer": answer, "auth": auth, "body": body, "query": query,
            "params": params or {}, "command": command}


# (METHOD, OpenAPI path) -> described(...)
ROUTES = {
    ("GET", "/healthz"): described(tag="session", auth=PUBLIC, summary="Liveness probe", answer=(200, OBJECT)),
    ("GET", "/api/openapi.json"): described(tag="session", auth=PUBLIC, summary="This document", answer=(200, OBJECT)),
    ("POST", "/api/login"): described(tag="session", auth=PUBLIC, body="LoginRequest", answer=(200, "LoginResult"),
                                 summary="Sign in; sets the session cookie, answers her profile and X-CSRF-Token"),
    ("POST", "/api/logout"): described(tag="session", auth=PUBLIC, summary="Sign out (ends the session at once)",
                                  answer=(200, OBJECT)),
    ("GET", "/api/me"): described(tag="session", summary="The signed-in staff member (and X-CSRF-Token)",
                                  answer=(200, "SessionClaims")),
    ("POST", "/api/password"): described(tag="session", body="PasswordChange", answer=(200, "LoginResult"),
                                         summary="Change her password; every other session of hers ends"),
    ("POST", "/api/staff/{staff_id}/deactivate"): described(
        tag="session", answer=(200, "Staff"), summary="Deactivate a colleague (admin); her sessions end at once"),
    # intake
    ("POST", "/api/beneficiaries"): described(
        command=True, tag="intake", body="BeneficiaryRegistration", answer=(201, "Registered"),
        summary="Register a beneficiary and her first listening session; lists possible duplicates"),
    ("GET", "/api/beneficiaries"): described(
        tag="intake", query=BeneficiaryListQuerySchema, answer=(200, "BeneficiaryPage"),
        summary="Her association's beneficiaries, newest first, one page at a time (no personal fields); "
                "`phone` or `name` finds the records with that value through the blind index"),
    ("GET", "/api/beneficiaries/{beneficiary_id}"): described(
        tag="intake", answer=(200, OBJECT), summary="A beneficiary's record (her association only; audited)"),
    ("DELETE", "/api/beneficiaries/{beneficiary_id}"): described(
        tag="intake", answer=(200, OBJECT), summary="Erase a beneficiary's personal data (right to erasure)"),
    ("POST", "/api/beneficiaries/{beneficiary_id}/sessions"): described(
        command=True, tag="intake", body="ListeningSession", answer=(201, OBJECT), summary="Add a listening session"),
    ("POST", "/api/beneficiaries/{beneficiary_id}/consents"): described(
        command=True, tag="intake", body="Consent", answer=(201, OBJECT),
        summary="Record her consent to share chosen fields"),
    ("GET", "/api/beneficiaries/{beneficiary_id}/audit"): described(
        tag="intake", query=paging.PageQuery, answer=(200, page_of(OBJECT)),
        summary="Who read or changed her record, newest first, one page at a time"),
    ("GET", "/api/beneficiaries/{beneficiary_id}/disclosures"): described(
        tag="intake", query=paging.PageQuery, answer=(200, page_of(OBJECT)),
        summary="What was shared, with whom, newest first, one page at a time"),
    ("POST", "/api/consents/{consent_id}/revoke"): described(command=True, tag="intake", answer=(200, OBJECT),
                                                        summary="Revoke a consent"),
    ("POST", "/api/duplicates/{flag_id}"): described(tag="intake", body="DuplicateDecision", answer=(200, OBJECT),
                                                summary="Decide whether a possible duplicate is the same woman"),
    # directory
    ("GET", "/api/directory/services"): described(
        tag="directory", query=gateway.ServicesQuerySchema, answer=(200, ["OfferedService"]),
        summary="Active services of a category (optionally in a city): whom a referral or consent may name"),
    # referrals
    ("GET", "/api/referrals"): described(tag="referrals", query=ListQuerySchema, answer=(200, "ReferralPage"),
                                    summary="Referrals the association sent or received, newest first, one page "
                                            "at a time (each says whether it is overdue)"),
    ("POST", "/api/referrals"): described(command=True, tag="referrals", body="CreateReferral",
                                          answer=(201, "Referral"),
                                          summary="Refer a beneficiary to another association (needs her consent)"),
    ("GET", "/api/referrals/{referral_id}"): described(tag="referrals", answer=(200, "Referral"),
                                                  summary="One referral, as the sender or the recipient sees it"),
    ("POST", "/api/referrals/{referral_id}/{action}"): described(
        command=True, tag="referrals", body=["Transition", "Reroute"], answer=(200, "Referral"),
        params={"action": {"type": "string", "enum": list(ACTIONS)}},
        summary="Act on a referral: acknowledge, accept, decline (reason), start, complete (outcome), close, "
                "withdraw, or reroute (201, a new referral)"),
    ("POST", "/api/holidays"): described(tag="referrals", body="Holiday", answer=(200, "Holiday"),
                                    summary="Add or correct a public holiday (deadlines count working days)"),
    # events
    ("GET", "/api/events"): described(tag="events", auth=OPTIONAL, query=WINDOW, answer=(200, ["Occurrence"]),
                                 summary="Occurrences in a window (public ones, plus network ones when signed in); "
                                         "422 too_many_occurrences past 2000 (never cut): use /api/occurrences"),
    ("GET", "/api/occurrences"): described(
        tag="events", auth=OPTIONAL, answer=(200, "OccurrencePage"), query=[*WINDOW, *PAGING],
        summary="Occurrences in a window, page by page: follow `next` until it is null; `truncated` is "
                "always false (nothing is cut without a `next`)"),
    ("POST", "/api/events"): described(command=True, tag="events", body="CreateEvent", query=[FORCE],
                                       answer=(201, "EventResult"), summary="Create an event"),
    ("GET", "/api/events/{event_id}"): described(tag="events", auth=OPTIONAL, answer=(200, "Event"),
                                                 summary="One event"),
    ("PATCH", "/api/events/{event_id}"): described(command=True, tag="events", body="UpdateEvent", query=[FORCE],
                                              answer=(200, "EventResult"), summary="Change an event"),
    ("POST", "/api/events/{event_id}/cancel"): described(command=True, tag="events", answer=(200, "Event"),
                                                         summary="Cancel an event"),
    ("POST", "/api/events/{event_id}/occurrences/move"): described(
        command=True, tag="events", body="MoveOccurrence", query=[FORCE], answer=(200, "EventResult"),
        summary="Move one occurrence of a recurring event"),
    ("POST", "/api/events/{event_id}/occurrences/cancel"): described(
        command=True, tag="events", body="CancelOccurrence", answer=(200, "Event"), summary="Cancel one occurrence"),
    ("POST", "/api/events/{event_id}/registrations"): described(
        command=True, tag="events", body="Registration", answer=(201, "Registration"),
        summary="Register a participant or stand"),
    ("POST", "/api/calendar-imports"): described(
        tag="events", body="ImportRequest", answer=(202, "ImportJob"),
        summary="Import an association's existing calendar (an https URL kept in Google or Outlook, or an .ics "
                "file's text, 10 MB at most) as a job, idempotent on UID: importing again updates, never "
                "duplicates. Coordinators and events managers of that association; URLs must reach public "
                "addresses"),
    ("GET", "/api/calendar-imports/{import_id}"): described(
        tag="events", answer=(200, "ImportJob"),
        summary="An import's progress and report (malformed VEVENTs with their line)"),
    ("GET", "/api/venues"): described(tag="events", auth=PUBLIC, query=[query("city", {"type": "string"})],
                                 answer=(200, ["Venue"]), summary="Registered venues"),
    # iCalendar feeds: public events only, so calendar apps can subscribe without signing in
    # Each carries an ETag and Last-Modified and answers 304 to If-None-Match / If-Modified-Since.
    ("GET", "/ical/network.ics"): described(tag="ical", auth=PUBLIC, answer=(200, CALENDAR), query=FEED,
                                       summary="Every public event of the network"),
    ("GET", "/ical/city/{city}.ics"): described(tag="ical", auth=PUBLIC, answer=(200, CALENDAR), query=FEED,
                                           summary="Public events in one city"),
    ("GET", "/ical/association/{slug}.ics"): described(tag="ical", auth=PUBLIC, answer=(200, CALENDAR), query=FEED,
                                                  summary="Public events an association organises"),
    ("GET", "/ical/event/{event_id}.ics"): described(tag="ical", auth=PUBLIC, answer=(200, CALENDAR), query=FEED,
                                                summary="One public event"),
    # inbox
    ("GET", "/api/inbox"): described(tag="inbox", answer=(200, "InboxList"),
                                     summary="The signed-in staff member's inbox", query=gateway.InboxQuerySchema),
    ("GET", "/api/inbox/unread-count"): described(tag="inbox", answer=(200, "UnreadCount"), summary="Unread items"),
    ("POST", "/api/inbox/{item_id}/read"): described(tag="inbox", answer=(200, "InboxEntry"), summary="Mark one read"),
    ("GET", "/api/preferences"): described(tag="inbox", answer=(200, "Preferences"),
                                      summary="Notification channels, language, quiet hours, digest"),
    ("PUT", "/api/preferences"): described(tag="inbox", body="Preferences", answer=(200, "Preferences"),
                                      summary="Change notification preferences (partial)"),
}

TAGS = [
    {"name": "session", "description": "Signing in and out"},
    {"name": "intake", "description": "Beneficiaries, listening sessions, consents, duplicates, erasure"},
    {"name": "directory", "description": "The network's associations and the services they offer"},
    {"name": "referrals", "description": "Closed-loop referrals between associations"},
    {"name": "events", "description": "The shared calendar"},
    {"name": "ical", "description": "iCalendar (RFC 5545) feeds to subscribe to"},
    {"name": "inbox", "description": "In-app notifications and notification preferences"},
]

DESCRIPTION = f"""\
The JSON API of the Tansiq gateway (the staff web app uses it too).

Sign in with `POST /api/login`: the answer sets the `{SESSION_COOKIE}` cookie (HttpOnly; other programs
may send its value as `Authorization: Bearer <token>`) and an `{CSRF_HEADER}` header. A session ends on
`POST /api/logout`, after 30 minutes without a request, 12 hours after sign-in, and when her password
changes or she is deactivated. Repeated wrong passwords answer 429 `too_many_attempts` with `Retry-After`.
Every POST, PATCH or DELETE must come from this site (`Origin`), carry a JSON body as `application/json`
(or no body), and, when signed in by cookie, send the `{CSRF_HEADER}` header. The signed-in
staff member's association and roles decide what she may see and do: each operation names its
`x-permission` and the `x-roles` that hold it (403 otherwise); the owning service checks again.

Every refused request answers `{{"error": {{"code", "message", "details"}}}}` with the status of its code:
{chr(10).join(f"- `{code}`: {status}" for code, status in ERROR_STATUS.items())}
- any other refusal: 400 (404/409/403 when it is a not-found, conflict or forbidden kind); `internal_error`: 500.

Every change that creates or acts (the operations with an `{IDEMPOTENCY_HEADER}` parameter) may carry an
`{IDEMPOTENCY_HEADER}` header: the owning service records it with the change, in the same transaction, and
answers a repeat of the same request with the first answer (nothing is created twice); the same key with
another request is refused 409 `idempotency_key_reused`. The web app sends one per form. A service that does
not answer within the gateway's timeout (RPC_TIMEOUT_S, default {DEFAULT_TIMEOUT_S:g} s) gives 503
`service_unavailable` with `Retry-After`; the request is not run later behind the caller's back, and retrying
it with the same key is safe (it runs once, or answers what the first attempt did).

Times are ISO 8601 in UTC; events also carry local wall times in their IANA zone (Africa/Casablanca).
"""

PARAMETER = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")
CONVERTER_TYPES = {"int": {"type": "integer"}, "float": {"type": "number"}}


def gateway_routes(service_class=None):
    """[(METHOD, werkzeug url, method name, docstring)] of every `@api` entrypoint of the gateway."""
    if service_class is None:
        from services.gateway.service import (
            GatewayService as service_class,  # here: service.py imports this module
        )
    found = []
    for name, method in inspect.getmembers(service_class, inspect.isfunction):
        for entrypoint in getattr(method, "nameko_entrypoints", ()):
            if isinstance(entrypoint, ApiHandler):
                found.append((entrypoint.method.upper(), entrypoint.url, name, inspect.getdoc(method) or ""))
    return sorted(found, key=lambda route: (route[1], route[0]))


def route_permissions(service_class=None):
    """{method name: permission} of every route that declares one (services.gateway.access)."""
    if service_class is None:
        from services.gateway.service import GatewayService as service_class
    return {name: method.permission for name, method in inspect.getmembers(service_class, inspect.isfunction)
            if getattr(method, "permission", None)}


def openapi_path(url):
    """/api/x/<int:flag_id> -> (/api/x/{flag_id}, {flag_id: {"type": "integer"}})."""
    types = {}

    def replace(match):
        types[match["name"]] = dict(CONVERTER_TYPES.get(match["converter"], {"type": "string"}))
        return "{" + match["name"] + "}"

    return PARAMETER.sub(replace, url), types


def _content(schema, media=JSON):
    if isinstance(schema, list):  # a JSON array of one component
        return {media: {"schema": {"type": "array", "items": {"$ref": f"#/components/schemas/{schema[0]}"}}}}
    if isinstance(schema, str):
        return {media: {"schema": {"$ref": f"#/components/schemas/{schema}"}}}
    return {media: {"schema": schema}}


def operation(method, url, name, doc, info, permission=None):
    path, types = openapi_path(url)
    auth = info.get("auth", STAFF)
    summary = info.get("summary") or (doc.splitlines()[0] if doc else name)
    op = {"tags": [info.get("tag", "other")], "summary": summary, "operationId": name,
          "parameters": [{"in": "path", "name": param, "required": True, "schema": {**schema, **info.get(
              "params", {}).get(param, {})}} for param, schema in types.items()]}
    extra = info.get("query") or []
    if info.get("command"):
        op["parameters"].append("IdempotencyKey")  # apispec: a component by name
    if isinstance(extra, list):
        op["parameters"] += extra
    else:
        op["parameters"].append({"in": "query", "schema": extra})  # the MarshmallowPlugin expands a schema
    if not op["parameters"]:
        del op["parameters"]
    body = info.get("body")
    if body:
        schema = ({"oneOf": [{"$ref": f"#/components/schemas/{one}"} for one in body]} if isinstance(body, list)
                  else body)
        op["requestBody"] = {"required": True, "content": _content(schema)}
    status, answer = info.get("answer", (200, OBJECT))
    if answer == CALENDAR:
        content = {CALENDAR: {"schema": {"type": "string"}}}
    else:
        content = _content(answer)
    op["responses"] = {str(status): {"description": "OK" if status == 200 else "Created", "content": content}}
    if answer == CALENDAR:  # feeds carry validators and answer conditional requests
        validators = {"ETag": {"schema": {"type": "string"}}, "Last-Modified": {"schema": {"type": "string"}}}
        op["responses"]["200"]["headers"] = validators
        op["responses"]["304"] = {"description": "Not modified (If-None-Match / If-Modified-Since)",
                                  "headers": validators}
    if auth == STAFF:
        op["responses"]["401"] = {"$ref": "#/components/responses/Unauthorized"}
    if permission:  # the role matrix (tansiq.contracts.actor): who may call it, checked again by the service
        op["x-permission"] = permission
        op["x-roles"] = sorted(roles_with(permission))
        op["responses"]["403"] = {"$ref": "#/components/responses/Forbidden"}
    if body or (extra and not isinstance(extra, list)):
        op["responses"]["422"] = {"$ref": "#/components/responses/ValidationError"}
    if info.get("command"):
        op["responses"]["409"] = {"$ref": "#/components/responses/IdempotencyKeyReused"}
    if path.startswith("/api/") and path != "/api/openapi.json":  # it calls a service
        op["responses"]["503"] = {"$ref": "#/components/responses/Unavailable"}
    op["responses"]["default"] = {"$ref": "#/components/responses/Error"}
    op["security"] = {STAFF: [{"session": []}, {"bearer": []}], OPTIONAL: [{}, {"session": []}, {"bearer": []}],
                      PUBLIC: []}[auth]
    return path, method.lower(), op


def build(routes=None, permissions=None):
    plugin = MarshmallowPlugin()
    spec = APISpec(title="Tansiq gateway API", version="1.0.0", openapi_version="3.1.0", plugins=[plugin],
                   info={"description": DESCRIPTION, "license": {"name": "AGPL-3.0-or-later"}},
                   servers=[{"url": "/", "description": "the gateway that serves this document"}], tags=TAGS)
    plugin.map_to_openapi_type(WallTime, "string", None)  # a date (all-day) or a local date-time
    for name, schema in COMPONENTS.items():
        spec.components.schema(name, schema=schema)
    spec.components.security_scheme("session", {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE})
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    error = _content("Error")
    spec.components.response("Error", {"description": "refused (see the status table above)", "content": error})
    spec.components.response("Unauthorized", {"description": "not signed in, or the session expired",
                                              "content": error})
    spec.components.response("Forbidden", {"description": "signed in, but none of her roles holds the route's "
                                                          "x-permission (x-roles lists those that do)",
                                           "content": error})
    spec.components.response("ValidationError", {
        "description": "validation_error: the body or query does not have the expected shape; "
                       "`details` has the messages per field", "content": error})
    spec.components.response("IdempotencyKeyReused", {
        "description": "idempotency_key_reused: this Idempotency-Key already carried out another request; "
                       "idempotency_key_in_progress: another attempt with it got there first (send it again for "
                       "its answer); or another conflict of the domain", "content": error})
    spec.components.response("Unavailable", {
        "description": f"service_unavailable: a service did not answer within RPC_TIMEOUT_S (default "
                       f"{DEFAULT_TIMEOUT_S:g} s); retry after `Retry-After` seconds, with the same Idempotency-Key",
        "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}, "content": error})
    spec.components.parameter("IdempotencyKey", "header", {
        "name": IDEMPOTENCY_HEADER, "required": False, "schema": {"type": "string", "minLength": 1,
                                                                  "maxLength": KEY_MAX_LENGTH,
                                                                  "pattern": "^[!-~]+$"},
        "description": "A key of the client's choice (e.g. a UUID) for this one change. Sent again with the same "
                       "request (after a timeout, a 503, a lost connection), the change is made once and the first "
                       "answer is repeated; with another request it is refused 409 idempotency_key_reused. "
                       "Kept 24 hours, per staff member and operation."})
    paths = {}
    permissions = route_permissions() if permissions is None else permissions
    for method, url, name, doc in routes if routes is not None else gateway_routes():
        if not DOCUMENTED.match(url):
            continue
        path, verb, op = operation(method, url, name, doc, ROUTES.get((method, openapi_path(url)[0]), {}),
                                   permissions.get(name))
        paths.setdefault(path, {})[verb] = op
    for path in sorted(paths):
        spec.path(path=path, operations=paths[path])
    return spec.to_dict()


def render():
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


class OpenApiDocument:
    @api("GET", "/api/openapi.json")
    def openapi_document(self, request):
        if not _cache:
            _cache.append(build(gateway_routes(type(self)), route_permissions(type(self))))
        return json_response(_cache[0], headers={"Access-Control-Allow-Origin": "*"})


_cache = []  # the routes cannot change while the process runs


def main(argv=None):
    generated.main(render, OUTPUT, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    main()
