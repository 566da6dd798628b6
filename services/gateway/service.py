"""Gateway: the web app and the JSON API. Owns no data (the directory keeps sessions); calls services by RPC.

What it needs from the directory (sessions, staff, associations, services offered) it reads from its
read model (tansiq.readmodel): only sign-in, sign-out, a password change and a deactivation, which the
directory carries out, call it.

Each area's routes live in an `api_<area>.py` mixin; this class puts them together.
"""

from services.directory.schemas import StaffSchema
from services.gateway.api_calendar_pages import CalendarPages
from services.gateway.api_cases import CasePages
from services.gateway.api_directory import DirectoryApi
from services.gateway.api_events import EventsApi
from services.gateway.api_inbox import InboxApi
from services.gateway.api_intake import IntakeApi
from services.gateway.api_openapi import OpenApiDocument
from services.gateway.api_pages import PagesApi
from services.gateway.api_referrals import ReferralsApi
from services.gateway.api_webapp import WebAppPages
from services.gateway.routes import PUBLIC, SIGNED_IN, route
from services.gateway.schemas import (
    LoginResultSchema,
    LoginSchema,
    PasswordChangeSchema,
    SessionClaimsSchema,
)
from services.gateway.web import (
    CSRF_HEADER,
    Sessions,
    Unauthorized,
    csrf_token,
    forget_session_cookie,
    json_response,
    session_token,
)
from tansiq.calls import TimedRpcProxy
from tansiq.errors import Forbidden
from tansiq.identity import ActorSigning
from tansiq.readmodel import DirectoryView


class GatewayService(PagesApi, WebAppPages, CalendarPages, CasePages, IntakeApi, ReferralsApi, EventsApi, InboxApi,
                     DirectoryApi,
                     OpenApiDocument):
    name = "gateway"
    sessions = Sessions()
    identity = ActorSigning()  # signs the actor assertion each RPC acting for a staff member carries
    directory_rpc = TimedRpcProxy("directory")  # the directory's commands: sign-in, sign-out, password, deactivate
    directory = DirectoryView(sessions=True)
    # Start once the directory (every sign-in) is up; a call to another service that is not up
    # yet is answered 503 service_unavailable (tansiq.runner waits for all called services otherwise).
    waits_for = ("directory",)

    @route("GET", "/healthz", auth=PUBLIC, tag="session", summary="Liveness probe")
    def healthz(self, request):
        return json_response({"status": "ok"})

    @route("POST", "/api/login", auth=PUBLIC, tag="session", body=LoginSchema, answer=(200, LoginResultSchema),
           summary="Sign in; sets the session cookie, answers her profile and X-CSRF-Token")
    def login(self, request, body):
        """Her profile only; the session token goes in an HttpOnly cookie, the CSRF token in a header."""
        return self._signed_in(self.open_session(request, body))

    def open_session(self, request, credentials):
        """The directory's new session for these credentials (the JSON route and the sign-in form), or 401."""
        opened = self.directory_rpc.sign_in(credentials["email"], credentials["password"], request.remote_addr or "")
        if opened is None:
            raise Unauthorized("unknown email or wrong password")
        self.sessions.opened(opened)  # this gateway knows the session at once
        return opened

    @route("POST", "/api/logout", auth=PUBLIC, tag="session", summary="Sign out (ends the session at once)")
    def logout(self, request):
        self.end_session(request)
        response = json_response({"status": "signed out"})
        forget_session_cookie(response)
        return response

    def end_session(self, request):
        token, _ = session_token(request)
        if token:
            self.directory_rpc.sign_out(token)
            self.sessions.ended(token)  # refused from the next request on this gateway

    @route("POST", "/api/password", auth="staff.self", tag="session", body=PasswordChangeSchema,
           answer=(200, LoginResultSchema), summary="Change her password; every other session of hers ends")
    def change_password(self, request, body):
        """Her other sessions end at once; this browser carries on with a new session."""
        token, _ = session_token(request)
        opened = self.directory_rpc.change_password(token, body["current_password"], body["new_password"])
        self.sessions.ended(token_hashes=opened["ended_token_hashes"])  # not "all of hers": the new one may be known
        self.sessions.opened(opened)
        return self._signed_in(opened)

    @route("POST", "/api/staff/<string:staff_id>/deactivate", auth="staff.manage", tag="session",
           answer=(200, StaffSchema), summary="Deactivate a colleague (admin); her sessions end at once")
    def deactivate_staff(self, request, staff_id, staff):
        """An admin of her association ends a colleague's access; her open sessions end now."""
        admin = staff
        target = self.directory.get_staff(staff_id)
        if target["association"] != admin["association"]:
            raise Forbidden("only an admin of her association deactivates a staff member")
        deactivated = self.directory_rpc.deactivate_staff(staff_id)
        self.sessions.ended(staff_id=staff_id, deactivated=True)
        return json_response(deactivated)

    @route("GET", "/api/me", auth=SIGNED_IN, tag="session", answer=(200, SessionClaimsSchema),
           summary="The signed-in staff member (and X-CSRF-Token)")
    def me(self, request, staff):
        return json_response(staff, headers={CSRF_HEADER: csrf_token(request)})

    def _signed_in(self, opened):
        response = json_response({"staff": opened["staff"]}, headers={CSRF_HEADER: opened["csrf_token"]})
        self.sessions.set_cookie(response, opened["token"])
        return response
