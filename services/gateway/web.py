"""What every gateway route needs: JSON in/out, the signed-in staff member, one error table, pages.

Routes are nameko HTTP entrypoints declared with `@api(method, url)` (not nameko's
plain `http`): errors raised by a route or by a remote service become JSON
`{"error": {"code", "message", "details"}}` with the status from ERROR_STATUS.
"""

import base64
import hashlib
import json
import os
import time
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from jinja2 import Environment, FileSystemLoader, select_autoescape
from marshmallow import ValidationError
from nameko.exceptions import RemoteError
from nameko.extensions import DependencyProvider
from nameko.web.handlers import HttpRequestHandler
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from tansiq.contracts.fields import LANGUAGES
from tansiq.errors import DomainError

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "tansiq_session"
SESSION_SECONDS = 12 * 3600
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
    "invalid_request": 400,
    "validation_error": 422,
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
        return error_body(exc.code, exc.message, exc.details, status=status)
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
    """nameko's HTTP entrypoint with our error table."""

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
    """Signed and encrypted session tokens (Fernet) carrying the staff member's id, association and roles."""

    def setup(self):
        key_file = Path(self.container.config["SECRET_KEY_FILE"])
        if not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(Fernet.generate_key())
        # Any secret file works (compose and k8s generate plain random base64): derive the Fernet key.
        self.fernet = Fernet(base64.urlsafe_b64encode(hashlib.sha256(key_file.read_bytes().strip()).digest()))
        _active[0] = self  # one gateway service per process: lets routes call current_staff(request)

    def get_dependency(self, worker_ctx):
        return self

    def issue(self, staff):
        claims = {key: staff[key] for key in ("id", "association", "roles", "language", "name")}
        return self.fernet.encrypt(json.dumps(claims).encode()).decode()

    def staff(self, request):
        token = request.cookies.get(SESSION_COOKIE)
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer "):
            token = header[len("Bearer "):]
        if not token:
            raise Unauthorized("sign in first (POST /api/login)")
        try:
            return json.loads(self.fernet.decrypt(token.encode(), ttl=SESSION_SECONDS))
        except (InvalidToken, ValueError):
            raise Unauthorized("your session has expired; sign in again") from None


_active = [None]


def current_staff(request):
    """The signed-in staff member ({id, association, roles, language, name}) or Unauthorized (401)."""
    return _active[0].staff(request)


def request_language(request, staff=None):
    lang = request.args.get("lang") or request.cookies.get("lang") or (staff or {}).get("language")
    if lang not in LANGUAGES:
        best = request.accept_languages.best_match(LANGUAGES)
        lang = best or "fr"
    return lang


_catalogs = {}


def translations(lang):
    if lang not in _catalogs:
        _catalogs[lang] = json.loads((HERE / "i18n" / f"{lang}.json").read_text(encoding="utf-8"))
    return _catalogs[lang]


_templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))


def render(name, lang="fr", status=200, **context):
    catalog = translations(lang)
    html = _templates.get_template(name).render(
        lang=lang, dir="rtl" if lang in RTL else "ltr", t=lambda key: catalog.get(key, key),
        languages=LANGUAGES, now=int(time.time()), **context)
    return Response(html, status=status, mimetype="text/html")
