"""JSON API of the in-app inbox and of notification preferences (the notifications service over RPC).

Every route acts for the signed-in staff member only: the staff id comes from the
session (inside the signed actor assertion), never from the request, so nobody can read someone else's inbox.
"""

from services.gateway.routes import route
from services.gateway.schemas import InboxEntrySchema, InboxListSchema, InboxQuerySchema, UnreadCountSchema
from services.gateway.web import json_response
from services.notifications.schemas import PreferencesSchema
from tansiq.calls import TimedRpcProxy

NO_STORE = {"Cache-Control": "no-store"}


def inbox_route(method, url, **declared):
    return route(method, url, auth="staff.self", audience=("notifications",), tag="inbox", **declared)


class InboxApi:
    notifications_rpc = TimedRpcProxy("notifications")

    @inbox_route("GET", "/api/inbox", query=InboxQuerySchema, answer=(200, InboxListSchema),
                 summary="The signed-in staff member's inbox")
    def inbox_list(self, request, actor, query):
        unread_only, language = bool(query.pop("unread")), query.pop("lang")
        page = self.notifications_rpc.inbox(actor, unread_only=unread_only, language=language, paged=True, **query)
        return json_response(page, headers=NO_STORE)

    @inbox_route("GET", "/api/inbox/unread-count", answer=(200, UnreadCountSchema), summary="Unread items")
    def inbox_unread_count(self, request, actor):
        return json_response({"unread": self.notifications_rpc.unread_count(actor)}, headers=NO_STORE)

    @inbox_route("POST", "/api/inbox/<int:item_id>/read", answer=(200, InboxEntrySchema), summary="Mark one read")
    def inbox_mark_read(self, request, item_id, actor):
        return json_response(self.notifications_rpc.mark_read(actor, item_id))

    @inbox_route("GET", "/api/preferences", answer=(200, PreferencesSchema),
                 summary="Notification channels, language, quiet hours, digest")
    def preferences_get(self, request, actor):
        return json_response(self.notifications_rpc.get_preferences(actor))

    @inbox_route("PUT", "/api/preferences", body=PreferencesSchema, answer=(200, PreferencesSchema),
                 summary="Change notification preferences (partial)")
    def preferences_put(self, request, actor, body):
        return json_response(self.notifications_rpc.set_preferences(actor, body))
