"""Gateway: the web app and the JSON API. Owns nothing but sessions; calls services by RPC.

Each area's routes live in an `api_<area>.py` mixin; this class puts them together.
"""

from nameko.rpc import RpcProxy

from tansiq.identity import ActorSigning
from services.gateway.schemas import LoginSchema
from services.gateway.web import SESSION_COOKIE, SESSION_SECONDS, Sessions, Unauthorized, api, json_response, load_json
from services.gateway.api_directory import DirectoryApi
from services.gateway.api_events import EventsApi
from services.gateway.api_inbox import InboxApi
from services.gateway.api_intake import IntakeApi
from services.gateway.api_openapi import OpenApiDocument
from services.gateway.api_pages import PagesApi
from services.gateway.api_referrals import ReferralsApi
from services.gateway.api_webapp import WebAppPages

login_in = LoginSchema()


class GatewayService(PagesApi, WebAppPages, IntakeApi, ReferralsApi, EventsApi, InboxApi, DirectoryApi,
                     OpenApiDocument):
    name = "gateway"
    sessions = Sessions()
    identity = ActorSigning()  # signs the actor assertion each RPC acting for a staff member carries
    directory_rpc = RpcProxy("directory")
    # Start once the directory (every sign-in) is up; a call to another service that is not up
    # yet is answered 503 service_unavailable (tansiq.runner waits for all called services otherwise).
    waits_for = ("directory",)

    @api("GET", "/healthz")
    def healthz(self, request):
        return json_response({"status": "ok"})

    @api("POST", "/api/login")
    def login(self, request):
        credentials = load_json(request, login_in)
        staff = self.directory_rpc.authenticate(credentials["email"], credentials["password"])
        if staff is None:
            raise Unauthorized("unknown email or wrong password")
        token = self.sessions.issue(staff)
        response = json_response({"token": token, "staff": staff})
        response.set_cookie(SESSION_COOKIE, token, max_age=SESSION_SECONDS, httponly=True, samesite="Lax")
        return response

    @api("POST", "/api/logout")
    def logout(self, request):
        response = json_response({"status": "signed out"})
        response.delete_cookie(SESSION_COOKIE)
        return response

    @api("GET", "/api/me")
    def me(self, request):
        return json_response(self.sessions.staff(request))
