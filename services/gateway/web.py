"""What every gateway route needs: JSON in/out, the signed-in staff member, one error table, pages,
and what every answer carries: cross-site refusals and security headers (docs/security.md).

Routes are declared with `@route(...)` (services/gateway/routes.py, docs/web.md), whose nameko entrypoint
is ApiHandler (not nameko's plain `http`): errors raised by a route or by a remote service become JSON
`{"error": {"code", "message", "details"[, "fields"]}}` with the status from ERROR_STATUS.
"""

import hmac
import json
import re
import time
from pathlib import Path
from urllib.parse import urlsplit

from eventlet import corolocal
from jinja2 import Environment, FileSystemLoader, select_autoescape
from marshmallow import ValidationError, fields, validate
from nameko.exceptions import RemoteError
from nameko.extensions import DependencyProvider
from nameko.web.handlers import HttpRequestHandler
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from services.intake.schemas import NAME_REQUIRED, ONE_RECIPIENT
from tansiq import i18n
from tansiq.contracts.directory import SESSION_ABSOLUTE, SESSION_IDLE
from tansiq.contracts.fields import LANGUAGES
from tansiq.errors import DomainError, Forbidden
from tansiq.readmodel import LIVE, UNKNOWN, DirectoryFeed, csrf_for, digest

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "tansiq_session"
SESSION_SECONDS = 12 * 3600  # the cookie's life; the directory ends the session sooner (idle, revoked)
CSRF_HEADER = "X-CSRF-Token"
STAFF_CLAIMS = ("id", "association", "roles", "language", "name")


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


def error_body(code, message, details=None, status=None, fields=None):
    status = status or ERROR_STATUS.get(code, 400)
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    if fields:
        body["error"]["fields"] = fields
    return Response(json.dumps(body, ensure_ascii=False), status=status, mimetype="application/json")


def response_for(exc):
    if isinstance(exc, ValidationError):
        return error_body("validation_error", "the request does not have the expected shape", exc.messages,
                          fields=field_codes(exc.messages))
    if isinstance(exc, DomainError):
        status = ERROR_STATUS.get(exc.code) or CLASS_STATUS.get(type(exc).__name__, 400)
        details = dict(exc.details)
        if "retry_after" in details:  # a number, also when nameko brought it from a second hop as text
            details["retry_after"] = int(details["retry_after"])
        response = error_body(exc.code, exc.message, details, status=status)
        if status in (429, 503) and "retry_after" in details:
            response.headers["Retry-After"] = str(details["retry_after"])
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


# --- field codes: what a page translates and shows at the field (i18n msgids "field_error.<code>") ---

def _pattern(template):
    """A marshmallow message template ("Shorter than minimum length {min}.") as a regular expression."""
    return re.compile("^" + re.sub(r"(\\\{)+\w+(\\\})+", ".+?", re.escape(template)) + "$")


# Range's messages differ only in their words ("Must be greater than or equal to 1."): matched by them.
FIELD_CODES = [(re.compile(r"^Must be (greater|less) than .* and "), "out_of_range"),
               (re.compile(r"^Must be greater than "), "too_small"), (re.compile(r"^Must be less than "), "too_large")]
FIELD_CODES += [(_pattern(template), code) for template, code in (
    (validate.OneOf.default_message, "not_one_of"),
    (validate.Length.message_min, "too_short"), (validate.Length.message_max, "too_long"),
    (validate.Length.message_all, "length"), (validate.Length.message_equal, "length"),
    (validate.Email.default_message, "invalid_email"), (validate.Regexp.default_message, "invalid_format"),
    (validate.URL.default_message, "invalid_url"), ("Unknown field.", "unknown_field"),
    (fields.Field.default_error_messages["required"], "required"),
    (fields.Field.default_error_messages["null"], "null"),
    (NAME_REQUIRED, "required"), (ONE_RECIPIENT, "required"),  # her name, the consent's recipient: missing
)]


