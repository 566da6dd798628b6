"""One declaration per gateway route: method, path, who may call it, what it takes and what it answers.

    @route("POST", "/api/beneficiaries/<string:beneficiary_id>/sessions", auth="cases.write", audience=("intake",),
           body=SessionSchema, answer=(201, OBJECT), command=True, tag="intake", summary="Add a listening session")
    def intake_add_session(self, request, beneficiary_id, actor, body): ...

From this one declaration come:
- the nameko HTTP entrypoint (services.gateway.web.ApiHandler: JSON errors, cross-site refusals, headers);
- the gate, before any RPC: `auth` is a permission of the role matrix (tansiq.contracts.actor: 401 without a
  session, 403 without the role), or SIGNED_IN (any session), OPTIONAL (anonymous too; signed in sees more),
  PUBLIC (no session asked);
- the inputs, loaded before the handler runs (422 on a bad shape): `body` (a marshmallow schema, or
  BodyBy(...) when a path value picks it), `query` (a schema of the query string), `path` (a schema of the
  URL's values, e.g. an enum);
- the OpenAPI document (services/gateway/api_openapi.py) and the access matrix test, read from `Route`
  (each handler carries it as `.route`): nothing is said twice.

The handler names what it wants among its parameters: the URL's values, `actor` (an assertion signed for
`audience`, what it passes over RPC), `staff` (the session's claims), `body` (validated, in its JSON form for
RPC), `query` (validated), and a form page `errors` ({field: code} when its body did not validate: it shows
the form again with each error at its field, instead of an error page). Pages (`page=True`) answer HTML:
without a session the browser goes to /login?next=..., a refusal or failure becomes an error page in her
language. A page route that takes a body (`form=True`) reads it from an HTML form (it works without
JavaScript) and checks the session's CSRF token in the form's `csrf_token` field.

Adding a route: write the handler in its area's `api_<area>.py` with one `@route(...)`, then
`python -m services.gateway.api_openapi --write` (docs/openapi.json; tests/unit/test_openapi.py checks it).
"""

import functools
import inspect
import json
from dataclasses import dataclass

from marshmallow import Schema, ValidationError

from services.gateway.access import check, refusals_recorded, signed_in_or_none
from services.gateway.web import ApiHandler, current_staff, field_codes
from tansiq.contracts.actor import roles_with

PUBLIC, SIGNED_IN, OPTIONAL = "public", "signed_in", "optional"
OBJECT = {"type": "object"}
CALENDAR = "text/calendar"
INJECTED = ("actor", "staff", "body", "query", "errors")
FORM_CONTROLS = ("csrf_token", "next", "idempotency_key")  # a form's own controls, not the body's data


@dataclass(frozen=True)
class BodyBy:
    """A body whose schema depends on a path value: BodyBy("action", {"reroute": RerouteSchema}, TransitionSchema)."""

    param: str
    schemas: dict
    default: type

    def choose(self, values):
        return self.schemas.get(values.get(self.param), self.default)

    def all(self):
        return [self.default, *self.schemas.values()]


@dataclass(frozen=True, eq=False)  # one object per declaration: compared (and hashed) by identity
class Route:
    method: str
    url: str  # werkzeug syntax: /api/x/<int:flag_id>
    name: str
    auth: str
    audience: tuple = ()
    body: object = None  # a Schema class, a BodyBy, or None
    query: type | None = None
    path: type | None = None
    answer: tuple = (200, OBJECT)  # (status, Schema class | [Schema class] | JSON schema | CALENDAR)
    summary: str = ""
    tag: str = "other"
    command: bool = False  # it changes something and takes an Idempotency-Key (tansiq.commands)
    page: bool = False  # an HTML page of the web app, not the JSON API
    form: bool = False  # a page route reading an HTML form (application/x-www-form-urlencoded)

    @property
    def permission(self):
        return None if self.auth in (PUBLIC, SIGNED_IN, OPTIONAL) else self.auth

    @property
    def needs_session(self):
        return self.auth not in (PUBLIC, OPTIONAL)

    def roles(self):
        """The roles that may call it (every role when any session will do); empty for anonymous routes."""
        from tansiq.contracts.fields import ROLES

        if self.permission:
            return set(roles_with(self.permission))
        return set(ROLES)

    def body_schemas(self):
        if self.body is None:
            return []
        return self.body.all() if isinstance(self.body, BodyBy) else [self.body]


