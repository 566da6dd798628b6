"""JSON API of the in-app inbox and of notification preferences (the notifications service over RPC).

Every route acts for the signed-in staff member only: the staff id comes from the
session (inside the signed actor assertion), never from the request, so nobody can read someone else's inbox.
"""

from services.gateway.access import requires
from services.gateway.calls import TimedRpcProxy
from services.gateway.web import LANGUAGES, api, json_response, load_json
from services.notifications.schemas import PreferencesSchema
from tansiq.paging import PageQuery

TRUE = ("1", "true", "yes")


class InboxApi:
    notifications_rpc = TimedRpcProxy("notifications")

    @api("GET", "/api/inbox")
    @requires("staff.self", "notifications")
    def inbox_list(self, request, actor):
        unread_only = request.args.get("unread", "").lower() in TRUE
        language = request.args.get("lang") if request.args.get("lang") in LANGUAGES else None
        paging = PageQuery().load(request.args.to_dict())  # 422 here, before any RPC
        page = self.notifications_rpc.inbox(actor, unread_only=unread_only, language=language, paged=True, **paging)
        return json_response(page, headers={"Cache-Control": "no-store"})

    @api("GET", "/api/inbox/unread-count")
    @requires("staff.self", "notifications")
    def inbox_unread_count(self, request, actor):
        return json_response({"unread": self.notifications_rpc.unread_count(actor)},
                             headers={"Cache-Control": "no-store"})

    @api("POST", "/api/inbox/<int:item_id>/read")
    @requires("staff.self", "notifications")
    def inbox_mark_read(self, request, actor, item_id):
        return json_response(self.notifications_rpc.mark_read(actor, item_id))

    @api("GET", "/api/preferences")
    @requires("staff.self", "notifications")
    def preferences_get(self, request, actor):
        return json_response(self.notifications_rpc.get_preferences(actor))

    @api("PUT", "/api/preferences")
    @requires("staff.self", "notifications")
    def preferences_put(self, request, actor):
        changes = load_json(request, PreferencesSchema())  # 422 here, before any RPC
        return json_response(self.notifications_rpc.set_preferences(actor, changes))
