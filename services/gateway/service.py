"""Gateway: the web app and the JSON API. Owns nothing but sessions; calls services by RPC.

Each area's routes live in an `api_<area>.py` mixin; this class puts them together.
"""

from nameko.rpc import RpcProxy
from werkzeug.utils import redirect
from werkzeug.wrappers import Response

from services.gateway.schemas import LoginSchema
from services.gateway.web import (SESSION_COOKIE, SESSION_SECONDS, Sessions, Unauthorized, api, json_response,
                                  load_json, render, request_language)
from services.gateway.api_pages import PagesApi

login_in = LoginSchema()


class GatewayService(PagesApi):
    name = "gateway"
    sessions = Sessions()
    directory_rpc = RpcProxy("directory")

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