FIELD_ERROR_CODES = sorted({code for _, code in FIELD_CODES} | {"invalid"})


# A form's own rules may say a problem with a catalogue key of theirs ("form.invalid_date", "event.error.*"):
# that key is the field's code, shown in its own words rather than a generic one.
OWN_KEYS = ("form.", "event.")


def is_own_key(message):
    """Is this message a form's own catalogue key (one the catalogue has: never a raw key on a page)?"""
    text = str(message)
    return text.startswith(OWN_KEYS) and i18n.translations("en").gettext(text) != text


def field_code(message):
    """The stable code of one marshmallow message: a form's own key as it is, else the code of marshmallow's
    message; any other message (a rule's own words) is `invalid`."""
    if is_own_key(message):
        return str(message)
    return next((code for pattern, code in FIELD_CODES if pattern.match(str(message))), "invalid")


def field_message_key(code):
    """The catalogue key that says a field code: a form's own key as it is, any other `field_error.<code>`."""
    return code if code.startswith(OWN_KEYS) else f"field_error.{code}"


def field_message(errors, name, lang):
    """What to say at field `name` of a route's `errors` ({"needs.0": "not_one_of"}, field_codes) in `lang`:
    the first code at that field or inside it (a list's item is shown at the list); "" when it has none."""
    code = (errors or {}).get(name) or next(
        (code for path, code in (errors or {}).items() if path.startswith(f"{name}.")), None)
    return i18n.translate(lang, field_message_key(code)) if code else ""


def field_codes(messages, prefix=""):
    """marshmallow's error messages as {"field": code} ({"needs.0": "not_one_of", "_schema": "invalid"})."""
    if isinstance(messages, (list, tuple)):
        if messages and all(isinstance(m, str) for m in messages):
            return {prefix or "_schema": field_code(messages[0])}
        found = {}
        for index, item in enumerate(messages):
            found.update(field_codes(item, f"{prefix}.{index}" if prefix else str(index)))
        return found
    if isinstance(messages, dict):
        found = {}
        for key, value in messages.items():
            found.update(field_codes(value, f"{prefix}.{key}" if prefix else str(key)))
        return found
    return {prefix or "_schema": field_code(messages)}


class ApiHandler(HttpRequestHandler):
    """nameko's HTTP entrypoint with our error table, the cross-site refusals and the security headers."""

    def handle_request(self, request):
        declared = getattr(getattr(self.container.service_cls, self.method_name, None), "route", None)
        refused = refuse_cross_site(request, form=bool(getattr(declared, "form", False)))
        response = refused or super().handle_request(request)
        if request.environ.get("tansiq.stale_cookie") and SESSION_COOKIE not in response.headers.get("Set-Cookie", ""):
            forget_session_cookie(response)
        return with_security_headers(response)

    def response_from_exception(self, exc):
        return response_for(exc)


def json_response(data, status=200, headers=None):
    return Response(json.dumps(data, ensure_ascii=False, default=str), status=status,
                    mimetype="application/json", headers=headers)


