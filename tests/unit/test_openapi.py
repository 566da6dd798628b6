"""docs/openapi.json stays in step with the gateway's routes and the marshmallow schemas."""

import json

from documents import all_refs, resolve  # tests/documents.py

from services.gateway import api_openapi
from services.gateway.service import GatewayService


def committed():
    return json.loads(api_openapi.OUTPUT.read_text(encoding="utf-8"))


def test_the_committed_document_is_the_generator_output():
    assert api_openapi.OUTPUT.read_text(encoding="utf-8") == api_openapi.render(), \
        "run: python -m services.gateway.api_openapi --write"


def test_every_api_and_ical_route_of_the_gateway_is_documented_with_its_method():
    document = committed()
    routes = api_openapi.gateway_routes(GatewayService)
    documented = {(method.upper(), path) for path, operations in document["paths"].items() for method in operations}
    wanted = {(method, api_openapi.openapi_path(url)[0]) for method, url, _, _ in routes
              if url.startswith(("/api/", "/ical/"))}
    assert len(wanted) > 30  # the walk found the mixins' routes, not only the service's own
    assert wanted <= documented, f"missing from the document: {sorted(wanted - documented)}"
    assert documented <= wanted | {("GET", "/healthz")}
    assert ("POST", "/api/referrals/{referral_id}/{action}") in documented
    assert ("GET", "/api/openapi.json") in documented
    assert not any(path in ("/login", "/inbox", "/intake") for _, path in documented)  # pages are not the API


def test_every_documented_route_has_written_metadata():
    # A new route must say what it takes and answers: add it to api_openapi.ROUTES.
    routes = api_openapi.gateway_routes(GatewayService)
    described = set(api_openapi.ROUTES)
    missing = [(method, path) for method, url, _, _ in routes
               for path in [api_openapi.openapi_path(url)[0]]
               if api_openapi.DOCUMENTED.match(url) and (method, path) not in described]
    assert missing == []
    assert set(described) <= {(m, api_openapi.openapi_path(u)[0]) for m, u, _, _ in routes}


def test_schemas_come_from_the_marshmallow_shapes_and_every_reference_resolves():
    document = committed()
    for ref in all_refs(document):
        assert resolve(document, ref) is not None
    schemas = document["components"]["schemas"]
    registration = schemas["BeneficiaryRegistration"]["properties"]
    assert registration["birth_year"]["minimum"] == 1900
    assert "legal_orientation" in registration["needs"]["items"]["enum"]
    assert set(schemas["Error"]["properties"]) == {"error"}
    assert set(schemas["ErrorDetail"]["properties"]) == {"code", "message", "details"}
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
