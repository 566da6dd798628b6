"""JSON API of intake: beneficiaries, listening sessions, consents, duplicates, erasure.

Bodies are validated here (422 before any RPC) with the intake schemas, then sent
over RPC in their JSON form; the intake service validates again and decides who
may see what (the signed-in staff member's association and roles travel with each call).
"""

from nameko.rpc import RpcProxy

from services.gateway.web import api, current_staff, json_response, load_json
from services.intake.schemas import BeneficiarySchema, ConsentSchema, DuplicateDecisionSchema, SessionSchema


def _json_body(request, schema):
    """The validated body, dumped back to JSON types (dates as ISO strings) for the RPC."""
    return schema.dump(load_json(request, schema))


class IntakeApi:
    intake_rpc = RpcProxy("intake")

    @api("POST", "/api/beneficiaries")
    def intake_register(self, request):
        staff = current_staff(request)
        return json_response(self.intake_rpc.register_beneficiary(_json_body(request, BeneficiarySchema()), staff),
                             status=201)

    @api("GET", "/api/beneficiaries/<string:beneficiary_id>")
    def intake_get(self, request, beneficiary_id):
        staff = current_staff(request)
        # Personal data: never let a browser or proxy keep a copy.
        return json_response(self.intake_rpc.get_beneficiary(beneficiary_id, staff),
                             headers={"Cache-Control": "no-store"})

    @api("POST", "/api/beneficiaries/<string:beneficiary_id>/sessions")
    def intake_add_session(self, request, beneficiary_id):
        staff = current_staff(request)
        return json_response(self.intake_rpc.add_session(beneficiary_id, _json_body(request, SessionSchema()), staff),
                             status=201)

    @api("POST", "/api/beneficiaries/<string:beneficiary_id>/consents")
    def intake_record_consent(self, request, beneficiary_id):
        staff = current_staff(request)
        body = _json_body(request, ConsentSchema())
        return json_response(self.intake_rpc.record_consent(beneficiary_id, body, staff), status=201)

    @api("POST", "/api/consents/<string:consent_id>/revoke")
    def intake_revoke_consent(self, request, consent_id):
        staff = current_staff(request)
        return json_response(self.intake_rpc.revoke_consent(consent_id, staff))

    @api("DELETE", "/api/beneficiaries/<string:beneficiary_id>")
    def intake_erase(self, request, beneficiary_id):
        staff = current_staff(request)
        return json_response(self.intake_rpc.erase_beneficiary(beneficiary_id, staff))

    @api("GET", "/api/beneficiaries/<string:beneficiary_id>/audit")
    def intake_audit(self, request, beneficiary_id):
        staff = current_staff(request)
        return json_response(self.intake_rpc.audit_trail(beneficiary_id, staff), headers={"Cache-Control": "no-store"})

    @api("GET", "/api/beneficiaries/<string:beneficiary_id>/disclosures")
    def intake_disclosures(self, request, beneficiary_id):
        staff = current_staff(request)
        return json_response(self.intake_rpc.list_disclosures(beneficiary_id, staff),
                             headers={"Cache-Control": "no-store"})

    @api("POST", "/api/duplicates/<int:flag_id>")
    def intake_resolve_duplicate(self, request, flag_id):
        staff = current_staff(request)
        decision = load_json(request, DuplicateDecisionSchema())["decision"]
        return json_response(self.intake_rpc.resolve_duplicate_flag(flag_id, decision, staff))