class Sessions(DependencyProvider):
    """Server-side sessions kept by the directory; the browser holds only an opaque token (HttpOnly cookie).

    Each request is checked against the gateway's read model of the directory (tansiq.readmodel): the
    sessions the directory announced (only SHA-256 digests of their tokens), the staff and whether they
    are active. Sign-out, a password change and a deactivation made here update the model before they
    answer, and those made anywhere else reach it with the directory's change: the next request is
    refused with no call to the directory. No request asks the directory about a session: a token the
    model never heard of (a sign-in on another gateway a moment ago, or a forged token) waits up to
    ANNOUNCE_GRACE_S for the directory's `session_opened` to arrive, then is refused; at most
    MAX_AWAITING requests wait at once, the others are refused at once (a flood of forged tokens holds
    no more workers than that). A refused cookie is cleared by the answer (ApiHandler), so a browser
    holding one waits once, not on every request.
    """

    feed = DirectoryFeed()
    FORGET_EVERY_S = 60  # sessions past their absolute lifetime leave the model this often
    ANNOUNCE_GRACE_S = 1.0  # the feed brings a new session in milliseconds; a second covers a busy broker
    MAX_AWAITING = 16
    _forgotten_at = 0.0

    def setup(self):
        self.secure_cookies = secure_cookies(self.container.config)
        self.feed.with_sessions = True
        _active[0] = self  # one gateway service per process: lets routes call current_staff(request)

    def worker_setup(self, worker_ctx):
        _worker.ctx = worker_ctx  # current_route() reads its entrypoint (eventlet-local)

    def worker_teardown(self, worker_ctx):
        _worker.ctx = None

    def get_dependency(self, worker_ctx):
        return self

    def model(self):
        """The read model of the directory this gateway checks sessions against (tansiq.readmodel)."""
        return self.feed.wait_ready()

    def staff(self, request):
        known = request.environ.get("tansiq.staff")
        if known is not None:
            return known
        token, by_cookie = session_token(request)
        if not token:
            raise Unauthorized("sign in first (POST /api/login)")
        found = self.live(token)
        if found is None:
            if by_cookie:  # the answer also clears it, so later requests come signed out at once (no wait)
                request.environ["tansiq.stale_cookie"] = True
            raise Unauthorized("your session has ended; sign in again")
        csrf = csrf_for(token)
        if by_cookie and request.method in UNSAFE_METHODS and not hmac.compare_digest(
                sent_csrf_token(request), csrf):
            raise Forbidden(f"a change needs the page's {CSRF_HEADER} header", code="csrf_failed")
        staff = {key: found[key] for key in STAFF_CLAIMS}
        request.environ["tansiq.staff"], request.environ["tansiq.csrf"] = staff, csrf
        return staff

    def live(self, token):
        """The staff member of a live session, else None."""
        model, now = self.model(), time.time()
        if now - self._forgotten_at > self.FORGET_EVERY_S:
            model.forget_ended(now, SESSION_ABSOLUTE.total_seconds())
            self._forgotten_at = now
        lifetimes = (SESSION_IDLE.total_seconds(), SESSION_ABSOLUTE.total_seconds())
        state, staff = model.session(digest(token), now, *lifetimes)
        if state == UNKNOWN and self.announced(digest(token)):
            state, staff = self.model().session(digest(token), time.time(), *lifetimes)
        return staff if state == LIVE else None

    def announced(self, token_hash):
        """Has the directory announced this session, waiting a little for its change to arrive?"""
        model = self.model()
        if model.awaiting() >= self.MAX_AWAITING:
            return False
        return model.await_session(token_hash, self.ANNOUNCE_GRACE_S)

    def opened(self, opened):
        """A sign-in (or password change) answered by the directory: this gateway knows the session at once."""
        self.model().open_session(digest(opened["token"]), opened["staff"], opened["created_at"])

    def ended(self, token=None, staff_id=None, deactivated=False, token_hashes=()):
        """Sign-out, password change or deactivation made through this gateway: refused from the next request."""
        model = self.model()
        if deactivated:
            model.deactivate(staff_id)
        model.end_sessions([*token_hashes, *([digest(token)] if token else ())], staff_id=staff_id)

    def set_cookie(self, response, token):
        response.set_cookie(SESSION_COOKIE, token, max_age=SESSION_SECONDS, httponly=True, samesite="Lax",
                            secure=self.secure_cookies, path="/")


def forget_session_cookie(response):
    """Sign-out, or a cookie whose session is over or was never known: the browser drops it."""
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Lax")


_active = [None]
_worker = corolocal.local()