def route(method, url, *, auth, audience=(), body=None, query=None, path=None, answer=(200, OBJECT), summary="",
          tag="other", command=False, page=False, form=False):
    """Declare a gateway route (see the module's docstring)."""
    if auth not in (PUBLIC, SIGNED_IN, OPTIONAL):
        roles_with(auth)  # a misspelt permission fails at import, not at request time

    def decorate(fn):
        wanted = set(inspect.signature(fn).parameters)
        url_names = [name for name in list(inspect.signature(fn).parameters)[2:] if name not in INJECTED]
        declaration = Route(method=method.upper(), url=url, name=fn.__name__, auth=auth, audience=tuple(audience),
                            body=body, query=query, path=path, answer=answer,
                            summary=summary or (inspect.getdoc(fn) or fn.__name__).splitlines()[0], tag=tag,
                            command=command, page=page, form=form)

        @functools.wraps(fn)
        def handler(self, request, *args, **values):
            # nameko passes the URL's values by name; a direct call (a test) may pass them in order.
            values.update(zip(url_names, args, strict=False))
            if page:
                from services.gateway.pages import page_call  # pages render templates; imported when first used

                return page_call(self, request, declaration, lambda staff: _call(self, request, declaration, fn,
                                                                                 wanted, values, staff))
            staff = _staff_for(request, declaration)
            return refusals_recorded(self, staff, lambda: _call(self, request, declaration, fn, wanted, values,
                                                                _permitted(staff, declaration)))

        handler.route = declaration
        # nameko checks the URL's arguments against the signature: only (self, request, <URL values>).
        handler.__signature__ = inspect.Signature(
            [p for name, p in inspect.signature(fn).parameters.items() if name not in INJECTED])
        return ApiHandler.decorator(declaration.method, url)(handler)

    return decorate


def _staff_for(request, declaration):
    """The signed-in staff member the route allows (None for anonymous callers of open routes)."""
    if declaration.auth == PUBLIC:
        return None
    if declaration.auth == OPTIONAL:
        return signed_in_or_none(request)
    return current_staff(request)


def _permitted(staff, declaration):
    """`staff`, once her roles hold the route's permission (403 otherwise)."""
    if declaration.permission:
        check(staff, declaration.permission)
    return staff


@functools.cache
def _schema(schema_class):
    """One instance per schema class, shared by requests: making one copies every field, and loading or
    dumping leaves it unchanged."""
    return schema_class()


def _call(service, request, declaration, fn, wanted, values, staff):
    if declaration.path is not None:
        schema = _schema(declaration.path)
        values = {**values, **schema.load({key: value for key, value in values.items() if key in schema.fields})}
    inputs = {}
    if "staff" in wanted:
        inputs["staff"] = staff
    if "actor" in wanted:
        inputs["actor"] = (service.identity.sign(staff, *declaration.audience)
                           if staff is not None and declaration.audience else None)
    # What does not load is None for a page taking `errors`: it shows them at their fields instead.
    inputs.update({name: None for name in ("query", "body") if getattr(declaration, name) is not None})
    try:
        if declaration.query is not None:
            inputs["query"] = _schema(declaration.query).load(request.args.to_dict())
        if declaration.body is not None:
            body = declaration.body
            schema = _schema(body.choose(values) if isinstance(body, BodyBy) else body)
            inputs["body"] = schema.dump(schema.load(form_body(request) if declaration.form else json_body(request)))
    except ValidationError as invalid:
        if "errors" not in wanted:
            raise
        inputs["errors"] = field_codes(invalid.messages)
    return fn(service, request, **values, **{name: value for name, value in inputs.items() if name in wanted})


def json_body(request):
    try:
        return json.loads(request.get_data(as_text=True) or "{}")
    except ValueError:
        raise ValidationError({"_body": ["the body must be JSON"]}) from None


def form_body(request):
    """An HTML form as a dict: a field given several times (checkboxes) is a list; the form's own controls
    (FORM_CONTROLS: its CSRF token, where to go next) are not data."""
    data = {}
    for key in request.form:
        if key in FORM_CONTROLS:
            continue
        values = request.form.getlist(key)
        data[key] = values if len(values) > 1 else values[0]
    return data


def declared_routes(service_class=None):
    """Every Route of the gateway (sorted by URL, method), from the handlers' declarations."""
    if service_class is None:
        from services.gateway.service import GatewayService as service_class  # service.py imports the mixins
    found = [method.route for _, method in inspect.getmembers(service_class, inspect.isfunction)
             if isinstance(getattr(method, "route", None), Route)]
    return sorted(found, key=lambda declared: (declared.url, declared.method))


def undeclared_entrypoints(service_class):
    """HTTP entrypoints of the service that were not declared with @route (the test wants none)."""
    return sorted(name for name, method in inspect.getmembers(service_class, inspect.isfunction)
                  if any(isinstance(entry, ApiHandler) for entry in getattr(method, "nameko_entrypoints", ()))
                  and not isinstance(getattr(method, "route", None), Route))


def is_schema(value):
    return isinstance(value, type) and issubclass(value, Schema)


_route_map = []


def may_open(staff, path, method="GET"):
    """Would this route let `staff` in? For links built from data (an inbox item's page): offer only those."""
    from werkzeug.exceptions import MethodNotAllowed, NotFound
    from werkzeug.routing import Map, Rule

    if not _route_map:
        _route_map.append(Map([Rule(d.url, methods=[d.method], endpoint=d) for d in declared_routes()]))
    try:
        declared, _ = _route_map[0].bind("gateway").match(path, method=method)
    except (NotFound, MethodNotAllowed):
        return False
    if declared.auth in (PUBLIC, OPTIONAL):
        return True
    return staff is not None and (declared.permission is None or bool(declared.roles() & set(staff["roles"])))
