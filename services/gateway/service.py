"""Gateway: the web app and the JSON API. Owns no data (the directory keeps sessions); calls services by RPC.

Each area's routes live in an `api_<area>.py` mixin; this class puts them together.
"""

from services.gateway.access import requires
from services.gateway.api_calendar_pages import CalendarPages
from services.gateway.api_directory import DirectoryApi
from services.gateway.api_events import EventsApi
from services.gateway.api_inbox import InboxApi
from services.gateway.api_intake import IntakeApi
from services.gateway.api_openapi import OpenApiDocument
from services.gateway.api_pages import PagesApi
from services.gateway.api_referrals import ReferralsApi
from services.gateway.api_webapp import WebAppPages
from services.gateway.calls import TimedRpcProxy
from services.gateway.schemas import LoginSchema, PasswordChangeSchema
from services.gateway.web import (
    CSRF_HEADER,
    SESSION_COOKIE,
    Sessions,
    Unauthorized,
    api,
    csrf_token,
    current_staff,
    json_response,
    load_json,
    session_token,
)
from tansiq.errors import Forbidden
from tansiq.identity import ActorSigning

login_in = LoginSchema()
password_in = PasswordChangeSchema()


class GatewayService(PagesApi, WebAppPages, CalendarPages, IntakeApi, ReferralsApi, EventsApi, InboxApi, DirectoryApi,
                     OpenApiDocument):
    name = "gateway"
    sessions = Sessions()
    identity = ActorSigning()  # signs the actor assertion each RPC acting for a staff member carries
    directory_rpc = TimedRpcProxy("directory")
    # Start once the directory (every sign-in) is up; a call to another service that is not up
    # yet is answered 503 service_unavailable (tansiq.runner waits for all called services otherwise).
    waits_for = ("directory",)

    @api("GET", "/healthz")
    def healthz(self, request):
        return json_response({"status": "ok"})

    @api("POST", "/api/login")
    def login(self, request):
        """Her profile only; the session token goes in an HttpOnly cookie, the CSRF token in a header."""
        credentials = load_json(request, login_in)
        opened = self.directory_rpc.sign_in(credentials["email"], credentials["password"], request.remote_addr or "")
        if opened is None:
            raise Unauthorized("unknown email or wrong password")
        return self._signed_in(opened)

    @api("POST", "/api/logout")
    def logout(self, request):
        token, _ = session_token(request)
        if token:
            self.directory_rpc.sign_out(token)
        response = json_response({"status": "signed out"})
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @api("POST", "/api/password")
    @requires("staff.self")
    def change_password(self, request, actor):
        """Her other sessions end at once; this browser carries on with a new session."""
        current_staff(request)  # a live session, and the CSRF token of its pages
        body = load_json(request, password_in)
        token, _ = session_token(request)
        return self._signed_in(self.directory_rpc.change_password(token, body["current_password"],
                                                                  body["new_password"]))

    @api("POST", "/api/staff/<string:staff_id>/deactivate")
    @requires("staff.manage")
    def deactivate_staff(self, request, actor, staff_id):
        """An admin of her association ends a colleague's access; her open sessions end now."""
        admin = current_staff(request)
        target = self.directory_rpc.get_staff(staff_id)
        if target["association"] != admin["association"]:
            raise Forbidden("only an admin of her association deactivates a staff member")
        return json_response(self.directory_rpc.deactivate_staff(staff_id))

    @api("GET", "/api/me")
    def me(self, request):
        staff = current_staff(request)
        return json_response(staff, headers={CSRF_HEADER: csrf_token(request)})

    def _signed_in(self, opened):
        response = json_response({"staff": opened["staff"]}, headers={CSRF_HEADER: opened["csrf_token"]})
        self.sessions.set_cookie(response, opened["token"])
        return response
