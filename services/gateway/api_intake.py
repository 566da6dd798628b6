"""JSON API of intake: beneficiaries, listening sessions, consents, duplicates, erasure.

Bodies are validated here (422 before any RPC) with the intake schemas, then sent
over RPC in their JSON form; the intake service validates again and decides who
may see what (the signed-in staff member travels with each call as a signed actor assertion).
Each route declares its permission of the role matrix (services.gateway.access).
"""

from services.gateway.access import requires
from services.gateway.calls import TimedRpcProxy, idempotency_key
from services.gateway.web import api, json_response, load_json
from services.intake.schemas import (
    BeneficiaryListQuerySchema,
    BeneficiarySchema,
    ConsentSchema,
    DuplicateDecisionSchema,
    SessionSchema,
)
from tansiq.paging import PageQuery


def _json_body(request, schema):
    """The validated body, dumped back to JSON types (dates as ISO strings) for the RPC."""
    return schema.dump(load_json(request, schema))


class IntakeApi:
    intake_rpc = TimedRpcProxy("intake")

    @api("POST", "/api/beneficiaries")
    @requires("cases.write", "intake")
    def intake_register(self, request, actor):
        return json_response(self.intake_rpc.register_beneficiary(_json_body(request, BeneficiarySchema()), actor,
                                                                   idempotency_key=idempotency_key(request)),
                             status=201)

    @api("GET", "/api/beneficiaries")
    @requires("cases.read", "intake")
    def intake_list(self, request, actor):
        query = BeneficiaryListQuerySchema().load(request.args.to_dict())
        return json_response(self.intake_rpc.list_beneficiaries(actor, **query), headers={"Cache-Control": "no-store"})

    @api("GET", "/api/beneficiaries/<string:beneficiary_id>")
    @requires("cases.read", "intake")
    def intake_get(self, request, actor, beneficiary_id):
        # Personal data: never let a browser or proxy keep a copy.
        return json_response(self.intake_rpc.get_beneficiary(beneficiary_id, actor),
                             headers={"Cache-Control": "no-store"})

    @api("POST", "/api/beneficiaries/<string:beneficiary_id>/sessions")
    @requires("cases.write", "intake")
    def intake_add_session(self, request, actor, beneficiary_id):
        return json_response(self.intake_rpc.add_session(beneficiary_id, _json_body(request, SessionSchema()), actor,
                                                          idempotency_key=idempotency_key(request)),
                             status=201)

    @api("POST", "/api/beneficiaries/<string:beneficiary_id>/consents")
    @requires("cases.write", "intake")
    def intake_record_consent(self, request, actor, beneficiary_id):
        body = _json_body(request, ConsentSchema())
        return json_response(self.intake_rpc.record_consent(beneficiary_id, body, actor,
                                                            idempotency_key=idempotency_key(request)), status=201)

    @api("POST", "/api/consents/<string:consent_id>/revoke")
    @requires("cases.write", "intake")
    def intake_revoke_consent(self, request, actor, consent_id):
        return json_response(self.intake_rpc.revoke_consent(consent_id, actor,
                                                            idempotency_key=idempotency_key(request)))

    @api("DELETE", "/api/beneficiaries/<string:beneficiary_id>")
    @requires("cases.erase", "intake")
    def intake_erase(self, request, actor, beneficiary_id):
        return json_response(self.intake_rpc.erase_beneficiary(beneficiary_id, actor))

    @api("GET", "/api/beneficiaries/<string:beneficiary_id>/audit")
    @requires("cases.read", "intake")
    def intake_audit(self, request, actor, beneficiary_id):
        page = PageQuery().load(request.args.to_dict())
        return json_response(self.intake_rpc.audit_trail(beneficiary_id, actor, paged=True, **page),
                             headers={"Cache-Control": "no-store"})

    @api("GET", "/api/beneficiaries/<string:beneficiary_id>/disclosures")
    @requires("cases.read", "intake")
    def intake_disclosures(self, request, actor, beneficiary_id):
        page = PageQuery().load(request.args.to_dict())
        return json_response(self.intake_rpc.list_disclosures(beneficiary_id, actor, paged=True, **page),
                             headers={"Cache-Control": "no-store"})

    @api("POST", "/api/duplicates/<int:flag_id>")
    @requires("cases.write", "intake")
    def intake_resolve_duplicate(self, request, actor, flag_id):
        decision = load_json(request, DuplicateDecisionSchema())["decision"]
        return json_response(self.intake_rpc.resolve_duplicate_flag(flag_id, decision, actor))

