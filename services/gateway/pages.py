"""What every HTML page of the web app shares: rendering in the reader's language with her roles, the way to
sign-in when her session is missing, and refusals and failures shown as a page (the JSON API answers JSON).

Page routes are declared like every route, with `@route(..., page=True)` (services.gateway.routes).
"""

import json
import logging
from urllib.parse import quote, urlencode

from werkzeug.exceptions import HTTPException
from werkzeug.utils import redirect

from services.gateway.access import can, check, signed_in_or_none
from services.gateway.web import (
    Unauthorized,
    csrf_token,
    current_staff,
    remember_language,
    render,
    request_language,
    response_for,
)
from tansiq.errors import DomainError

log = logging.getLogger(__name__)
NO_STORE = {"Cache-Control": "no-store"}


def to_login(request):
    here = request.full_path.rstrip("?")
    return redirect(f"/login?next={quote(here, safe='')}", code=303)


def page(template, request, staff, status=200, lang=None, **context):
    def lang_href(code):  # switching language keeps the page's other parameters (next, status)
        args = request.args.copy()
        args["lang"] = code
        return "?" + urlencode(list(args.items(multi=True)))

    response = render(template, lang or request_language(request, staff), status=status, staff=staff,
                      lang_href=lang_href, can=can(staff), csrf_token=csrf_token(request), **context)
    response.headers.update(NO_STORE)
    return remember_language(response, request.args.get("lang"))  # a chosen language stays, even signed out


def error_page(request, staff, exc):
    """A refused or failed page as an HTML page in the reader's language."""
    if not isinstance(exc, (DomainError, HTTPException)):
        log.exception("page %s failed", request.path)
    answer = response_for(exc)
    error = json.loads(answer.get_data(as_text=True))["error"]
    return page("error.html", request, staff, status=answer.status_code, code=error["code"],
                message=error["message"])


def page_call(service, request, declaration, run):
    """Run a page route: `run(staff)` once her session and roles allow it, else the sign-in or an error page."""
    staff = None
    try:
        if declaration.needs_session:
            staff = current_staff(request)
        elif declaration.auth != "public":
            staff = signed_in_or_none(request)  # open pages still show what her roles allow
    except Unauthorized:
        return to_login(request)
    except DomainError as refused:  # e.g. a form without the session's CSRF token
        return error_page(request, None, refused)
    try:
        if declaration.permission is not None:
            check(staff, declaration.permission)
        return run(staff)
    except Unauthorized:
        return to_login(request)
    except Exception as exc:  # noqa: BLE001 - shown as a page; unexpected ones are logged
        return error_page(request, staff, exc)
