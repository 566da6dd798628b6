"""JSON API of intake: beneficiaries, listening sessions, consents, duplicates, erasure.

Bodies are validated here (422 before any RPC) with the intake schemas, then sent
over RPC in their JSON form; the intake service validates again and decides who
may see what (the signed-in staff member travels with each call as a signed actor assertion).
Each route declares its permission of the role matrix (services.gateway.routes).
"""

from services.gateway.calls import idempotency_key
from services.gateway.routes import OBJECT, route
from services.gateway.schemas import BeneficiaryPageSchema, RegisteredSchema
from services.gateway.web import json_response
from services.intake.schemas import (
    BeneficiaryListQuerySchema,
    BeneficiarySchema,
    ConsentSchema,
    DuplicateDecisionSchema,
    SessionSchema,
)
from tansiq.calls import TimedRpcProxy
from tansiq.paging import PageQuery

NO_STORE = {"Cache-Control": "no-store"}  # personal data: never let a browser or proxy keep a copy


def page_of(item):
    """The answer of a paged list whose items have no named schema."""
    return {"type": "object", "properties": {
        "items": {"type": "array", "items": item},
        "next": {"type": ["string", "null"], "description": "cursor of the following page; null on the last"}}}


def intake_route(method, url, permission, **declared):
    return route(method, url, auth=permission, audience=("intake",), tag="intake", **declared)


class IntakeApi:
    intake_rpc = TimedRpcProxy("intake")

    @intake_route("POST", "/api/beneficiaries", "cases.write", command=True, body=BeneficiarySchema,
                  answer=(201, RegisteredSchema),
                  summary="Register a beneficiary and her first listening session; lists possible duplicates")
    def intake_register(self, request, actor, body):
        registered = self.intake_rpc.register_beneficiary(body, actor, idempotency_key=idempotency_key(request))
        return json_response(registered, status=201)

    @intake_route("GET", "/api/beneficiaries", "cases.read", query=BeneficiaryListQuerySchema,
                  answer=(200, BeneficiaryPageSchema),
                  summary="Her association's beneficiaries, newest first, one page at a time (no personal fields); "
                          "`phone` or `name` finds the records with that value through the blind index")
    def intake_list(self, request, actor, query):
        query = BeneficiaryListQuerySchema().dump(query)  # a date travels over RPC as its ISO text
        return json_response(self.intake_rpc.list_beneficiaries(actor, **query), headers=NO_STORE)

    @intake_route("GET", "/api/beneficiaries/<string:beneficiary_id>", "cases.read", answer=(200, OBJECT),
                  summary="A beneficiary's record (her association only; audited)")
    def intake_get(self, request, beneficiary_id, actor):
        return json_response(self.intake_rpc.get_beneficiary(beneficiary_id, actor), headers=NO_STORE)

    @intake_route("POST", "/api/beneficiaries/<string:beneficiary_id>/sessions", "cases.write", command=True,
                  body=SessionSchema, answer=(201, OBJECT), summary="Add a listening session")
    def intake_add_session(self, request, beneficiary_id, actor, body):
        return json_response(self.intake_rpc.add_session(beneficiary_id, body, actor,
                                                          idempotency_key=idempotency_key(request)), status=201)

    @intake_route("POST", "/api/beneficiaries/<string:beneficiary_id>/consents", "cases.write", command=True,
                  body=ConsentSchema, answer=(201, OBJECT), summary="Record her consent to share chosen fields")
    def intake_record_consent(self, request, beneficiary_id, actor, body):
        return json_response(self.intake_rpc.record_consent(beneficiary_id, body, actor,
                                                            idempotency_key=idempotency_key(request)), status=201)

    @intake_route("POST", "/api/consents/<string:consent_id>/revoke", "cases.write", command=True,
                  answer=(200, OBJECT), summary="Revoke a consent")
    def intake_revoke_consent(self, request, consent_id, actor):
        return json_response(self.intake_rpc.revoke_consent(consent_id, actor,
                                                            idempotency_key=idempotency_key(request)))

    @intake_route("DELETE", "/api/beneficiaries/<string:beneficiary_id>", "cases.erase", answer=(200, OBJECT),
                  summary="Erase a beneficiary's personal data (right to erasure)")
    def intake_erase(self, request, beneficiary_id, actor):
        return json_response(self.intake_rpc.erase_beneficiary(beneficiary_id, actor))

    @intake_route("GET", "/api/beneficiaries/<string:beneficiary_id>/audit", "cases.read", query=PageQuery,
                  answer=(200, page_of(OBJECT)),
                  summary="Who read or changed her record, newest first, one page at a time")
    def intake_audit(self, request, beneficiary_id, actor, query):
        return json_response(self.intake_rpc.audit_trail(beneficiary_id, actor, paged=True, **query),
                             headers=NO_STORE)

    @intake_route("GET", "/api/beneficiaries/<string:beneficiary_id>/disclosures", "cases.read", query=PageQuery,
                  answer=(200, page_of(OBJECT)),
                  summary="What was shared, with whom, newest first, one page at a time")
    def intake_disclosures(self, request, beneficiary_id, actor, query):
        return json_response(self.intake_rpc.list_disclosures(beneficiary_id, actor, paged=True, **query),
                             headers=NO_STORE)

    @intake_route("POST", "/api/duplicates/<int:flag_id>", "cases.write", body=DuplicateDecisionSchema,
                  answer=(200, OBJECT), summary="Decide whether a possible duplicate is the same woman")
    def intake_resolve_duplicate(self, request, flag_id, actor, body):
        return json_response(self.intake_rpc.resolve_duplicate_flag(flag_id, body["decision"], actor))
