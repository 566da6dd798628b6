"""OpenAPI 3.1 description of the gateway's HTTP API (GET /api/openapi.json, and docs/openapi.json).

    python -m services.gateway.api_openapi --write     # after adding or changing a route

Every operation comes from its route's one declaration (services.gateway.routes: method, path, who may
call it, body, query and path schemas, answer, summary), the same one the handler's inputs are loaded
from, so the document says what the handlers do. Shapes are the marshmallow schemas of
services/*/schemas.py, converted by apispec's MarshmallowPlugin; COMPONENTS names them.
tests/unit/test_openapi.py regenerates the document and compares it with the committed file.
"""

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
from services.gateway.routes import CALENDAR, OPTIONAL, PUBLIC, declared_routes, is_schema, route
from services.gateway.web import CSRF_HEADER, ERROR_STATUS, SESSION_COOKIE, json_response
from services.intake.schemas import (
    BeneficiarySchema,
    ConsentSchema,
    DuplicateDecisionSchema,
    SessionSchema,
)
from services.notifications.schemas import PreferencesSchema
from services.referrals.schemas import (
    CreateReferralSchema,
    HolidaySchema,
    ReferralSchema,
    RerouteSchema,
    TransitionSchema,
)
from tansiq import generated
from tansiq.calls import DEFAULT_TIMEOUT_S, IDEMPOTENCY_HEADER
from tansiq.commands import KEY_MAX_LENGTH
from tansiq.contracts.actor import roles_with

OUTPUT = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
DOCUMENTED = re.compile(r"^/(api/|ical/|healthz$)")  # the HTML pages and static files are not an API
JSON = "application/json"

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
    """The declared routes (services.gateway.routes.Route) of the gateway's API: no HTML page, no static file."""
    return [declared for declared in declared_routes(service_class) if DOCUMENTED.match(declared.url)]


def openapi_path(url):
    """/api/x/<int:flag_id> -> (/api/x/{flag_id}, {flag_id: {"type": "integer"}})."""
    types = {}

    def replace(match):
        types[match["name"]] = dict(CONVERTER_TYPES.get(match["converter"], {"type": "string"}))
        return "{" + match["name"] + "}"

    return PARAMETER.sub(replace, url), types


def component_name(schema):
    """The COMPONENTS name of a schema class (or of the class of a registered instance, e.g. UpdateEvent)."""
    wanted = schema if isinstance(schema, type) else type(schema)
    for name, registered in COMPONENTS.items():
        if (registered if isinstance(registered, type) else type(registered)) is wanted:
            return name
    raise KeyError(f"{wanted.__name__} is answered or taken by a route: name it in api_openapi.COMPONENTS")


def _content(schema, media=JSON):
    if isinstance(schema, list):  # a JSON array of one component
        item = {"$ref": f"#/components/schemas/{component_name(schema[0])}"}
        return {media: {"schema": {"type": "array", "items": item}}}
    if is_schema(schema):
        return {media: {"schema": {"$ref": f"#/components/schemas/{component_name(schema)}"}}}
    return {media: {"schema": schema}}


def operation(declared, converter):
    path, types = openapi_path(declared.url)
    path_fields = declared.path().fields if declared.path else {}
    op = {"tags": [declared.tag], "summary": declared.summary, "operationId": declared.name,
          "parameters": [{"in": "path", "name": param, "required": True, "schema": {
              **schema, **(converter.field2property(path_fields[param]) if param in path_fields else {})}}
              for param, schema in types.items()]}
    if declared.command:
        op["parameters"].append("IdempotencyKey")  # apispec: a component by name
    if declared.query is not None:
        op["parameters"].append({"in": "query", "schema": declared.query})  # the MarshmallowPlugin expands it
    if not op["parameters"]:
        del op["parameters"]
    bodies = declared.body_schemas()
    if bodies:
        schema = ({"oneOf": [{"$ref": f"#/components/schemas/{component_name(one)}"} for one in bodies]}
                  if len(bodies) > 1 else bodies[0])
        op["requestBody"] = {"required": True, "content": _content(schema)}
    status, answer = declared.answer
    content = {CALENDAR: {"schema": {"type": "string"}}} if answer == CALENDAR else _content(answer)
    op["responses"] = {str(status): {"description": "OK" if status == 200 else "Created", "content": content}}
    if answer == CALENDAR:  # feeds carry validators and answer conditional requests
        validators = {"ETag": {"schema": {"type": "string"}}, "Last-Modified": {"schema": {"type": "string"}}}
        op["responses"]["200"]["headers"] = validators
        op["responses"]["304"] = {"description": "Not modified (If-None-Match / If-Modified-Since)",
                                  "headers": validators}
    if declared.needs_session:
        op["responses"]["401"] = {"$ref": "#/components/responses/Unauthorized"}
    if declared.permission:  # the role matrix (tansiq.contracts.actor): who may call it, checked again by the service
        op["x-permission"] = declared.permission
        op["x-roles"] = sorted(roles_with(declared.permission))
        op["responses"]["403"] = {"$ref": "#/components/responses/Forbidden"}
    if bodies or declared.query is not None or declared.path is not None:
        op["responses"]["422"] = {"$ref": "#/components/responses/ValidationError"}
    if declared.command:
        op["responses"]["409"] = {"$ref": "#/components/responses/IdempotencyKeyReused"}
    if path.startswith("/api/") and path != "/api/openapi.json":  # it calls a service
        op["responses"]["503"] = {"$ref": "#/components/responses/Unavailable"}
    op["responses"]["default"] = {"$ref": "#/components/responses/Error"}
    op["security"] = {PUBLIC: [], OPTIONAL: [{}, {"session": []}, {"bearer": []}]}.get(
        declared.auth, [{"session": []}, {"bearer": []}])
    return path, declared.method.lower(), op


def build(routes=None):
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
    for declared in routes if routes is not None else gateway_routes():
        path, verb, op = operation(declared, plugin.converter)
        paths.setdefault(path, {})[verb] = op
    for path in sorted(paths):
        spec.path(path=path, operations=paths[path])
    return spec.to_dict()


def render():
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


class OpenApiDocument:
    @route("GET", "/api/openapi.json", auth=PUBLIC, tag="session", summary="This document")
    def openapi_document(self, request):
        if not _cache:
            _cache.append(build(gateway_routes(type(self))))
        return json_response(_cache[0], headers={"Access-Control-Allow-Origin": "*"})


_cache = []  # the routes cannot change while the process runs


def main(argv=None):
    generated.main(render, OUTPUT, __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    main()
