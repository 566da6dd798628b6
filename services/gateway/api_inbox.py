"""JSON API of the in-app inbox and of notification preferences (the notifications service over RPC).

Every route acts for the signed-in staff member only: the staff id comes from the
session, never from the request, so nobody can read someone else's inbox.
"""

from nameko.rpc import RpcProxy

from services.gateway.web import LANGUAGES, api, current_staff, json_response, load_json
from services.notifications.schemas import PreferencesSchema

TRUE = ("1", "true", "yes")


class InboxApi:
    notifications_rpc = RpcProxy("notifications")

    @api("GET", "/api/inbox")
    def inbox_list(self, request):
        staff = current_staff(request)
        unread_only = request.args.get("unread", "").lower() in TRUE
        limit = request.args.get("limit", 50, type=int)
        language = request.args.get("lang") if request.args.get("lang") in LANGUAGES else None
        items = self.notifications_rpc.inbox(staff["id"], unread_only=unread_only, limit=limit, language=language)
        return json_response({"items": items}, headers={"Cache-Control": "no-store"})

    @api("GET", "/api/inbox/unread-count")
    def inbox_unread_count(self, request):
        staff = current_staff(request)
        return json_response({"unread": self.notifications_rpc.unread_count(staff["id"])},
                             headers={"Cache-Control": "no-store"})

    @api("POST", "/api/inbox/<int:item_id>/read")
    def inbox_mark_read(self, request, item_id):
        staff = current_staff(request)
        return json_response(self.notifications_rpc.mark_read(staff["id"], item_id))

    @api("GET", "/api/preferences")
    def preferences_get(self, request):
        staff = current_staff(request)
        return json_response(self.notifications_rpc.get_preferences(staff["id"]))

    @api("PUT", "/api/preferences")
    def preferences_put(self, request):
        staff = current_staff(request)
        changes = load_json(request, PreferencesSchema())  # 422 here, before any RPC
        return json_response(self.notifications_rpc.set_preferences(staff["id"], changes))
