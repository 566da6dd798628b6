"""docs/openapi.json stays in step with the gateway's route declarations and the marshmallow schemas, and
each handler loads exactly what its declaration (hence the document) says."""

import json

import pytest
from actors import SIGNER  # tests/actors.py
from documents import all_refs, resolve  # tests/documents.py
from gateway_sessions import directory_sessions
from marshmallow import ValidationError
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from services.gateway import api_openapi, web
from services.gateway.routes import Route, declared_routes, undeclared_entrypoints
from services.gateway.service import GatewayService
from tansiq.contracts.fields import ROLES

EVERY_ROLE = {"id": "s-all", "association": "amal-safi", "roles": list(ROLES), "language": "fr", "name": "All"}


def committed():
    return json.loads(api_openapi.OUTPUT.read_text(encoding="utf-8"))


def operation_of(document, declared):
    return document["paths"][api_openapi.openapi_path(declared.url)[0]][declared.method.lower()]


def test_the_committed_document_is_the_generator_output():
    assert api_openapi.OUTPUT.read_text(encoding="utf-8") == api_openapi.render(), \
        "run: python -m services.gateway.api_openapi --write"


def test_every_entrypoint_is_declared_once_and_every_api_route_is_documented():
    assert undeclared_entrypoints(GatewayService) == [], "declare these with services.gateway.routes.route"
    routes = api_openapi.gateway_routes(GatewayService)
    documented = {(method.upper(), path) for path, operations in committed()["paths"].items() for method in operations}
    wanted = {(declared.method, api_openapi.openapi_path(declared.url)[0]) for declared in routes}
    assert len(wanted) > 30  # the walk found the mixins' routes, not only the service's own
    assert wanted == documented
    assert ("POST", "/api/referrals/{referral_id}/{action}") in documented
    assert ("GET", "/api/openapi.json") in documented
    assert not any(path in ("/login", "/inbox", "/intake") for _, path in documented)  # pages are not the API
    pages = [declared.url for declared in declared_routes(GatewayService) if declared.page]
    assert {"/login", "/inbox", "/intake", "/referrals", "/beneficiaries/<string:beneficiary_id>"} <= set(pages)


def test_the_document_says_what_each_declaration_loads():
    document = committed()
    for declared in api_openapi.gateway_routes(GatewayService):
        op = operation_of(document, declared)
        bodies = declared.body_schemas()
        if not bodies:
            assert "requestBody" not in op, declared.name
        else:
            schema = op["requestBody"]["content"]["application/json"]["schema"]
            refs = [one["$ref"] for one in schema["oneOf"]] if "oneOf" in schema else [schema["$ref"]]
            assert refs == [f"#/components/schemas/{api_openapi.component_name(b)}" for b in bodies], declared.name
        query = {p["name"] for p in op.get("parameters", []) if isinstance(p, dict) and p.get("in") == "query"}
        wanted = {field.data_key or name for name, field in declared.query().fields.items()} if declared.query \
            else set()
        assert query == wanted, declared.name
        assert op.get("x-permission") == declared.permission, declared.name
        assert set(op.get("x-roles", [])) == (declared.roles() if declared.permission else set()), declared.name
        assert (op["security"] == []) == (declared.auth == "public"), declared.name


@pytest.fixture
def every_role(tmp_path):
    with directory_sessions(tmp_path) as sessions:
        yield sessions.signed_in(EVERY_ROLE)


class NoService:
    """Any RPC is a failure of the test: the inputs must be refused before the handler calls a service."""

    def __getattr__(self, name):
        raise AssertionError(f"a service was called ({name}) before the inputs were checked")


class Directory:
    """The directory's read model (a local table, no service): a page showing its form again names cities."""

    def list_associations(self):
        return []


class Gateway:
    def __init__(self):
        self.identity, self.directory = SIGNER, Directory()
        for proxy in ("intake_rpc", "referrals_rpc", "events_rpc", "notifications_rpc", "directory_rpc"):
            setattr(self, proxy, NoService())

    _association_names = GatewayService._association_names


def path_values(declared):
    values = {}
    for name in api_openapi.openapi_path(declared.url)[1]:
        values[name] = 7 if name in ("flag_id", "item_id") else ("decline" if name == "action" else "x-1")
    return values


@pytest.mark.parametrize("declared", [d for d in declared_routes(GatewayService) if d.body or d.query],
                         ids=lambda d: f"{d.method} {d.url}")
def test_each_handler_refuses_what_its_declared_schemas_refuse_before_any_service(every_role, declared: Route):
    """A body that is not an object, and each query parameter given a 5000-character value: both refused (422)."""
    url = api_openapi.openapi_path(declared.url)[0].format(**path_values(declared))
    headers = {"Cookie": f"{web.SESSION_COOKIE}={every_role}"}
    if declared.body and not declared.page:
        headers[web.CSRF_HEADER] = web._active[0].directory.session_staff(every_role)["csrf_token"]
        request = Request(EnvironBuilder(path=url, method=declared.method, headers=headers, data="[1, 2]",
                                         content_type="application/json").get_environ())
        with pytest.raises(ValidationError):
            getattr(GatewayService, declared.name)(Gateway(), request, **path_values(declared))
    if declared.query and declared.method == "GET":  # a change's query (force) goes with its body, above
        names = [field.data_key or name for name, field in declared.query().fields.items()]
        query = "&".join(f"{name}={'9' * 5000}" for name in names)
        request = Request(EnvironBuilder(path=f"{url}?{query}", method="GET", headers=headers).get_environ())
        if declared.page:  # a page answers with its error page (422), in HTML
            answer = getattr(GatewayService, declared.name)(Gateway(), request, **path_values(declared))
            assert answer.status_code == 422 and answer.mimetype == "text/html"
            return
        with pytest.raises(ValidationError):
            getattr(GatewayService, declared.name)(Gateway(), request, **path_values(declared))


def test_schemas_come_from_the_marshmallow_shapes_and_every_reference_resolves():
    document = committed()
    for ref in all_refs(document):
        assert resolve(document, ref) is not None
    schemas = document["components"]["schemas"]
    registration = schemas["BeneficiaryRegistration"]["properties"]
    assert registration["birth_year"]["minimum"] == 1900
    assert "legal_orientation" in registration["needs"]["items"]["enum"]
    assert set(schemas["Error"]["properties"]) == {"error"}
    assert set(schemas["ErrorDetail"]["properties"]) == {"code", "message", "details", "fields"}
    assert "required" not in schemas["UpdateEvent"]  # a partial update
    create = document["paths"]["/api/referrals"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/CreateReferral")
    assert create["responses"]["401"]["$ref"] == "#/components/responses/Unauthorized"
    action = document["paths"]["/api/referrals/{referral_id}/{action}"]["post"]["parameters"]
    assert "decline" in next(p for p in action if p["name"] == "action")["schema"]["enum"]
    flag = document["paths"]["/api/duplicates/{flag_id}"]["post"]["parameters"][0]
    assert flag["schema"]["type"] == "integer"


def test_ical_feeds_are_described_as_text_calendar_open_to_everyone():
    document = committed()
    feeds = {path: ops["get"] for path, ops in document["paths"].items() if path.startswith("/ical/")}
    assert set(feeds) == {"/ical/network.ics", "/ical/city/{city}.ics", "/ical/association/{slug}.ics",
                          "/ical/event/{event_id}.ics"}
    for operation in feeds.values():
        assert list(operation["responses"]["200"]["content"]) == ["text/calendar"]
        assert operation["security"] == []
