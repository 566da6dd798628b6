"""JSON API of referrals: sent and received lists (overdue first), create, read, act on one.

Bodies are validated here with the referrals schemas (422 before any RPC); the referrals
service validates again and decides who may do what with the signed-in staff member (a signed actor
assertion meant for referrals and for intake, to which referrals forwards it).
"""

from services.gateway.access import requires
from services.gateway.calls import TimedRpcProxy, idempotency_key
from services.gateway.web import api, json_response, load_json
from services.referrals.schemas import (
    ActionSchema,
    CreateReferralSchema,
    HolidaySchema,
    ListQuerySchema,
    RerouteSchema,
    TransitionSchema,
)

NO_STORE = {"Cache-Control": "no-store"}  # a received referral carries personal data


class ReferralsApi:
    referrals_rpc = TimedRpcProxy("referrals")

    @api("GET", "/api/referrals")
    @requires("referrals.read", "referrals")
    def referrals_list(self, request, actor):
        query = ListQuerySchema().load(request.args.to_dict())
        return json_response(self.referrals_rpc.list_referrals(actor, query["direction"], query["status"],
                                                               limit=query["limit"], cursor=query["cursor"],
                                                               paged=True), headers=NO_STORE)

    @api("POST", "/api/referrals")
    @requires("referrals.act", "referrals", "intake")
    def referrals_create(self, request, actor):
        body = CreateReferralSchema().dump(load_json(request, CreateReferralSchema()))
        return json_response(self.referrals_rpc.create_referral(body, actor, idempotency_key=idempotency_key(request)),
                             status=201)

    @api("GET", "/api/referrals/<string:referral_id>")
    @requires("referrals.read", "referrals")
    def referrals_get(self, request, actor, referral_id):
        return json_response(self.referrals_rpc.get_referral(referral_id, actor), headers=NO_STORE)

    @api("POST", "/api/referrals/<string:referral_id>/<string:action>")
    @requires("referrals.act", "referrals", "intake")
    def referrals_act(self, request, actor, referral_id, action):
        action = ActionSchema().load({"action": action})["action"]
        if action == "reroute":
            body = RerouteSchema().dump(load_json(request, RerouteSchema()))
            return json_response(self.referrals_rpc.reroute(referral_id, body, actor,
                                                            idempotency_key=idempotency_key(request)), status=201)
        body = TransitionSchema().dump(load_json(request, TransitionSchema()))
        return json_response(self.referrals_rpc.transition(referral_id, action, body, actor,
                                                            idempotency_key=idempotency_key(request)))

    @api("POST", "/api/holidays")
    @requires("deadlines.manage", "referrals")
    def referrals_set_holiday(self, request, actor):
        """A coordinator or an admin adds or corrects a public holiday (deadlines count working days)."""
        body = HolidaySchema().dump(load_json(request, HolidaySchema()))
        return json_response(self.referrals_rpc.set_holiday(body, actor))
