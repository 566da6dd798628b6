"""What every gateway route needs: JSON in/out, the signed-in staff member, one error table, pages,
and what every answer carries: cross-site refusals and security headers (docs/security.md).

Routes are nameko HTTP entrypoints declared with `@api(method, url)` (not nameko's
plain `http`): errors raised by a route or by a remote service become JSON
`{"error": {"code", "message", "details"}}` with the status from ERROR_STATUS.
"""

import hmac
import json
import time
from pathlib import Path
from urllib.parse import urlsplit

from eventlet import corolocal
from jinja2 import Environment, FileSystemLoader, select_autoescape
from marshmallow import ValidationError
from nameko.exceptions import RemoteError
from nameko.extensions import DependencyProvider
from nameko.rpc import ReplyListener, ServiceProxy
from nameko.web.handlers import HttpRequestHandler
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from tansiq.contracts.fields import LANGUAGES
from tansiq.errors import DomainError, Forbidden

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "tansiq_session"
SESSION_SECONDS = 12 * 3600  # the cookie's life; the directory ends the session sooner (idle, revoked)
CSRF_HEADER = "X-CSRF-Token"
STAFF_CLAIMS = ("id", "association", "roles", "language", "name")
RTL = {"ar"}


class Unauthorized(DomainError):
    default_code = "unauthorized"


# One table from error (class name, or domain code) to HTTP status. Remote errors arrive
# as the same class when registered with nameko (tansiq.errors), else as RemoteError.
ERROR_STATUS = {
    "unauthorized": 401,
    "forbidden": 403,
    "no_consent": 403,
    "not_found": 404,
    "conflict": 409,
    "invalid_transition": 409,
    "result_erased": 410,  # an Idempotency-Key replayed after the data it answered with was erased
    "invalid_request": 400,
    "validation_error": 422,
    "too_many_attempts": 429,
    "service_unavailable": 503,
}


# Domain codes not in ERROR_STATUS take the status of their class (e.g. venue_conflict: Conflict).
CLASS_STATUS = {"Unauthorized": 401, "Forbidden": 403, "NotFound": 404, "Conflict": 409}


def error_body(code, message, details=None, status=None):
    status = status or ERROR_STATUS.get(code, 400)
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return Response(json.dumps(body, ensure_ascii=False), status=status, mimetype="application/json")


def response_for(exc):
    if isinstance(exc, ValidationError):
        return error_body("validation_error", "the request does not have the expected shape", exc.messages)
    if isinstance(exc, DomainError):
        status = ERROR_STATUS.get(exc.code) or CLASS_STATUS.get(type(exc).__name__, 400)
        response = error_body(exc.code, exc.message, exc.details, status=status)
        if status in (429, 503) and "retry_after" in exc.details:
            response.headers["Retry-After"] = str(exc.details["retry_after"])
        return response
    if isinstance(exc, RemoteError):
        if exc.exc_type == "ValidationError":
            return error_body("validation_error", str(exc.value))
        if exc.exc_type == "UnknownService":
            return error_body("service_unavailable", "a service is not running; try again shortly")
        return error_body("internal_error", "a service failed; the error was logged", status=500)
    if isinstance(exc, HTTPException):
        return error_body(exc.name.lower().replace(" ", "_"), exc.description or exc.name, status=exc.code)
    return error_body("internal_error", "unexpected error; it was logged", status=500)


class ApiHandler(HttpRequestHandler):
    """nameko's HTTP entrypoint with our error table, the cross-site refusals and the security headers."""

    def handle_request(self, request):
        return with_security_headers(refuse_cross_site(request) or super().handle_request(request))

    def response_from_exception(self, exc):
        return response_for(exc)


api = ApiHandler.decorator


def json_response(data, status=200, headers=None):
    return Response(json.dumps(data, ensure_ascii=False, default=str), status=status,
                    mimetype="application/json", headers=headers)


def load_json(request, schema):
    """Parse the request body with a marshmallow schema (raises ValidationError -> 422)."""
    try:
        payload = json.loads(request.get_data(as_text=True) or "{}")
    except ValueError:
        raise ValidationError({"_body": ["the body must be JSON"]}) from None
    return schema.load(payload)


