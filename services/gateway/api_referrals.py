"""JSON API of referrals: sent and received lists (overdue first), create, read, act on one.

Bodies are validated here with the referrals schemas (422 before any RPC); the referrals
service validates again and decides who may do what with the signed-in staff member.
"""

from nameko.rpc import RpcProxy

from services.gateway.web import api, current_staff, json_response, load_json
from services.referrals.schemas import (ActionSchema, CreateReferralSchema, HolidaySchema, ListQuerySchema,
                                        RerouteSchema, TransitionSchema)

NO_STORE = {"Cache-Control": "no-store"}  # a received referral carries personal data


class ReferralsApi:
    referrals_rpc = RpcProxy("referrals")

    @api("GET", "/api/referrals")
    def referrals_list(self, request):
        staff = current_staff(request)
        query = ListQuerySchema().load(request.args.to_dict())
        return json_response(self.referrals_rpc.list_referrals(
            staff["association"], query["direction"], query["status"], staff=staff), headers=NO_STORE)

    @api("POST", "/api/referrals")
    def referrals_create(self, request):
        staff = current_staff(request)
        body = CreateReferralSchema().dump(load_json(request, CreateReferralSchema()))
        return json_response(self.referrals_rpc.create_referral(body, staff), status=201)

    @api("GET", "/api/referrals/<string:referral_id>")
    def referrals_get(self, request, referral_id):
        staff = current_staff(request)
        return json_response(self.referrals_rpc.get_referral(referral_id, staff), headers=NO_STORE)

    @api("POST", "/api/referrals/<string:referral_id>/<string:action>")
    def referrals_act(self, request, referral_id, action):
        staff = current_staff(request)
        action = ActionSchema().load({"action": action})["action"]
        if action == "reroute":
            body = RerouteSchema().dump(load_json(request, RerouteSchema()))
            return json_response(self.referrals_rpc.reroute(referral_id, body, staff), status=201)
        body = TransitionSchema().dump(load_json(request, TransitionSchema()))
        return json_response(self.referrals_rpc.transition(referral_id, action, body, staff))

    @api("POST", "/api/holidays")
    def referrals_set_holiday(self, request):
        """An admin adds or corrects a public holiday (deadlines count working days)."""
        staff = current_staff(request)
        body = HolidaySchema().dump(load_json(request, HolidaySchema()))
        return json_response(self.referrals_rpc.set_holiday(body, staff))