def session_token(request):
    """(token, came in the cookie?) — programs may send the cookie's value as `Authorization: Bearer`."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[len("Bearer "):], False
    return request.cookies.get(SESSION_COOKIE), True


def sent_csrf_token(request):
    """The CSRF token a change carries: the page script's header, or an HTML form's hidden csrf_token field."""
    if request.headers.get(CSRF_HEADER):
        return request.headers[CSRF_HEADER]
    if request.mimetype == FORM:  # only form routes get this far with a form (refuse_cross_site)
        return request.form.get("csrf_token", "")
    return ""


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
    if origin == "null":
        # Our own forms post with "Origin: null" (Referrer-Policy: no-referrer); the browser's fetch metadata
        # still says whence: same-origin for our pages, cross-site for a sandboxed frame or a file.
        return request.headers.get("Sec-Fetch-Site") == "same-origin"
    return urlsplit(origin).netloc == request.host


FORM = "application/x-www-form-urlencoded"


def refuse_cross_site(request, form=False):
    """The error answer for a change that did not come from our pages or is not JSON, else None.

    form: the route is a page's HTML form (routes.route(form=True)); it takes a urlencoded body too,
    and checks the session's CSRF token in the form (sent_csrf_token)."""
    if request.method not in UNSAFE_METHODS:
        return None
    if not same_origin(request):
        return error_body("cross_origin", "changes are accepted from this site's own pages only", status=403)
    # A body must be JSON. An empty one may come with any type: eventlet says text/plain when none was sent.
    has_body = bool(request.content_length) or "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if has_body and request.mimetype != "application/json" and not (form and request.mimetype == FORM):
        return error_body("unsupported_media_type", "send the body as application/json", status=415)
    return None


def with_security_headers(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Cache-Control", "no-store")  # personal pages and APIs; static files say otherwise
    return response


LANGUAGE_COOKIE = "lang"
LANGUAGE_COOKIE_SECONDS = 365 * 24 * 3600


def request_language(request, staff=None):
    """?lang= (a link or the language switch), else the remembered choice (cookie, kept after sign-out), else her
    staff preference, else the browser's; only ever one of LANGUAGES."""
    for lang in (request.args.get("lang"), request.cookies.get(LANGUAGE_COOKIE), (staff or {}).get("language")):
        if lang in LANGUAGES:
            return lang
    return request.accept_languages.best_match(LANGUAGES) or i18n.DEFAULT_LANGUAGE


def remember_language(response, lang):
    """Keep her choice for the next pages and after signing out (not secret: not HttpOnly-worthy data)."""
    if lang in LANGUAGES:
        response.set_cookie(LANGUAGE_COOKIE, lang, max_age=LANGUAGE_COOKIE_SECONDS, samesite="Lax", path="/")
    return response


_environments = {}


def environment(lang):
    """The pages' Jinja environment for `lang`: gettext (jinja2.ext.i18n) from that language's catalogue."""
    if lang not in _environments:
        env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                          extensions=["jinja2.ext.i18n"])
        env.install_gettext_translations(i18n.translations(lang), newstyle=True)
        env.globals["t"] = env.globals["_"]  # the name older templates use
        env.filters["number"] = lambda value: i18n.format_number(value, lang)
        env.globals["plural_forms"] = lambda singular, plural: i18n.plural_forms(lang, singular, plural)
        # An error at its field (templates/_fields.html), and the same words for the page script.
        env.globals["field_message"] = lambda errors, name: field_message(errors, name, lang)
        env.globals["field_error_messages"] = lambda: {code: i18n.translate(lang, field_message_key(code))
                                                       for code in FIELD_ERROR_CODES}
        _environments[lang] = env
    return _environments[lang]


def render(name, lang="fr", status=200, **context):
    lang = lang if lang in LANGUAGES else i18n.DEFAULT_LANGUAGE
    html = environment(lang).get_template(name).render(
        lang=lang, dir=i18n.text_direction(lang), languages=LANGUAGES, now=int(time.time()), **context)
    return Response(html, status=status, mimetype="text/html")