class Sessions(DependencyProvider):
    """Server-side sessions kept by the directory; the browser holds only an opaque token (HttpOnly cookie).

    Each request asks the directory whether the token is still live, so sign-out, a
    deactivation or a password change refuse the very next request (see directory/signin.py).
    """

    rpc_reply_listener = ReplyListener()  # what nameko's RpcProxy uses (a provider cannot nest an RpcProxy)

    def setup(self):
        from services.gateway.calls import DEFAULT_TIMEOUT_S, TIMEOUT_KEY

        config = self.container.config
        self.secure_cookies = secure_cookies(config)
        self.rpc_timeout = float(config.get(TIMEOUT_KEY, DEFAULT_TIMEOUT_S))
        _active[0] = self  # one gateway service per process: lets routes call current_staff(request)

    def worker_setup(self, worker_ctx):
        _worker.ctx = worker_ctx  # the directory proxy is bound to the worker (eventlet-local)

    def worker_teardown(self, worker_ctx):
        _worker.ctx = None

    def get_dependency(self, worker_ctx):
        return self

    def directory_for_worker(self):
        from services.gateway.calls import TimedServiceProxy  # bounded like every other call (503, Retry-After)

        return TimedServiceProxy(ServiceProxy(_worker.ctx, "directory", self.rpc_reply_listener,
                                              expiration=self.rpc_timeout), self.rpc_timeout)

    def staff(self, request):
        known = request.environ.get("tansiq.staff")
        if known is not None:
            return known
        token, by_cookie = session_token(request)
        if not token:
            raise Unauthorized("sign in first (POST /api/login)")
        found = self.directory_for_worker().session_staff(token)
        if found is None:
            raise Unauthorized("your session has ended; sign in again")
        if by_cookie and request.method in UNSAFE_METHODS and not hmac.compare_digest(
                request.headers.get(CSRF_HEADER, ""), found["csrf_token"]):
            raise Forbidden(f"a change needs the page's {CSRF_HEADER} header", code="csrf_failed")
        staff = {key: found["staff"][key] for key in STAFF_CLAIMS}
        request.environ["tansiq.staff"], request.environ["tansiq.csrf"] = staff, found["csrf_token"]
        return staff

    def set_cookie(self, response, token):
        response.set_cookie(SESSION_COOKIE, token, max_age=SESSION_SECONDS, httponly=True, samesite="Lax",
                            secure=self.secure_cookies, path="/")


_active = [None]
_worker = corolocal.local()


def session_token(request):
    """(token, came in the cookie?) — programs may send the cookie's value as `Authorization: Bearer`."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[len("Bearer "):], False
    return request.cookies.get(SESSION_COOKIE), True


def secure_cookies(config):
    """SECURE_COOKIES: true / false / auto (the default: on when the public base URL is https)."""
    value = str(config.get("SECURE_COOKIES", "auto")).lower()
    if value in ("auto", ""):
        return str(config.get("WEB_BASE_URL", "")).lower().startswith("https://")
    return value in ("1", "true", "yes", "on")


def current_staff(request):
    """The signed-in staff member ({id, association, roles, language, name}) or Unauthorized (401)."""
    return _active[0].staff(request)


def current_route():
    """(method, URL pattern) of the route the current worker serves, e.g. ("GET", "/api/beneficiaries/<...>")."""
    entrypoint = getattr(getattr(_worker, "ctx", None), "entrypoint", None)
    return getattr(entrypoint, "method", "?"), getattr(entrypoint, "url", "?")


def csrf_token(request):
    """The session's CSRF token once current_staff(request) ran (pages put it in <meta name=csrf-token>)."""
    return request.environ.get("tansiq.csrf")


# --- what every answer carries, and what every change must show --------------------------------

UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# No inline script anywhere (static/*.js only); inline styles and data: fonts: FullCalendar uses both.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                           "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
                           "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def same_origin(request):
    """Did this request come from one of our own pages (or from a program, which sends no Origin)?

    Browsers send Origin on every cross-origin POST; another port of the same host is another origin.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return request.headers.get("Sec-Fetch-Site", "same-origin") in ("same-origin", "none")
    return urlsplit(origin).netloc == request.host and origin != "null"


def refuse_cross_site(request):
    """The error answer for a change that did not come from our pages or is not JSON, else None."""
    if request.method not in UNSAFE_METHODS:
        return None
    if not same_origin(request):
        return error_body("cross_origin", "changes are accepted from this site's own pages only", status=403)
    # A body must be JSON. An empty one may come with any type: eventlet says text/plain when none was sent.
    has_body = bool(request.content_length) or "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if has_body and request.mimetype != "application/json":
        return error_body("unsupported_media_type", "send the body as application/json", status=415)
    return None


def with_security_headers(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Cache-Control", "no-store")  # personal pages and APIs; static files say otherwise
    return response


def request_language(request, staff=None):
    lang = request.args.get("lang") or request.cookies.get("lang") or (staff or {}).get("language")
    if lang not in LANGUAGES:
        best = request.accept_languages.best_match(LANGUAGES)
        lang = best or "fr"
    return lang


_catalogs = {}


def translations(lang):
    """The catalog of one of LANGUAGES; anything else is refused before any file is named after it."""
    if lang not in LANGUAGES:
        raise ValueError(f"no catalog for {lang!r}")
    if lang not in _catalogs:
        _catalogs[lang] = json.loads((HERE / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))
    return _catalogs[lang]


_templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))


def render(name, lang="fr", status=200, **context):
    lang = lang if lang in LANGUAGES else "fr"
    catalog = translations(lang)
    html = _templates.get_template(name).render(
        lang=lang, dir="rtl" if lang in RTL else "ltr", t=lambda key: catalog.get(key, key),
        languages=LANGUAGES, now=int(time.time()), **context)
    return Response(html, status=status, mimetype="text/html")
