"""JSON API of referrals: sent and received lists (overdue first), create, read, act on one.

Bodies are validated here with the referrals schemas (422 before any RPC); the referrals
service validates again and decides who may do what with the signed-in staff member (a signed actor
assertion meant for referrals and for intake, to which referrals forwards it).
"""

from services.gateway.calls import idempotency_key
from services.gateway.routes import BodyBy, route
from services.gateway.schemas import ReferralPageSchema
from services.gateway.web import json_response
from services.referrals.schemas import (
    ActionSchema,
    CreateReferralSchema,
    HolidaySchema,
    ListQuerySchema,
    ReferralSchema,
    RerouteSchema,
    TransitionSchema,
)
from tansiq.calls import TimedRpcProxy

NO_STORE = {"Cache-Control": "no-store"}  # a received referral carries personal data


class ReferralsApi:
    referrals_rpc = TimedRpcProxy("referrals")

    @route("GET", "/api/referrals", auth="referrals.read", audience=("referrals",), tag="referrals",
           query=ListQuerySchema, answer=(200, ReferralPageSchema),
           summary="Referrals the association sent or received, newest first, one page at a time (each says "
                   "whether it is overdue)")
    def referrals_list(self, request, actor, query):
        return json_response(self.referrals_rpc.list_referrals(actor, query["direction"], query["status"],
                                                               limit=query["limit"], cursor=query["cursor"],
                                                               paged=True), headers=NO_STORE)

    @route("POST", "/api/referrals", auth="referrals.act", audience=("referrals", "intake"), tag="referrals",
           command=True, body=CreateReferralSchema, answer=(201, ReferralSchema),
           summary="Refer a beneficiary to another association (needs her consent)")
    def referrals_create(self, request, actor, body):
        return json_response(self.referrals_rpc.create_referral(body, actor, idempotency_key=idempotency_key(request)),
                             status=201)

    @route("GET", "/api/referrals/<string:referral_id>", auth="referrals.read", audience=("referrals",),
           tag="referrals", answer=(200, ReferralSchema),
           summary="One referral, as the sender or the recipient sees it")
    def referrals_get(self, request, referral_id, actor):
        return json_response(self.referrals_rpc.get_referral(referral_id, actor), headers=NO_STORE)

    @route("POST", "/api/referrals/<string:referral_id>/<string:action>", auth="referrals.act",
           audience=("referrals", "intake"), tag="referrals", command=True, path=ActionSchema,
           body=BodyBy("action", {"reroute": RerouteSchema}, TransitionSchema), answer=(200, ReferralSchema),
           summary="Act on a referral: acknowledge, accept, decline (reason), start, complete (outcome), close, "
                   "withdraw, dismiss (the sender closes a declined or expired one), or reroute (201, a new referral)")
    def referrals_act(self, request, referral_id, action, actor, body):
        if action == "reroute":
            return json_response(self.referrals_rpc.reroute(referral_id, body, actor,
                                                            idempotency_key=idempotency_key(request)), status=201)
        return json_response(self.referrals_rpc.transition(referral_id, action, body, actor,
                                                            idempotency_key=idempotency_key(request)))

    @route("POST", "/api/holidays", auth="deadlines.manage", audience=("referrals",), tag="referrals",
           body=HolidaySchema, answer=(200, HolidaySchema),
           summary="Add or correct a public holiday (deadlines count working days)")
    def referrals_set_holiday(self, request, actor, body):
        """A coordinator or an admin adds or corrects a public holiday (deadlines count working days)."""
        return json_response(self.referrals_rpc.set_holiday(body, actor))
